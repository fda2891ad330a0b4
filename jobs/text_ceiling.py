"""The ceiling of the scene-graph design: what spaCy's parse plus candidate selection can reach at best.

Why: the text stage is the rules' objects plus a learned choice among candidate relations and
attributes (`extractors/scene_graph_proposer.py`). Whether the FACTUAL goals (dev all-F1 0.92)
are reachable by a better chooser, or need other candidates or other objects, is a measurement,
not a guess: here a perfect chooser (an oracle that reads the gold graph) picks among exactly the
candidates the proposer is given, and the gold facts it still cannot reach are counted by why.

Three measurements, all with the scorer's normalisation (`extractors/factual.py`):
- `system`: the shipped stage as it is (what `laitkit bench text` scores).
- `oracle_candidates`: the rules' objects unchanged; every candidate relation and attribute (the
  proposer's training candidates, which include every rule fact, and the rules' self-relations)
  kept when its normalised tuple is gold and dropped when not. Object F1 is the system's.
- `oracle_gold_objects`: the same, with the objects named perfectly: each gold object is aligned
  to the caption token that is its head (its last word, by noun lemma; "he" for "man"), the rules'
  facts are moved onto the gold object at the same head token, and the candidates are generated
  anew around those objects. A gold object whose head is not in the caption cannot be aligned.
- `missing`: for each of the two oracles, the gold tuples no candidate produces, by kind:
  relations (an object missing, the pair without any candidate, a predicate whose words are in the
  caption but not generated, a predicate whose words are not in the caption), attributes (object
  missing, word not in the caption, a derived form "wood" -> "wooden", a multiword attribute, the
  word a candidate of another object, the word inside an object's name, a noun / verb / adverb /
  other word of a kind that is never a candidate, too far in the parse) and objects (head in the
  caption or not).

Usage: python -m laitkit.jobs.text_ceiling [--split dev|holdout] [--limit N]
`holdout` is the 3,000 FACTUAL train captions the proposer's thresholds are chosen on
(`train_text --proposer --seed 0`); the test split is never read. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from laitkit.datasets.schema import SceneNode, TextAnnotation
from laitkit.extractors.factual import (
    NUMBER_WORDS,
    Fact,
    Normalizer,
    TupleCounts,
    read_factual_csv,
    spacy_noun_lemmatizer,
)
from laitkit.extractors.scene_graph import NOUNS, PRONOUNS, rule_graph
from laitkit.extractors.scene_graph_proposer import ATTR_POS, MAX_ATTR_PATH, Context, candidates
from laitkit.extractors.text import TextConfig, TextExtractor, graph_to_facts, object_name

log = logging.getLogger("laitkit.text_ceiling")

FACTUAL_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "factual"
HOLDOUT = 3000
SEED = 0

Sets = tuple[set, set, set]


@dataclass
class Score:
    """Micro-averaged tuple counts of one measurement, and its exact graph matches."""

    obj: TupleCounts = field(default_factory=TupleCounts)
    attr: TupleCounts = field(default_factory=TupleCounts)
    rel: TupleCounts = field(default_factory=TupleCounts)
    all: TupleCounts = field(default_factory=TupleCounts)
    matches: int = 0
    n: int = 0

    def add(self, pred: Sets, gold: Sets) -> None:
        self.obj.add(pred[0], gold[0])
        self.attr.add(pred[1], gold[1])
        self.rel.add(pred[2], gold[2])
        self.all.add(pred[0] | pred[1] | pred[2], gold[0] | gold[1] | gold[2])
        self.matches += pred == gold
        self.n += 1

    def as_dict(self) -> dict[str, float]:
        out = {k: round(getattr(self, k).f1, 4) for k in ("all", "obj", "attr", "rel")}
        out["set_match"] = round(self.matches / self.n, 4) if self.n else 1.0
        return out


@dataclass
class Parsed:
    """One caption as the proposer sees it: the rules' graph, the walk's context, and token facts."""

    graph: list[SceneNode]
    ctx: Context
    tokens: list[str]
    lemmas: list[str]
    system: list[SceneNode]


def parse_caption(ex: TextExtractor, doc: Any) -> Parsed | None:
    """The rules' graph and context of a parsed caption (as training builds them) and the stage's graph."""
    tokens, lower, lemma, upos, tag, dep, head, ws = ex._strings.lists(doc)
    if not lower:
        return None
    nouns = ex.noun_tagger.nouns(lower, upos, tag, dep, head) if ex.noun_tagger is not None else frozenset()
    graph, ctx = rule_graph(ex.lexicon, lower, lemma, upos, tag, dep, head, ws, nouns)
    return Parsed(graph, ctx, tokens, lemma, ex.annotate_doc(doc).graph)


def _ann(p: Parsed, graph: list[SceneNode]) -> TextAnnotation:
    return TextAnnotation(model="", tokens=p.tokens, upos=[], tags=[], lemmas=p.lemmas, graph=graph)


def align_gold_objects(norm: Normalizer, ctx: Context, names: Sequence[str]) -> tuple[list[SceneNode], list[str]]:
    """Gold object nodes on the caption's tokens, and the gold names that could not be aligned.

    A gold object's head is its name's last word; it aligns to an unused token whose noun lemma is
    that word (or a pronoun FACTUAL writes that way: "he" -> "man"), preferring nouns and tokens
    preceded by the name's other words, which then join the object's tokens. Longer names go first
    so that "tennis racket" takes its own "racket" before a plain "racket" does.
    """
    lower, pos = ctx.lower, ctx.pos
    n = len(lower)
    keys: list[set[str]] = []
    for t in range(n):
        k = {lower[t], norm.obj(lower[t])}
        if lower[t] in PRONOUNS:
            k.add(PRONOUNS[lower[t]])
        if t >= 2 and lower[t - 1] == "-":  # "t-shirt" is three spaCy tokens
            k.add(norm.obj(lower[t - 2] + "-" + lower[t]))
        keys.append(k)
    used: set[int] = set()
    nodes: list[SceneNode] = []
    lost: list[str] = []
    for name in sorted(names, key=lambda x: (-len(x.split()), x)):
        words = name.split()
        best: tuple | None = None
        for t in range(n):
            if t in used or words[-1] not in keys[t]:
                continue
            start = t
            for w in reversed(words[:-1]):  # the name's other words right before the head
                if start > 0 and start - 1 not in used and w in keys[start - 1]:
                    start -= 1
                else:
                    break
            score = (t - start, pos[t] in NOUNS, -t)
            if best is None or score > best[0]:
                best = (score, start, t)
        if best is None:
            lost.append(name)
            continue
        _, start, t = best
        toks = tuple(range(start, t + 1))
        used.update(toks)
        nodes.append(SceneNode(kind="object", lemma=name, tokens=toks))
    nodes.sort(key=lambda nd: nd.span[1])
    return nodes, lost


def on_gold_objects(p: Parsed, objs: list[SceneNode]) -> list[SceneNode]:
    """The graph with `objs` as its objects and the rules' facts moved onto them by head token."""
    by_head = {nd.span[1] - 1: k for k, nd in enumerate(objs)}
    moved: dict[int, int] = {}
    for i, nd in enumerate(p.graph):
        if nd.kind == "object" and (k := by_head.get(nd.span[1] - 1)) is not None:
            moved[i] = k
    out = list(objs)
    for nd in p.graph:
        if nd.kind == "attribute" and nd.subject in moved:
            out.append(replace(nd, subject=moved[nd.subject]))
        elif nd.kind == "relation" and nd.subject in moved and nd.object in moved:
            out.append(replace(nd, subject=moved[nd.subject], object=moved[nd.object]))
    return out


