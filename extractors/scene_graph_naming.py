"""A learned object-naming tagger: is the modifier left of an object's name part of that name?

Why: FACTUAL's object names follow a house convention that syntax does not decide. "tennis racket",
"traffic light", "hot dog" and "dining table" are one object; "wooden table" is a table that is
wooden, "man shirt" is a shirt. The rules' lexicon (`scene_graph.Lexicon`: compounds,
compound_pairs, adj_names) votes per word or per pair and falls back to "a compound is part of
the name, an adjective is not" everywhere else; on held-out train captions the object-naming
misses that follow are the largest single cause of missed relations (README, text section).
This tagger replaces that fallback with one logistic decision per candidate word, over the
token and its head (words, lemma pair, dependency, tags, distance), the rules' own decision, and
count features from FACTUAL train: how often gold writes the lemma pair as one object against
the head with the modifier as its attribute, and the same for the modifier alone.

Where it is asked: `_Walk.find_objects` grows a name leftwards from its head noun, one word at a
time; the tagger decides each contiguous word that hangs inside the name (a compound, an
adjective or a noun modifier: `_Walk.name_rule` says which words it is asked about). A word it
takes is in the name's `tokens` and is never also an attribute (`_Walk.attributes` skips
modifiers inside the name); a word it leaves keeps the rules' reading (an attribute for an
adjective or a material, nothing for another compound). The rules keep the words they are sure
of: hyphenated words, "@have" compounds ("clock face"), nouns that are objects of their own,
numbers.

Cost: the features are strings looked up in one dict; the pair's part (its count buckets and
lemma-pair features) is cached per (modifier, head) pair, so a caption pays a few dict look-ups
per candidate. Training: `python -m laitkit.jobs.train_text --naming --seed 0` (CPU, minutes).

The same file holds the object gate (`ObjectGate`), trained right after the tagger: it drops the
rules' objects FACTUAL does not annotate in their context ("in the background", "taking a
picture"), and the tagger's pair counts also tell the walk which two-word names a bad parse split
(`NamingTagger.split_pairs`, "fire hydrant" with "hydrant" an adverb).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from laitkit.extractors.scene_graph_filter import read_linear

NAMING_PATH = Path(__file__).resolve().parent / "weights" / "factual_naming.npz"
# How often gold must write a two-word name for the walk to re-read a split parse of it as one
# (`NamingTagger.split_pairs`, `_Walk.split_names`: "fire hydrant" with "hydrant" an adverb).
SPLIT_MIN = 5


def _cb(n: int) -> str:
    """Count bucket: 0, 1, 2, 3-5, 6-20, >20."""
    return "0" if n <= 0 else "1" if n == 1 else "2" if n == 2 else "3" if n <= 5 else "6" if n <= 20 else "X"


def _ratio(a: int, b: int) -> str:
    """Share bucket of a among a + b ("-" when neither was seen)."""
    if a + b == 0:
        return "-"
    return str(int(4 * a / (a + b) + 0.5))


@dataclass
class NamingCounts:
    """Gold counts from FACTUAL train captions: "modifier|head" and "modifier" -> (as name, as attribute).

    as name: a gold object's name ends in "modifier head" (for the modifier alone: it is a
    non-final word of a gold name); as attribute: a gold object ending in "head" has the
    modifier as an attribute (alone: the modifier is any gold attribute).
    """

    pair: dict[str, tuple[int, int]] = field(default_factory=dict)
    mod: dict[str, tuple[int, int]] = field(default_factory=dict)
    alone: dict[str, int] = field(default_factory=dict)  # one-word gold object -> how often


def gold_count_keys(objs: set, attrs: set) -> tuple[list[str], list[str], list[str], list[str]]:
    """One caption's contributions (pair as name, pair as attr, mod as name, mod as attr).

    `objs`, `attrs`: the caption's normalised gold tuples (`Normalizer.tuples`).
    """
    pn: list[str] = []
    pa: list[str] = []
    mn: list[str] = []
    ma: list[str] = []
    for (o,) in objs:
        w = o.split(" ")
        if len(w) > 1:
            pn.append(w[-2] + "|" + w[-1])
            mn.extend(w[:-1])
    for o, a in attrs:
        pa.append(a + "|" + o.split(" ")[-1])
        ma.append(a)
    return pn, pa, mn, ma


def pair_features(m: str, ml: str, hl: str, mpos: str, counts: NamingCounts) -> list[str]:
    """The features that depend only on the modifier (word, lemma, POS) and the head lemma."""
    pn, pa = counts.pair.get(ml + "|" + hl, (0, 0))
    mn, ma = counts.mod.get(ml, (0, 0))
    return [
        "b",
        "m=" + m,
        "h=" + hl,
        "mh=" + ml + "|" + hl,
        "pn=" + _cb(pn),
        "pa=" + _cb(pa),
        "pr=" + _ratio(pn, pa),
        "prb=" + _ratio(pn, pa) + "|" + _cb(pn + pa),
        "mn=" + _cb(mn),
        "ma=" + _cb(ma),
        "mr=" + _ratio(mn, ma) + "|" + mpos,
    ]


def context_features(
    j: int,
    i: int,
    start: int,
    rule: str,
    lower: Sequence[str],
    tag: Sequence[str],
    dep: Sequence[str],
    head: Sequence[int],
) -> list[str]:
    """The features of the word's place in this caption: its role, tags, the rules' decision."""
    d = dep[j]
    n = len(lower)
    nxt = lower[i + 1] if i + 1 < n else "$"
    return [
        "md=" + d,
        "mt=" + tag[j],
        "mtd=" + tag[j] + "|" + d,
        "ht=" + tag[i],
        "hd=" + dep[i],
        "att=" + str(head[j] == i),
        "len=" + str(min(i - start + 1, 3)),
        "pre=" + (tag[j - 1] if j > 0 else "^"),
        "nx=" + (nxt if nxt in ("of", "'s", "with", "and") else tag[i + 1] if i + 1 < n else "$"),
        "r=" + rule,
        "rt=" + rule + "|" + tag[j],
    ]


def naming_features(
    j: int,
    i: int,
    start: int,
    rule: str,
    lower: Sequence[str],
    lemma: Sequence[str],
    pos: Sequence[str],
    tag: Sequence[str],
    dep: Sequence[str],
    head: Sequence[int],
    counts: NamingCounts,
) -> list[str]:
    """Feature strings of candidate word `j` for the name of head noun `i` that now starts at `start`.

    `rule`: what the rules alone would do (`_Walk.name_rule`: "name", "attr", "drop", "adjname",
    "no", "own").
    """
    return pair_features(lower[j], lemma[j].lower(), lemma[i].lower(), pos[j], counts) + context_features(
        j, i, start, rule, lower, tag, dep, head
    )


def object_features(i: int, name: str, walk: Any) -> list[str]:
    """Features of the rules' object with head token `i` and name `name`, for the object gate.

    The name and its place: dependency, tag, the word it hangs off (the preposition of "in the
    background", the verb of "taking a picture"), that word's own head, its determiner, whether an
    "of" follows ("picture of a cat") and whether it ends the caption.
    """
    w = walk
    lower, dep, head = w.lower, w.dep, w.head
    d = dep[i]
    h = head[i]
    hw = lower[h] if h != i else "^"
    gh = head[h]
    ghw = w.lemma[gh].lower() if d == "pobj" and gh != h else "-"
    det = "-"
    of = "0"
    for k in w.kids[i]:
        if dep[k] == "det":
            det = lower[k]
        elif dep[k] == "prep" and lower[k] == "of":
            of = "1"
    n = w.n
    nxt = lower[i + 1] if i + 1 < n else "$"
    return [
        "b",
        "on=" + name,
        "od=" + d,
        "ot=" + w.tag[i],
        "ond=" + name + "|" + d,
        "ohw=" + hw,
        "onh=" + name + "|" + hw,
        "ogh=" + ghw,
        "onhg=" + name + "|" + hw + "|" + ghw,
        "odet=" + det,
        "onof=" + name + "|" + of,
        "oend=" + str(i + 1 == n or nxt in (".", ",")),
        "ofirst=" + str(i == 0 or all(dep[k] in ("det", "amod", "compound", "nummod") for k in range(i))),
    ]


@dataclass
class ObjectGate:
    """Drops the rules' objects FACTUAL does not annotate in their context ("in the background",
    "taking a picture", "a photo of"), asked only about the names gold sometimes leaves out.

    Why a gate over names: a per-word table (`Lexicon.drop_nouns`) drops a noun everywhere or
    nowhere, but "picture" is an object when it hangs on a wall and none in "taking a picture";
    the other names (man, tree, table) are never asked, so they cost one set look-up.
    """

    weights: dict[str, float]
    threshold: float
    names: frozenset[str]

    def drop(self, i: int, name: str, walk: Any) -> bool:
        if name not in self.names:
            return False
        wd = self.weights
        return sum(wd.get(x, 0.0) for x in object_features(i, name, walk)) < self.threshold


@dataclass
class NamingTagger:
    """Weights, threshold and gold count tables of the naming tagger (see module docstring), and
    the object gate trained with it (None: every object the rules make stays)."""

    weights: dict[str, float]
    threshold: float
    counts: NamingCounts
    keep_alone: int = 1_000_000_000
    gate: ObjectGate | None = None
    _pair: dict[tuple[str, str, str, str, bool], float] = field(default_factory=dict, repr=False, compare=False)
    _split: tuple[frozenset[str], frozenset[str]] | None = field(default=None, repr=False, compare=False)

    def split_pairs(self) -> tuple[frozenset[str], frozenset[str]]:
        """The "modifier|head" lemma pairs gold writes as one object at least `SPLIT_MIN` times and
        at least 10 times as often as head + attribute, and their modifiers (`_Walk.split_names`).
        Computed once per tagger."""
        got = self._split
        if got is None:
            pairs = frozenset(k for k, (a, b) in self.counts.pair.items() if a >= SPLIT_MIN and a >= 10 * b)
            got = self._split = (pairs, frozenset(k.split("|", 1)[0] for k in pairs))
        return got

    def drop_object(self, i: int, name: str, walk: Any) -> bool:
        """Should the rules' object with head `i` and name `name` not be made (the object gate)?"""
        return self.gate is not None and self.gate.drop(i, name, walk)

    @classmethod
    def load(cls, path: str | Path | None = None) -> NamingTagger | None:
        """The shipped tagger (or `path`); None when the file is absent (the rules' naming)."""
        p = Path(path) if path is not None else NAMING_PATH
        if not p.exists():
            return None
        with np.load(p, allow_pickle=False) as z:
            weights, thr = read_linear(z)
            pk, pv = z["pair_keys"].tolist(), z["pair_counts"].tolist()
            mk, mv = z["mod_keys"].tolist(), z["mod_counts"].tolist()
            ak, av = z["alone_keys"].tolist(), z["alone_counts"].tolist()
            keep_alone = int(z["keep_alone"])
            gate = None
            if "gate_vocab" in z.files:
                gw = z["gate_weights"].astype(np.float64).tolist()
                gate = ObjectGate(
                    weights=dict(zip(z["gate_vocab"].tolist(), gw, strict=True)),
                    threshold=float(z["gate_threshold"]),
                    names=frozenset(z["gate_names"].tolist()),
                )
        counts = NamingCounts(
            pair={k: (int(a), int(b)) for k, (a, b) in zip(pk, pv, strict=True)},
            mod={k: (int(a), int(b)) for k, (a, b) in zip(mk, mv, strict=True)},
            alone={k: int(a) for k, a in zip(ak, av, strict=True)},
        )
        return cls(weights=weights, threshold=thr, counts=counts, keep_alone=keep_alone, gate=gate)

    def logit(self, feats: Sequence[str]) -> float:
        wd = self.weights
        return sum(wd.get(x, 0.0) for x in feats)

    def keep(self, j: int, i: int, start: int, rule: str, walk: Any) -> bool:
        """Is word `j` part of the name of head `i` (the walk's repaired lists)?

        A compound the rules keep in the name stays there when gold never wrote its pair either way
        ("laptop keyboard": one object, whatever "laptop computer" taught the modifier counts).
        The pair's part of the logit is cached per (word, lemma, head lemma, POS, kept by the
        rules): captions repeat the same few thousand pairs, so most candidates cost only their
        context look-ups.
        """
        w = walk
        key = (w.lower[j], w.lemma[j], w.lemma[i], w.pos[j], rule == "name")
        z = self._pair.get(key)
        if z is None:
            ml, hl = key[1].lower(), key[2].lower()
            if (
                rule == "name"
                and ml + "|" + hl not in self.counts.pair
                and self.counts.alone.get(ml, 0) >= self.keep_alone
            ):
                z = math.inf  # "laptop keyboard": an unseen pair of two object nouns stays one name
            else:
                z = self.logit(pair_features(key[0], ml, hl, key[3], self.counts))
            if len(self._pair) > 200_000:
                self._pair.clear()
            self._pair[key] = z
        return z + self.logit(context_features(j, i, start, rule, w.lower, w.tag, w.dep, w.head)) >= self.threshold


