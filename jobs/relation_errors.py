"""Relation error breakdown of the text stage on held-out FACTUAL train captions.

Why: relations are the largest gap to the goal, and the fix depends on where a miss comes from:
an object named differently (naming work), a pair the proposer left unrelated although the gold
predicate was among its candidates (scoring work), or a gold predicate that no candidate kind
spells (new candidate kinds, by construction). This counts each missed gold relation and each
wrong predicted relation by such a class, on the captions `train_text --proposer` holds out for
the seed (never dev, never test), so that candidate kinds are added where the misses are.

Missed gold relation (s, p, o), first class that applies:
- `object`: s or o is not a predicted object;
- `reversed`: the prediction has (o, p, s);
- `other_predicate:spelling`: the pair has a predicted predicate sharing p's first word's stem
  ("sit on" vs "sitting on"), otherwise `other_predicate:different`;
- `unrelated:candidate_scored_low`: the pair is unrelated, p was a candidate in this direction;
- `unrelated:candidate_reversed_only`: p was a candidate the other way round only;
- `unrelated:not_candidate:<construction>`: p was no candidate; the construction is read off the
  dependency path between the objects' heads and the gold predicate (see `construction`).
Wrong predicted relation: `object` (an object not in gold), `reversed`, `gold_other_predicate:
spelling|different`, `gold_writes_nothing` (gold relates the pair in neither direction).

Prints one JSON object: the counts, and the commonest cases of the large classes (for a
not-a-candidate construction: the gold predicate with the words on the path between the heads;
for another predicate: gold <- predicted; for scored low: the gold predicate; for a wrong one:
predicted -> gold), to read what kind to add next.

Usage: python -m laitkit.jobs.relation_errors [--seed 0] [--holdout 3000] [--proposer PATH] [--naming PATH]
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from typing import Any

from laitkit.extractors.factual import Normalizer
from laitkit.extractors.text import TextExtractor
from laitkit.jobs.breakdown_cli import breakdown_main, caption_rows, summary

MULTI_PREPS = ("next to", "in front of", "on top of", "in middle of", "on side of", "in back of", "close to")


def _stem(w: str) -> str:
    """A crude stem for "same predicate, other spelling": sitting/sits/sat are not equal, sit* are."""
    for suf in ("ing", "ed", "es", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)]
            break
    return w.rstrip("e")[:4] if len(w) > 4 else w.rstrip("e")


def same_spelling(p: str, q: str) -> bool:
    """Whether two predicates are one relation spelled differently: the same first word's stem
    ("sit on" / "sitting on", "on" / "on top of")."""
    a, b = _stem(p.split(" ", 1)[0]), _stem(q.split(" ", 1)[0])
    return a == b or (min(len(a), len(b)) >= 3 and (a.startswith(b) or b.startswith(a)))


def construction(ctx: Any, ha: int, hb: int, gold_pred: str, lemmas: set[str]) -> str:
    """The construction between heads `ha`, `hb` that made no candidate spell `gold_pred`."""
    from laitkit.extractors.scene_graph_proposer import MAX_PATH

    up, down = ctx.path(ha, hb)
    inner = up[1:] + down[:-1]
    deps = {ctx.dep[t] for t in up[:-1] + down}
    words = {ctx.lower[t] for t in inner}
    gw = gold_pred.split(" ")
    if len(up) + len(down) - 1 > MAX_PATH:
        return "path_too_long"
    if not inner and ("compound" in (ctx.dep[ha], ctx.dep[hb])):
        return "compound_pair"
    if "agent" in deps or "auxpass" in {ctx.dep[c] for c in range(len(ctx.dep)) if ctx.head[c] in inner}:
        return "passive"
    if gold_pred in MULTI_PREPS or (len(gw) > 1 and gw[-1] in ("to", "of") and gw[0] in ("next", "front", "top")):
        return "multiword_prep"
    if "with" in words:
        return "with_convention"
    if "of" in words:
        return "x_of_y"
    if "'s" in words or "poss" in (ctx.dep[ha], ctx.dep[hb]):
        return "possessive"
    if "relcl" in deps:
        return "relative_clause"
    if "conj" in deps and any(ctx.pos[t] == "VERB" for t in inner):
        return "coordinated_verbs"
    if "acl" in deps:
        return "participle_acl"
    if gw[0] not in lemmas:
        return "predicate_word_not_in_caption"
    if not any(ctx.lower[t] == gw[0] or ctx.lemma[t].lower() == gw[0] for t in inner):
        return "predicate_word_off_path"
    return "other"


def breakdown(ex: TextExtractor, norm: Normalizer, captions: list[str], golds: list) -> dict[str, Any]:
    """Counts of the relation error classes over `captions` (see module docstring)."""
    missed: Counter = Counter()
    wrong: Counter = Counter()
    examples: dict[str, Counter] = defaultdict(Counter)
    n_gold = n_pred = 0
    for doc, (go, _, gr), (po, _, pr), c in caption_rows(ex, norm, captions, golds):
        n_gold += len(gr)
        n_pred += len(pr)
        cand: set = set()
        head_of: dict[str, int] = {}
        ctx = None
        if c is not None:
            graph, rc, _, _, nm = c
            cand = {(nm(x[0]), norm.pred(x[2][0]), nm(x[1])) for x in rc}
            for i, n in enumerate(graph):
                if n.kind == "object":
                    head_of.setdefault(nm(i), n.span[1] - 1)
            from laitkit.extractors.scene_graph import rule_graph

            lower = [t.lower_ for t in doc]
            ctx = rule_graph(
                ex.lexicon, lower, [t.lemma_ for t in doc], [t.pos_ for t in doc], [t.tag_ for t in doc],
                [t.dep_ for t in doc], [t.head.i for t in doc], [t.text_with_ws for t in doc],
                ex.noun_tagger.nouns(lower, [t.pos_ for t in doc], [t.tag_ for t in doc],
                                     [t.dep_ for t in doc], [t.head.i for t in doc])
                if ex.noun_tagger is not None else frozenset(),
            )[1]  # fmt: skip
        lemmas = {t.lemma_.lower() for t in doc} | {t.lower_ for t in doc}
        pobj = {o[0] for o in po}
        gobj = {o[0] for o in go}
        by_pair_p: dict[tuple, set] = defaultdict(set)
        by_pair_g: dict[tuple, set] = defaultdict(set)
        for s, p, o in pr:
            by_pair_p[(s, o)].add(p)
        for s, p, o in gr:
            by_pair_g[(s, o)].add(p)
        for s, p, o in sorted(gr - pr):
            if s not in pobj or o not in pobj:
                cls = "object"
            elif (o, p, s) in pr:
                cls = "reversed"
            elif by_pair_p.get((s, o)) or by_pair_p.get((o, s)):
                others = by_pair_p.get((s, o), set()) | by_pair_p.get((o, s), set())
                cls = "other_predicate:" + ("spelling" if any(same_spelling(p, q) for q in others) else "different")
                examples["other_predicate"][f"{p} <- {'/'.join(sorted(others))}"] += 1
            elif (s, p, o) in cand:
                cls = "unrelated:candidate_scored_low"
                examples["scored_low"][p] += 1
            elif (o, p, s) in cand:
                cls = "unrelated:candidate_reversed_only"
            elif ctx is not None and s in head_of and o in head_of:
                k = construction(ctx, head_of[s], head_of[o], p, lemmas)
                cls = "unrelated:not_candidate:" + k
                up, down = ctx.path(head_of[s], head_of[o])
                path = " ".join(ctx.lower[t] for t in sorted(set(up[1:] + down[:-1])))
                examples["not_candidate:" + k][f"{p} <{path}>"] += 1
            else:
                cls = "unrelated:not_candidate:no_head"
            missed[cls] += 1
        for s, p, o in sorted(pr - gr):
            if s not in gobj or o not in gobj:
                cls = "object"
            elif (o, p, s) in gr:
                cls = "reversed"
            elif by_pair_g.get((s, o)) or by_pair_g.get((o, s)):
                others = by_pair_g.get((s, o), set()) | by_pair_g.get((o, s), set())
                cls = "gold_other_predicate:" + (
                    "spelling" if any(same_spelling(p, q) for q in others) else "different"
                )
                examples["wrong_other_predicate"][f"{p} -> {'/'.join(sorted(others))}"] += 1
            else:
                cls = "gold_writes_nothing"
                examples["gold_writes_nothing"][p] += 1
            wrong[cls] += 1
    return summary("relations", len(captions), n_gold, n_pred, missed, wrong, examples, _top)


def _top(key: str) -> int:
    """How many examples of `key` the breakdown prints."""
    return 8 if key.startswith("not_candidate") else 12


def main(argv: list[str] | None = None) -> int:
    return breakdown_main(argv, __doc__.split("\n")[0], breakdown)


if __name__ == "__main__":
    sys.exit(main())
