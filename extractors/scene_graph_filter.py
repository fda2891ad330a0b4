"""A learned fact filter: logistic regression that drops the rule parser's unlikely facts.

Why a filter, and why this small: error analysis of the rules on FACTUAL dev (see the README's
text section) shows that about a third of the wrong relations and attributes are facts the rules
emit in contexts where FACTUAL's annotators wrote nothing or something else (a second predicate for
the same pair, "have" between nouns that only sit next to each other, "with" attached to the wrong
head, attributes FACTUAL does not annotate for that object). Whether such a fact is kept depends on
its context in the parse, which a per-word lexicon cannot see. A linear model over a few dozen
sparse features per fact (the predicate, its objects' names, the dependency labels and tags of its
words and of their heads, the distance between the objects, competing facts on the same objects,
and which rule made it) scores each proposed attribute and relation; facts under a threshold
(chosen on a held-out part of FACTUAL train, never on dev) are dropped. Objects are never dropped,
so the graph's node `tokens` stay exactly the rules' ones.

Cost: feature strings are built from lists the walk already has and looked up in one dict of
weights, so the filter adds a few microseconds per caption next to spaCy's parse. Training
(`python -m laitkit.jobs.train_text --fact-filter`) fits the weights with L-BFGS on CPU in about a
minute and is deterministic for a given seed (the seed picks the held-out captions).
With no weights file the filter is absent and the rule parser's graph is returned as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laitkit.datasets.schema import SceneNode

FILTER_PATH = Path(__file__).resolve().parent / "weights" / "factual_filter.npz"


def _bucket(x: int, top: int = 6) -> int:
    return max(-top, min(top, x))


def node_features(
    graph: Sequence[SceneNode],
    j: int,
    lower: Sequence[str],
    tag: Sequence[str],
    dep: Sequence[str],
    head: Sequence[int],
    pair_count: dict[tuple[int, int], int],
    subj_count: dict[int, int],
) -> list[str]:
    """Feature strings of attribute or relation node `j` (see module docstring)."""
    node = graph[j]
    p = node.lemma
    toks = node.tokens
    t0 = toks[0] if toks else -1
    s = graph[node.subject]
    sl = s.lemma
    sh = s.span[1] - 1
    n = len(lower)
    if node.kind == "attribute":
        f = [
            "b",
            "a=" + p,
            "as=" + sl,
            "asa=" + sl + "|" + p,
            "an=" + str(min(subj_count.get(node.subject, 0), 4)),
        ]
        if 0 <= t0 < n:
            h = head[t0]
            f += [
                "ad=" + dep[t0],
                "at=" + tag[t0],
                "aht=" + tag[h],
                "ahd=" + dep[h],
                "aon=" + str(h == sh),
                "adist=" + str(_bucket(t0 - sh)),
                "apd=" + p + "|" + dep[t0],
            ]
        return f
    o = graph[node.object]
    ol = o.lemma
    oh = o.span[1] - 1
    words = p.split(" ")
    f = [
        "b",
        "r=" + p,
        "r1=" + words[0],
        "rl=" + words[-1],
        "rn=" + str(min(len(words), 4)),
        "rs=" + sl,
        "ro=" + ol,
        "rsp=" + sl + "|" + p,
        "rpo=" + p + "|" + ol,
        "rso=" + sl + "|" + ol,
        "rdist=" + str(_bucket(oh - sh)),
        "rpair=" + str(min(pair_count.get((node.subject, node.object), 0), 3)),
        "rsn=" + str(min(subj_count.get(node.subject, 0), 5)),
        "rself=" + str(node.subject == node.object),
        "rcnt=" + str(min(s.count, 3)) + str(min(o.count, 3)),
    ]
    if 0 <= t0 < n:
        h = head[t0]
        f += [
            "rd=" + dep[t0],
            "rt=" + tag[t0],
            "rht=" + tag[h],
            "rhd=" + dep[h],
            "rhs=" + str(h == sh),
            "rsd=" + (dep[sh] if 0 <= sh < n else "-"),
            "rod=" + (dep[oh] if 0 <= oh < n else "-"),
            "rpd=" + p + "|" + dep[t0],
            "rsb=" + str(_bucket(t0 - sh, 3)),
            "rob=" + str(_bucket(oh - t0, 3)),
        ]
    return f


def graph_features(
    graph: Sequence[SceneNode], lower: Sequence[str], tag: Sequence[str], dep: Sequence[str], head: Sequence[int]
) -> list[tuple[int, list[str]]]:
    """(node index, features) of every attribute and relation node of one graph."""
    pair_count: dict[tuple[int, int], int] = {}
    subj_count: dict[int, int] = {}
    for nd in graph:
        if nd.kind == "relation":
            key = (nd.subject, nd.object)
            pair_count[key] = pair_count.get(key, 0) + 1
        if nd.kind != "object":
            subj_count[nd.subject] = subj_count.get(nd.subject, 0) + 1
    return [
        (j, node_features(graph, j, lower, tag, dep, head, pair_count, subj_count))
        for j, nd in enumerate(graph)
        if nd.kind != "object" and nd.subject >= 0 and (nd.kind == "attribute" or nd.object >= 0)
    ]


def drop_nodes(graph: list[SceneNode], drop: set[int]) -> list[SceneNode]:
    """`graph` without the attribute/relation nodes `drop`, object references renumbered."""
    if not drop:
        return graph
    new_index: dict[int, int] = {}
    kept: list[SceneNode] = []
    for i, nd in enumerate(graph):
        if i in drop:
            continue
        new_index[i] = len(kept)
        kept.append(nd)
    out: list[SceneNode] = []
    for nd in kept:
        if nd.kind != "object":
            nd = SceneNode(
                kind=nd.kind,
                lemma=nd.lemma,
                tokens=nd.tokens,
                subject=new_index.get(nd.subject, -1),
                object=new_index.get(nd.object, -1) if nd.object >= 0 else -1,
                count=nd.count,
            )
        out.append(nd)
    return out


@dataclass
class FactFilter:
    """Weights of the fact filter: feature -> weight, and the logit threshold under which a fact goes."""

    weights: dict[str, float]
    threshold: float

    @classmethod
    def load(cls, path: str | Path | None = None) -> FactFilter | None:
        """The shipped filter (or `path`); None when the file is absent (rules only)."""
        p = Path(path) if path is not None else FILTER_PATH
        if not p.exists():
            return None
        with np.load(p, allow_pickle=False) as z:
            weights, thr = read_linear(z)
        return cls(weights=weights, threshold=thr)

    def logit(self, feats: Sequence[str]) -> float:
        wd = self.weights
        return sum(wd.get(x, 0.0) for x in feats)

    def apply(
        self,
        graph: list[SceneNode],
        lower: Sequence[str],
        tag: Sequence[str],
        dep: Sequence[str],
        head: Sequence[int],
    ) -> list[SceneNode]:
        """The graph without the facts the model scores under its threshold."""
        if not graph:
            return graph
        thr = self.threshold
        drop = {j for j, f in graph_features(graph, lower, tag, dep, head) if self.logit(f) < thr}
        return drop_nodes(graph, drop)


def fit_logistic(
    rows: Sequence[Sequence[str]], labels: Sequence[int], min_count: int = 2, l2: float = 1.0, max_iter: int = 300
) -> tuple[list[str], np.ndarray]:
    """L2-regularised logistic regression over sparse binary features, fitted by L-BFGS.

    Deterministic: the vocabulary is sorted and L-BFGS has no randomness. Features seen fewer than
    `min_count` times are left out (their weight would be noise). Returns (vocab, weights).
    """
    from scipy.optimize import minimize
    from scipy.sparse import csr_matrix

    counts: dict[str, int] = {}
    for r in rows:
        for x in set(r):
            counts[x] = counts.get(x, 0) + 1
    vocab = sorted(x for x, c in counts.items() if c >= min_count)
    index = {x: i for i, x in enumerate(vocab)}
    indptr = [0]
    indices: list[int] = []
    for r in rows:
        cols = sorted({index[x] for x in r if x in index})
        indices.extend(cols)
        indptr.append(len(indices))
    X = csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), len(vocab)))
    y = np.asarray(labels, dtype=np.float64)
    reg = np.full(len(vocab), l2)
    if "b" in index:
        reg[index["b"]] = 0.0  # the bias is not shrunk

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = X @ w
        # log(1 + exp(-y'z)) with y' in {-1, 1}, computed stably
        s = 2.0 * y - 1.0
        m = -s * z
        val = np.logaddexp(0.0, m).sum() + 0.5 * float(reg @ (w * w))
        g = X.T @ (-s * (1.0 / (1.0 + np.exp(-m)))) + reg * w
        return val, g

    res = minimize(loss, np.zeros(len(vocab)), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return vocab, res.x


def read_linear(z: Any) -> tuple[dict[str, float], float]:
    """(feature -> weight, threshold) of an opened weights file (`save_filter`'s layout; the naming
    tagger's file starts with the same three arrays)."""
    vocab = z["vocab"].tolist()
    w = z["weights"].astype(np.float64).tolist()
    return dict(zip(vocab, w, strict=True)), float(z["threshold"])


def save_filter(path: str | Path, vocab: Sequence[str], weights: np.ndarray, threshold: float, **meta: str) -> None:
    """Write the filter's weights (features with a zero weight are left out)."""
    keep = [i for i, w in enumerate(weights) if abs(w) > 1e-6]
    np.savez_compressed(
        path,
        vocab=np.asarray([vocab[i] for i in keep]),
        weights=np.asarray([weights[i] for i in keep], dtype=np.float32),
        threshold=np.float64(threshold),
        **{k: np.asarray(v) for k, v in meta.items()},
    )


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# --- the noun tagger ------------------------------------------------------------------------------

NOUN_TAGGER_PATH = Path(__file__).resolve().parent / "weights" / "factual_nouns.npz"
# Tags spaCy gives to caption nouns it misreads ("oven under the stove": oven/VBN, "beds in the
# room": beds/VBZ, "surfboard leaning on the tree": surfboard/RB); only these tokens are scored.
CANDIDATE_POS = frozenset({"VERB", "ADJ", "ADV"})


def n_kids(head: Sequence[int]) -> list[int]:
    """Number of dependents of every token."""
    out = [0] * len(head)
    for i, h in enumerate(head):
        if h != i:
            out[h] += 1
    return out


def token_features(
    i: int,
    lower: Sequence[str],
    pos: Sequence[str],
    tag: Sequence[str],
    dep: Sequence[str],
    head: Sequence[int],
    kids: Sequence[int] | None = None,
) -> list[str]:
    """Features of token `i` for the noun tagger: the word, its tag and role, its neighbours.

    `kids`: `n_kids(head)`, passed in so that a caption's tokens share one count.
    """
    n = len(lower)
    if kids is None:
        kids = n_kids(head)
    w = lower[i]
    h = head[i]
    prev_t = tag[i - 1] if i > 0 else "^"
    next_t = tag[i + 1] if i + 1 < n else "$"
    next_w = lower[i + 1] if i + 1 < n else "$"
    return [
        "b",
        "w=" + w,
        "wt=" + w + "|" + tag[i],
        "wd=" + w + "|" + dep[i],
        "t=" + tag[i],
        "td=" + tag[i] + "|" + dep[i],
        "pt=" + prev_t,
        "nt=" + next_t,
        "pnt=" + prev_t + "|" + tag[i] + "|" + next_t,
        "nw=" + next_w,
        "pw=" + (lower[i - 1] if i > 0 else "^"),
        "ht=" + tag[h],
        "hdir=" + str(_bucket(h - i, 2)),
        "first=" + str(i == 0),
        "suf=" + w[-3:],
        "kids=" + str(min(kids[i], 3)),
    ]


@dataclass
class NounTagger:
    """Weights of the noun tagger: which non-noun tokens are really a caption's object nouns."""

    weights: dict[str, float]
    threshold: float

    @classmethod
    def load(cls, path: str | Path | None = None) -> NounTagger | None:
        """The shipped tagger (or `path`); None when the file is absent (spaCy's tags as they are)."""
        f = FactFilter.load(path if path is not None else NOUN_TAGGER_PATH)
        return None if f is None else cls(weights=f.weights, threshold=f.threshold)

    def nouns(
        self, lower: Sequence[str], pos: Sequence[str], tag: Sequence[str], dep: Sequence[str], head: Sequence[int]
    ) -> frozenset[int]:
        """Indices of the candidate tokens the model reads as nouns."""
        cand = [i for i, p in enumerate(pos) if p in CANDIDATE_POS]
        if not cand:
            return frozenset()
        wd = self.weights
        kids = n_kids(head)
        return frozenset(
            i
            for i in cand
            if sum(wd.get(x, 0.0) for x in token_features(i, lower, pos, tag, dep, head, kids)) >= self.threshold
        )
