"""Object-naming error breakdown of the text stage on held-out FACTUAL train captions.

Why: object naming (which words make an object's name) caps relations and attributes too: a
relation whose object is named differently from gold is missed whatever its predicate. Before
(and after) changing the naming, this counts what kind of naming error each missed gold object and
each extra predicted object is, on the captions `train_text --proposer/--naming` hold out for the
seed (never dev, never test), so that the work goes where the errors are.

Each missed gold object is paired with an extra predicted object of the same caption where one
explains it (same head word, "X of Y", plural/lemma), otherwise it is classified alone; the
classes are in `classify`. Prints one JSON object: counts per class, and the gold relations missed
because one of their objects is.

Usage: python -m laitkit.jobs.naming_errors [--seed 0] [--holdout 3000] [--naming PATH] [--proposer PATH]
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from laitkit.extractors.factual import NUMBER_WORDS, Normalizer
from laitkit.extractors.scene_graph import PRONOUNS
from laitkit.extractors.text import TextExtractor, graph_to_facts
from laitkit.jobs.breakdown_cli import breakdown_main

PRONOUN_NAMES = frozenset(PRONOUNS.values())


def _pair_class(g: str, p: str, gold_attrs: set, pred_attrs: set, text: str) -> str | None:
    """The class of missed gold object `g` explained by extra predicted object `p`, or None."""
    gw, pw = g.split(" "), p.split(" ")
    if gw[-1] == pw[-1]:
        if len(gw) > len(pw) and gw[-len(pw) :] == pw:
            extra = gw[-len(pw) - 1]
            if (p, extra) in pred_attrs or any(a.startswith(extra[:4]) for o, a in pred_attrs if o == p):
                return "name_too_short:modifier_read_as_attribute"
            return "name_too_short:modifier_dropped"
        if len(pw) > len(gw) and pw[-len(gw) :] == gw:
            extra = pw[-len(gw) - 1]
            if (g, extra) in gold_attrs or any(a.startswith(extra[:4]) for o, a in gold_attrs if o == g):
                return "name_too_long:gold_writes_attribute"
            return "name_too_long:gold_drops_modifier"
        return "same_head_other_modifier"
    if g.replace(" ", "") == p.replace(" ", "") or g.replace("-", "") == p.replace("-", ""):
        return "spelling_joined_or_hyphen"
    if gw[-1].rstrip("s") == pw[-1].rstrip("s") or gw[-1][:4] == pw[-1][:4]:
        return "plural_or_lemma"
    if f"{pw[-1]} of" in text and gw[-1] in text:
        return "x_of_y_head"
    if gw[-1] in pw[:-1]:
        return "head_chosen_wrong"
    return None


def classify(
    gold_objs: set, pred_objs: set, gold_attrs: set, pred_attrs: set, text: str, words: set
) -> tuple[list[str], list[str], set]:
    """(classes of missed gold objects, classes of extra predicted objects, missed gold names)."""
    missed = sorted(gold_objs - pred_objs)
    extra = sorted(pred_objs - gold_objs)
    used: set[str] = set()
    out_m: list[str] = []
    for g in missed:
        hit = None
        for p in extra:
            if p in used:
                continue
            c = _pair_class(g, p, gold_attrs, pred_attrs, text)
            if c is not None:
                hit = (p, c)
                break
        if hit is not None:
            used.add(hit[0])
            out_m.append(hit[1])
            continue
        gw = g.split(" ")
        if g in PRONOUN_NAMES and not any(w in words for w in gw):
            out_m.append("missed:pronoun_or_implicit_person")
        elif any(w.isdigit() or w in NUMBER_WORDS for w in gw):
            out_m.append("missed:number")
        elif any(g in p.split(" ")[:-1] for p in pred_objs):
            out_m.append("missed:modifier_of_a_predicted_name")  # "train" of "train station"
        elif all(w in words for w in gw):
            out_m.append("missed:words_in_caption" if len(gw) == 1 else "missed:multiword_in_caption")
        elif gw[-1] in words:
            out_m.append("missed:head_in_caption_other_words")
        else:
            out_m.append("missed:not_in_caption")
    out_e: list[str] = []
    for p in extra:
        if p in used:
            continue
        pw = p.split(" ")
        if any(w.isdigit() or w in NUMBER_WORDS for w in pw):
            out_e.append("extra:number")
        elif p in PRONOUN_NAMES:
            out_e.append("extra:person_word")
        elif any(p == o.split(" ")[-1] or p in o.split(" ") for o in gold_objs):
            out_e.append("extra:part_of_a_gold_name")
        elif any(a == p or a == pw[-1] for _, a in gold_attrs):
            out_e.append("extra:gold_writes_attribute")
        else:
            out_e.append("extra:gold_has_no_such_object")
    return out_m, out_e, set(missed)


def breakdown(ex: TextExtractor, norm: Normalizer, captions: list[str], golds: list) -> dict[str, Any]:
    """Counts of the naming error classes over `captions` (see module docstring)."""
    from laitkit.extractors.factual import score_facts, set_match

    preds: list = []
    cm: Counter = Counter()
    ce: Counter = Counter()
    rel_missed = rel_by_name = 0
    n_gold = n_pred = n_extra = 0
    for ann, gold in zip(ex.annotate(captions), golds, strict=True):
        go, ga, gr = norm.tuples(gold)
        preds.append(graph_to_facts(ann))
        po, pa, pr = norm.tuples(preds[-1])
        gos, pos = {o[0] for o in go}, {o[0] for o in po}
        n_gold += len(gos)
        n_pred += len(pos)
        n_extra += len(pos - gos)
        text = " ".join(t.lower() for t in ann.tokens)
        words = {norm.obj(t.lower()) for t in ann.tokens} | {t.lower() for t in ann.tokens}
        m, e, missed = classify(gos, pos, ga, pa, text, words)
        cm.update(m)
        ce.update(e)
        for r in gr - pr:
            rel_missed += 1
            if r[0] in missed or r[2] in missed:
                rel_by_name += 1
    return {
        "captions": len(captions),
        "gold_objects": n_gold,
        "pred_objects": n_pred,
        "missed_objects": sum(cm.values()),
        "extra_objects": n_extra,
        "missed": dict(cm.most_common()),
        "extra_unpaired": dict(ce.most_common()),
        "f1": {k: round(v, 4) for k, v in score_facts(preds, golds, norm).items()},
        "set_match": round(set_match(preds, golds, norm), 4),
        "relations_missed": rel_missed,
        "relations_missed_by_object_naming": rel_by_name,
    }


def main(argv: list[str] | None = None) -> int:
    return breakdown_main(argv, __doc__.split("\n")[0], breakdown)


if __name__ == "__main__":
    sys.exit(main())