@dataclass
class Oracle:
    """The candidates' tuples of one caption's graph and the best graph's sets."""

    names: dict[int, str]  # object node index -> normalised name
    rel_cands: dict[tuple[str, str], set[str]]  # (subject, object) names -> candidate predicates
    rel_tuples: set
    attr_tuples: set
    attr_words: dict[str, set[str]]  # candidate attribute text -> the object names it was proposed for


def oracle_of(norm: Normalizer, graph: list[SceneNode], ctx: Context, alts: dict, name_of: Any) -> Oracle:
    """Every relation and attribute candidate of `graph` as normalised tuples."""
    ctx = ctx.replace(certain=frozenset())  # node indices of another graph; the oracle ignores kinds
    rc, ac, keep = candidates(graph, ctx, alts)
    objs = [i for i, nd in enumerate(graph) if nd.kind == "object"]
    names = {i: norm.obj(name_of(i)) for i in objs}
    rel_cands: dict[tuple[str, str], set[str]] = {}
    for c in rc:
        rel_cands.setdefault((names[c[0]], names[c[1]]), set()).add(norm.pred(c[2][0]))
    for nd in keep:  # the rules' self-relations, numbered in object order
        s = names[objs[nd.subject]]
        rel_cands.setdefault((s, s), set()).add(norm.pred(nd.lemma))
    rel_tuples = {(s, p, o) for (s, o), ps in rel_cands.items() for p in ps}
    attr_words: dict[str, set[str]] = {}
    for c in ac:
        attr_words.setdefault(norm.attr(c[1]), set()).add(names[c[0]])
    attr_tuples = {(o, a) for a, os in attr_words.items() for o in os}
    return Oracle(names, rel_cands, rel_tuples, attr_tuples, attr_words)