def save_naming(
    path: str | Path,
    vocab: Sequence[str],
    weights: np.ndarray,
    threshold: float,
    counts: NamingCounts,
    keep_alone: int,
    gate: ObjectGate | None = None,
    **meta: str,
) -> None:
    """Write the tagger (features with a zero weight left out), its count tables and its gate."""
    keep = [k for k, x in enumerate(weights) if abs(x) > 1e-6]
    pk = sorted(counts.pair)
    mk = sorted(counts.mod)
    if gate is not None:
        gv = sorted(k for k, x in gate.weights.items() if abs(x) > 1e-6)
        meta = {
            **meta,
            "gate_vocab": gv,  # type: ignore[dict-item]
            "gate_weights": np.asarray([gate.weights[k] for k in gv], dtype=np.float32),  # type: ignore[dict-item]
            "gate_threshold": np.float64(gate.threshold),  # type: ignore[dict-item]
            "gate_names": sorted(gate.names),  # type: ignore[dict-item]
        }
    np.savez_compressed(
        path,
        vocab=np.asarray([vocab[k] for k in keep]),
        weights=np.asarray([weights[k] for k in keep], dtype=np.float32),
        threshold=np.float64(threshold),
        pair_keys=np.asarray(pk),
        pair_counts=np.asarray([counts.pair[k] for k in pk], dtype=np.int32).reshape(-1, 2),
        mod_keys=np.asarray(mk),
        mod_counts=np.asarray([counts.mod[k] for k in mk], dtype=np.int32).reshape(-1, 2),
        alone_keys=np.asarray(sorted(counts.alone)),
        alone_counts=np.asarray([counts.alone[k] for k in sorted(counts.alone)], dtype=np.int64),
        keep_alone=np.int64(keep_alone),
        **{k: np.asarray(v) for k, v in meta.items()},
    )
