"""FACTUAL scene-graph format: parse, format and score textual scene graphs.

Why a module of its own: the CLI export, the benchmark, the learned lexicon's miner and the tests
all read or write the same "( subject , predicate , object )" strings, and the score is only
meaningful if one function defines it. Nothing here needs spaCy except the noun lemmatiser that the
scorer takes as an argument, so parsing and formatting stay import-light.

Format (Li et al., 2023, "FACTUAL"): facts joined by " , ", each "( subject , predicate , object )";
predicate "is" marks an attribute or a count ("( cat , is , black )", "( boys , is , 2 )"); a lone
"( wall )" is an object with no fact.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

Fact = tuple[str, ...]

_FACT = re.compile(r"\(\s*(.*?)\s*\)(?=\s*,\s*\(|\s*$)", re.S)
_WS = re.compile(r"\s+")

NUMBER_WORDS = {
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
}


def parse_factual(s: str) -> list[Fact]:
    """Parse a FACTUAL scene-graph string into its facts, in order.

    Each fact is a tuple of its stripped elements: 3 for "( s , p , o )", 1 for "( o )". Elements are
    split on " , " (FACTUAL's separator), so commas inside a word survive. Anything that is not a
    parenthesised fact is ignored; an empty or malformed string gives [].
    """
    if not s or not s.strip():
        return []
    facts: list[Fact] = []
    for body in _FACT.findall(s.strip()):
        parts = tuple(_WS.sub(" ", p).strip() for p in body.split(" , "))
        if parts and all(parts):
            facts.append(parts)
    return facts


def _clean(x: str) -> str:
    """FACTUAL elements may not contain the separators; collapse whitespace and strip them."""
    return _WS.sub(" ", x.replace("(", " ").replace(")", " ").replace(" , ", " ")).strip()


def format_factual(facts: Iterable[Fact]) -> str:
    """Inverse of `parse_factual`: "( a , b , c ) , ( d )"."""
    return " , ".join("( " + " , ".join(_clean(x) for x in f) + " )" for f in facts)


# --- scoring ------------------------------------------------------------------------------------


@dataclass
class TupleCounts:
    """True positives and set sizes for one tuple family, summed over captions (micro average)."""

    tp: int = 0
    n_pred: int = 0
    n_gold: int = 0

    def add(self, pred: set, gold: set) -> None:
        self.tp += len(pred & gold)
        self.n_pred += len(pred)
        self.n_gold += len(gold)

    @property
    def f1(self) -> float:
        if self.n_pred + self.n_gold == 0:
            return 1.0
        return 2.0 * self.tp / (self.n_pred + self.n_gold)


class Normalizer:
    """Maps FACTUAL elements to the lemma-exact keys the scorer compares.

    objects: lower-cased, whitespace collapsed, every word reduced to its noun lemma by
    `noun_lemma` (the spaCy English rule lemmatiser's noun tables: "giraffes" -> "giraffe");
    attributes: lower-cased, number words to digits ("two" -> "2");
    predicates: lower-cased (FACTUAL predicates are already lemmatised, "sit on"; so must ours be).
    """

    def __init__(self, noun_lemma: Callable[[str], str]) -> None:
        self._noun_lemma = noun_lemma
        self._cache: dict[str, str] = {}

    def obj(self, x: str) -> str:
        key = self._cache.get(x)
        if key is None:
            key = " ".join(self._noun_lemma(w) for w in _WS.sub(" ", x.lower()).strip().split(" "))
            self._cache[x] = key
        return key

    @staticmethod
    def attr(x: str) -> str:
        x = _WS.sub(" ", x.lower()).strip()
        return NUMBER_WORDS.get(x, x)

    @staticmethod
    def pred(x: str) -> str:
        return _WS.sub(" ", x.lower()).strip()

    def tuples(self, facts: Sequence[Fact]) -> tuple[set, set, set]:
        """(objects, attributes, relations) as sets of normalised tuples for one caption."""
        objs: set = set()
        attrs: set = set()
        rels: set = set()
        for f in facts:
            if len(f) == 1:
                objs.add((self.obj(f[0]),))
            elif len(f) == 3:
                s = self.obj(f[0])
                objs.add((s,))
                if self.pred(f[1]) == "is":
                    attrs.add((s, self.attr(f[2])))
                else:
                    o = self.obj(f[2])
                    objs.add((o,))
                    rels.add((s, self.pred(f[1]), o))
        return objs, attrs, rels


def score_facts(
    pred: Sequence[Sequence[Fact]], gold: Sequence[Sequence[Fact]], normalizer: Normalizer
) -> dict[str, float]:
    """Tuple F1 of predicted against gold FACTUAL graphs, one entry per caption.

    Scorer (stated once, used by the benchmark and tests): for each caption, the gold and the
    predicted graph are each turned into three sets of lemma-exact tuples by `Normalizer`:
    objects (every entity that appears in any fact, lone objects included), (object, attribute) for
    every "is" fact, and (subject, predicate, object) for every other fact. A predicted tuple is
    correct only if the identical normalised tuple is in the gold set of the same caption (no
    synonyms, no partial credit). True positives and set sizes are summed over all captions
    (micro average) and F1 = 2 TP / (|pred| + |gold|) per family; "all" pools the three families.
    """
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted graphs for {len(gold)} gold graphs")
    c_obj, c_attr, c_rel, c_all = TupleCounts(), TupleCounts(), TupleCounts(), TupleCounts()
    for p, g in zip(pred, gold, strict=True):
        po, pa, pr = normalizer.tuples(p)
        go, ga, gr = normalizer.tuples(g)
        c_obj.add(po, go)
        c_attr.add(pa, ga)
        c_rel.add(pr, gr)
        c_all.add(po | pa | pr, go | ga | gr)
    return {"all": c_all.f1, "obj": c_obj.f1, "attr": c_attr.f1, "rel": c_rel.f1}


def set_match(pred: Sequence[Sequence[Fact]], gold: Sequence[Sequence[Fact]], normalizer: Normalizer) -> float:
    """Share of captions whose whole predicted graph equals the gold graph (exact set match).

    Same normalisation as `score_facts`: a caption matches when its object, attribute and relation
    tuple sets are all identical to gold's, so fact order and duplicates do not matter. This is
    the "exact set match" FACTUAL reports for its parsers; an empty split gives 1.0.
    """
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted graphs for {len(gold)} gold graphs")
    if not gold:
        return 1.0
    hits = sum(normalizer.tuples(p) == normalizer.tuples(g) for p, g in zip(pred, gold, strict=True))
    return hits / len(gold)


def spacy_noun_lemmatizer(nlp: object) -> Callable[[str], str]:
    """A word -> noun-lemma function from a loaded spaCy pipeline's rule-lemmatiser tables.

    Same tables and order as spaCy's rule lemmatiser, applied to a word out of context with POS
    NOUN: a listed exception, else the form of the last suffix rule that gives a known noun
    ("shoes" -> "shoe"), else the word itself.
    """
    lookups = nlp.get_pipe("lemmatizer").lookups  # type: ignore[attr-defined]
    index = set(lookups.get_table("lemma_index").get("noun", []))
    exc = lookups.get_table("lemma_exc").get("noun", {})
    rules = lookups.get_table("lemma_rules").get("noun", [])
    cache: dict[str, str] = {}

    def lemma(w: str) -> str:
        out = cache.get(w)
        if out is not None:
            return out
        if w in exc:
            out = exc[w][0]
        else:
            forms = [w[: len(w) - len(old)] + new for old, new in rules if w.endswith(old) and len(w) > len(old)]
            known = [f for f in forms if f in index]
            out = known[-1] if known else w  # spaCy puts the last matching rule's known form first
        cache[w] = out
        return out

    return lemma


def read_factual_csv(path: str | Path, limit: int | None = None) -> tuple[list[str], list[list[Fact]]]:
    """Captions and parsed gold graphs of a FACTUAL split (columns caption, scene_graph)."""
    captions: list[str] = []
    graphs: list[list[Fact]] = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            captions.append(row["caption"])
            graphs.append(parse_factual(row["scene_graph"]))
            if limit is not None and len(captions) >= limit:
                break
    return captions, graphs