def best_sets(o: Oracle, gold: Sets) -> Sets:
    """The oracle's graph: the objects as they are, every gold candidate kept, no other."""
    return {(x,) for x in o.names.values()}, o.attr_tuples & gold[1], o.rel_tuples & gold[2]


def why_missing(o: Oracle, gold: Sets, ctx: Context, graph: list[SceneNode], lost: set[str]) -> Counter:
    """Counts of the gold tuples the oracle cannot reach, by reason (see module docstring)."""
    why: Counter = Counter()
    have = set(o.names.values())
    for (g,) in gold[0]:
        if g not in have:
            why["obj:" + ("head_not_in_caption" if g in lost else "head_in_caption")] += 1
    words = set(ctx.lower) | set(ctx.words())
    for s, p, ob in gold[2]:
        if (s, p, ob) in o.rel_tuples:
            continue
        if s not in have or ob not in have:
            why["rel:object_missing"] += 1
        elif not o.rel_cands.get((s, ob)) and not o.rel_cands.get((ob, s)):
            why["rel:pair_without_candidates"] += 1
        elif p in o.rel_cands.get((ob, s), ()):
            why["rel:predicate_reversed"] += 1
        elif all(w in words for w in p.split()):
            why["rel:predicate_words_in_caption"] += 1
        else:
            why["rel:predicate_not_in_caption"] += 1
    lower = [NUMBER_WORDS.get(w, w) for w in ctx.lower]
    obj_tok = {t for nd in graph if nd.kind == "object" for t in nd.tokens}
    for ob, a in gold[1]:
        if (ob, a) in o.attr_tuples:
            continue
        aw = a.split()
        if ob not in have:
            why["attr:object_missing"] += 1
        elif not all(w in lower for w in aw):
            derived = any(len(w) >= 4 and any(x[:4] == w[:4] for x in lower) for w in aw)
            why["attr:" + ("derived_form" if derived else "word_not_in_caption")] += 1
        elif len(aw) > 1:
            why["attr:multiword"] += 1
        elif a in o.attr_words:
            why["attr:candidate_of_another_object"] += 1
        else:
            toks = [t for t, w in enumerate(lower) if w == a]
            if all(t in obj_tok for t in toks):
                why["attr:inside_object_name"] += 1
            elif not any(_attr_kind(ctx, t) for t in toks):
                kind = {"NOUN": "noun", "PROPN": "noun", "VERB": "verb", "ADV": "adverb"}.get(ctx.pos[toks[0]], "word")
                why[f"attr:not_a_candidate_{kind}"] += 1  # "egg sculpture", "crouched" as a past tense
            else:
                near = any(
                    ctx.path_len(t, nd.span[1] - 1) <= MAX_ATTR_PATH
                    for i, nd in enumerate(graph)
                    if nd.kind == "object" and o.names[i] == ob
                    for t in toks
                )
                # "other": near enough but taken into one of the rules' attributes ("dark brown")
                why["attr:" + ("other" if near else "too_far_in_parse")] += 1
    return why


