"""The proposer's second stage: each candidate rescored against the candidates it competes with.

Why a second stage: the proposer's first stage (`scene_graph_proposer.py`) scores every candidate
on its own, so it cannot express that a prepositional object attaches to one head ("a plate of
pasta with tomatoes": (plate, with, tomatoes) and (pasta, with, tomatoes) compete), that one "on"
rarely makes two relations, or that a word is an attribute of one object only. On FACTUAL that
competition is most of what the first stage loses against a perfect choice among its own
candidates (`jobs/text_ceiling.py`). Here a small logistic regression sees, for each candidate, its
first-stage logit and the margins to the best other candidate that shares its pair, its reverse
direction, its object, its subject, its predicate tokens (relations), or its tokens on another
object, its object's other attributes, and the relations over the same words (attributes); its
logit then goes to `decide` in place of the first stage's.

The first-stage logits it is trained on are out-of-fold (`jobs/train_text.py --proposer` fits
the first stage K times on the other folds), so it learns how far an unseen caption's scores can
be trusted, not how confident the first stage is on its own training captions.

The same function runs on the string path (`Proposer.apply_reference`, training) and on the fast
path (`Proposer.apply`); it sees only what both have: the candidates' pairs, tokens and kinds, and
their logits. Certain candidates (which the fast path does not score) count with a fixed logit
`CERTAIN_Z`, and a pair that one certain relation decides competes with that relation only, as
the fast path makes it.

Measured (FACTUAL, 3,000 held-out train captions, `train_text --proposer --rerank --seed 0`): it
gains next to nothing over the first stage alone (see the README's text section for the numbers),
while it costs ~50-60 us of CPU per caption in pure Python (the first stage's whole proposer is
~70 us). So `train_text` fits it only with `--rerank` and ships it only for a held-out gain
beyond `--rerank-margin`; without it in the weights file `Proposer.rerank` is None and nothing
here runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from laitkit.datasets.schema import SceneNode

NEW, RULE, CERTAIN = 0, 1, 2
CERTAIN_Z = 4.0  # a certain rule fact as a competitor: what a sure first-stage logit looks like
CLIP = 6.0
_NEG = -1e9

# one block per kind (new, rule): a candidate's features are written into its kind's block
REL_NAMES = (
    "b", "z", "d_pair+", "d_pair-", "has_pair", "d_rev+", "d_rev-", "has_rev", "d_obj+", "d_obj-", "has_obj",
    "d_subj+", "d_subj-", "has_subj", "d_tok+", "d_tok-", "has_tok", "d_atok+", "d_atok-", "has_atok",
    "rank1", "rank2", "pair_rule", "n_pair", "near_left", "near_right", "gap1", "gap2", "pred_between", "subj_left",
)  # fmt: skip
ATTR_NAMES = (
    "b", "z", "d_tok+", "d_tok-", "has_tok", "d_own+", "d_own-", "has_own", "d_rtok+", "d_rtok-", "has_rtok",
    "rank1", "rank2", "n_own",
)  # fmt: skip
N_REL, N_ATTR = 2 * len(REL_NAMES), 2 * len(ATTR_NAMES)


def _diff(row: list[tuple[int, float]], at: int, z: float, best: float) -> None:
    """Append the margin `z - best` as features `at` (its positive part) or `at + 1` (its negative
    part), and `at + 2` (a competitor exists); nothing when there is no competitor."""
    if best > _NEG:
        d = z - best
        if d > 0:
            row.append((at, d if d < CLIP else CLIP))
        elif d < 0:
            row.append((at + 1, d if d > -CLIP else -CLIP))
        row.append((at + 2, 1.0))


def _add(table: dict, key: object, g: object, v: float) -> None:
    """Per key: [group of the best value, the best value, the best value of any other group]."""
    t = table.get(key)
    if t is None:
        table[key] = [g, v, _NEG]
    elif g == t[0]:
        if v > t[1]:
            t[1] = v
    elif v > t[1]:
        t[2] = t[1]
        t[0] = g
        t[1] = v
    elif v > t[2]:
        t[2] = v


def _other(t: list, g: object) -> float:
    """The best value of a group other than `g` (from an `_add` entry)."""
    return t[2] if g == t[0] else t[1]


def stage2_features(
    rcands: Sequence[tuple], acands: Sequence[tuple], z: Sequence[float], heads: dict[int, int]
) -> tuple[list[int], list[list[tuple[int, float]]], list[int], list[list[tuple[int, float]]]]:
    """(relation indices, their rows, attribute indices, their rows): the second stage's inputs,
    each row its nonzero features as (index, value).

    Only candidates whose choice the logit can change get a row (not certain ones, not the other
    candidates of a pair one certain relation decides). `z`: first-stage logits of `rcands`
    followed by those of `acands` (a certain candidate's is ignored); `heads`: object node ->
    its head token.
    """
    nr = len(rcands)
    # pairs that one certain relation decides: only that relation is made on the fast path
    sure: dict[tuple[int, int], int] = {}
    for c in rcands:
        if c[4] == CERTAIN:
            p = (c[0], c[1]) if c[0] < c[1] else (c[1], c[0])
            sure[p] = sure.get(p, 0) + 1
    zr: list[float] = []
    live: list[bool] = []
    by_pair: dict = {}
    by_dir: dict = {}
    by_obj: dict = {}
    by_subj: dict = {}
    by_tok: dict = {}
    n_pair: dict[tuple[int, int], list[float]] = {}
    pair_rule: set[tuple[int, int]] = set()
    for j, c in enumerate(rcands):
        s, o, kind = c[0], c[1], c[4]
        p = (s, o) if s < o else (o, s)
        if kind != CERTAIN and sure and sure.get(p) == 1:
            zr.append(_NEG)
            live.append(False)
            continue
        v = CERTAIN_Z if kind == CERTAIN else float(z[j])
        zr.append(v)
        live.append(True)
        if kind != NEW:
            pair_rule.add(p)
        _add(by_pair, p, j, v)
        _add(by_dir, (s, o), j, v)
        _add(by_obj, o, p, v)
        _add(by_subj, s, p, v)
        for t in c[2][1]:
            _add(by_tok, t, p, v)
        zs = n_pair.get(p)
        if zs is None:
            n_pair[p] = [v]
        else:
            zs.append(v)
    za: list[float] = []
    a_own: dict = {}
    a_tok: dict = {}
    own_z: dict[int, list[float]] = {}
    for j, c in enumerate(acands):
        v = CERTAIN_Z if c[4] == CERTAIN else float(z[nr + j])
        za.append(v)
        _add(a_own, c[0], j, v)
        own_z.setdefault(c[0], []).append(v)
        for t in c[2]:
            _add(a_tok, t, c[0], v)
    ri: list[int] = []
    rrows: list[list[tuple[int, float]]] = []
    hs = sorted(heads.values()) if rcands else []
    half = len(REL_NAMES)
    for j, c in enumerate(rcands):
        kind = c[4]
        if kind == CERTAIN or not live[j]:
            continue
        s, o, toks = c[0], c[1], c[2][1]
        p = (s, o) if s < o else (o, s)
        v = zr[j]
        at = 0 if kind == NEW else half
        row: list[tuple[int, float]] = [(at, 1.0), (at + 1, v)]
        _diff(row, at + 2, v, _other(by_pair[p], j))
        rev = by_dir.get((o, s))
        if rev is not None:
            _diff(row, at + 5, v, rev[1])
        _diff(row, at + 8, v, _other(by_obj[o], p))
        _diff(row, at + 11, v, _other(by_subj[s], p))
        bt = _NEG
        ba = _NEG
        for t in toks:
            x = _other(by_tok[t], p)
            if x > bt:
                bt = x
            y = a_tok.get(t)
            if y is not None and y[1] > ba:
                ba = y[1]
        _diff(row, at + 14, v, bt)
        _diff(row, at + 17, v, ba)
        zs = n_pair[p]
        rank = 0
        for x in zs:
            if x > v:
                rank += 1
        if rank:
            row.append((at + 20 if rank == 1 else at + 21, 1.0))
        if p in pair_rule:
            row.append((at + 22, 1.0))
        row.append((at + 23, min(len(zs), 8) / 8.0))
        # attachment by position: is each end the object nearest the predicate's words on its side?
        hs_, ho = heads[s], heads[o]
        lo, hi = (hs_, ho) if hs_ < ho else (ho, hs_)
        if toks:
            t0, t1 = min(toks), max(toks)
            left = -1
            right = -1
            for h in hs:
                if h < t0:
                    left = h
                elif h > t1:
                    right = h
                    break
            if left == lo:
                row.append((at + 24, 1.0))
            if right == hi:
                row.append((at + 25, 1.0))
            if lo < t0 and t1 < hi:
                row.append((at + 28, 1.0))
        gap = 0
        for h in hs:
            if lo < h < hi:
                gap += 1
        if gap:
            row.append((at + 26 if gap == 1 else at + 27, 1.0))
        if hs_ < ho:
            row.append((at + 29, 1.0))
        ri.append(j)
        rrows.append(row)
    ai: list[int] = []
    arows: list[list[tuple[int, float]]] = []
    half = len(ATTR_NAMES)
    for j, c in enumerate(acands):
        kind = c[4]
        if kind == CERTAIN:
            continue
        s, toks = c[0], c[2]
        v = za[j]
        at = 0 if kind == NEW else half
        row = [(at, 1.0), (at + 1, v)]
        bt = _NEG
        br = _NEG
        for t in toks:
            x = _other(a_tok[t], s)
            if x > bt:
                bt = x
            y = by_tok.get(t)
            if y is not None and y[1] > br:
                br = y[1]
        _diff(row, at + 2, v, bt)
        _diff(row, at + 5, v, _other(a_own[s], j))
        _diff(row, at + 8, v, br)
        zs = own_z[s]
        rank = 0
        for x in zs:
            if x > v:
                rank += 1
        if rank:
            row.append((at + 11 if rank == 1 else at + 12, 1.0))
        row.append((at + 13, min(len(zs), 8) / 8.0))
        ai.append(j)
        arows.append(row)
    return ri, rrows, ai, arows


def dense(rows: Sequence[Sequence[tuple[int, float]]], n: int) -> np.ndarray:
    """Sparse `stage2_features` rows as a dense (rows, n) matrix (training)."""
    X = np.zeros((len(rows), n))
    for r, row in enumerate(rows):
        for k, v in row:
            X[r, k] = v
    return X


def object_heads(graph: Sequence[SceneNode]) -> dict[int, int]:
    """Object node index -> its head token (its span's last), as the proposer's candidates use."""
    return {i: n.span[1] - 1 for i, n in enumerate(graph) if n.kind == "object"}


class Reranker:
    """The second stage's two weight vectors (relations, attributes)."""

    def __init__(self, w_rel: Sequence[float], w_attr: Sequence[float]) -> None:
        if len(w_rel) != N_REL or len(w_attr) != N_ATTR:
            raise ValueError(f"reranker weights have {len(w_rel)}/{len(w_attr)} entries, want {N_REL}/{N_ATTR}")
        self.w_rel = np.asarray(w_rel, dtype=np.float64)
        self.w_attr = np.asarray(w_attr, dtype=np.float64)
        self.rel_list: list[float] = self.w_rel.tolist()  # (Python floats: a few products per row)
        self.attr_list: list[float] = self.w_attr.tolist()

    def rescore(
        self, graph: Sequence[SceneNode], rcands: Sequence[tuple], acands: Sequence[tuple], z: Sequence[float]
    ) -> list[float]:
        """The logits `decide` reads: the second stage's for every candidate it rows, the first
        stage's (unchanged) for the certain ones and those a certain relation already decides."""
        out = [float(x) for x in z]
        ri, rrows, ai, arows = stage2_features(rcands, acands, z, object_heads(graph))
        w = self.rel_list
        for j, row in zip(ri, rrows, strict=True):
            out[j] = sum([w[k] * v for k, v in row])
        w = self.attr_list
        nr = len(rcands)
        for j, row in zip(ai, arows, strict=True):
            out[nr + j] = sum([w[k] * v for k, v in row])
        return out