def _attr_kind(ctx: Context, t: int) -> bool:
    """Is token `t` a kind of word the proposer makes attribute candidates of?"""
    return ctx.pos[t] in ATTR_POS or ctx.tag[t] in ("VBN", "VBG") or ctx.dep[t] in ("acomp", "amod")


def ceiling(ex: TextExtractor, docs: Sequence[Any], golds: Sequence[Sequence[Fact]]) -> dict[str, Any]:
    """The three measurements and the missing-candidate breakdowns over parsed captions."""
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    alts = ex.proposer.alts if ex.proposer is not None else {}
    system, ora, ora_gold = Score(), Score(), Score()
    miss: Counter = Counter()
    miss_gold: Counter = Counter()
    n_gold: Counter = Counter()
    for doc, gold_facts in zip(docs, golds, strict=True):
        gold = norm.tuples(gold_facts)
        n_gold.update(obj=len(gold[0]), attr=len(gold[1]), rel=len(gold[2]))
        p = parse_caption(ex, doc)
        if p is None:
            empty: Sets = (set(), set(), set())
            for s in (system, ora, ora_gold):
                s.add(empty, gold)
            continue
        system.add(norm.tuples(graph_to_facts(_ann(p, p.system))), gold)
        ann = _ann(p, p.graph)
        gobjs, lost = align_gold_objects(norm, p.ctx, [g[0] for g in gold[0]])
        o = oracle_of(norm, p.graph, p.ctx, alts, lambda i, a=ann: object_name(a, i))
        ora.add(best_sets(o, gold), gold)
        miss.update(why_missing(o, gold, p.ctx, p.graph, set(lost)))
        g_graph = on_gold_objects(p, gobjs)
        og = oracle_of(norm, g_graph, p.ctx, alts, lambda i, g=g_graph: g[i].lemma)
        ora_gold.add(best_sets(og, gold), gold)
        miss_gold.update(why_missing(og, gold, p.ctx, g_graph, set(lost)))
    return {
        "n_captions": len(docs),
        "gold_tuples": dict(n_gold),
        "system": system.as_dict(),
        "oracle_candidates": ora.as_dict(),
        "oracle_gold_objects": ora_gold.as_dict(),
        "missing": {
            "oracle_candidates": dict(sorted(miss.items())),
            "oracle_gold_objects": dict(sorted(miss_gold.items())),
        },
    }


def holdout_captions(train: Path, seed: int = SEED, holdout: int = HOLDOUT) -> tuple[list[str], list]:
    """The train captions the proposer's thresholds are chosen on (`train_text._held_out_ids`)."""
    from laitkit.jobs.train_text import held_out_ids

    captions, golds = read_factual_csv(train)
    held = held_out_ids(len(captions), seed, holdout)[0]
    return [captions[i] for i in held], [golds[i] for i in held]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=("dev", "holdout"), default="dev")
    ap.add_argument("--data", default=str(FACTUAL_DIR), help="folder with FACTUAL dev.csv and train.csv")
    ap.add_argument("--limit", type=int, default=None, help="only the first N captions of the split")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    d = Path(args.data)
    need = d / ("dev.csv" if args.split == "dev" else "train.csv")
    if not need.exists():
        print(f"text_ceiling: error: FACTUAL split not found: {need}", file=sys.stderr)
        return 2
    if args.split == "dev":
        captions, golds = read_factual_csv(d / "dev.csv")
    else:
        captions, golds = holdout_captions(d / "train.csv")
    if args.limit is not None:
        captions, golds = captions[: args.limit], golds[: args.limit]
    ex = TextExtractor(TextConfig())
    t0 = time.perf_counter()
    docs = list(ex.nlp.pipe([c[: ex.cfg.max_chars] for c in captions], batch_size=ex.cfg.batch_size))
    res = ceiling(ex, docs, golds)
    log.info("%d captions in %.1fs", len(docs), time.perf_counter() - t0)
    print(json.dumps({"split": args.split, **res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
