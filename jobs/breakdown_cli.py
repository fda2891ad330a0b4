"""What the text stage's error breakdowns (`naming_errors`, `relation_errors`, `attribute_errors`)
share: their command line, the per-caption rows and the summary.

Why one place: they read FACTUAL train, take exactly the captions `train_text --proposer` holds out
for the seed (never dev, never test), run the stage with the given weights and print the breakdown
as one JSON line; a second copy of that would drift from the split the thresholds are chosen on.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from laitkit.extractors.factual import Normalizer, read_factual_csv, spacy_noun_lemmatizer
from laitkit.extractors.text import TextConfig, TextExtractor, graph_to_facts

DEFAULT_TRAIN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "factual" / "train.csv"

Breakdown = Callable[[TextExtractor, Normalizer, list[str], list], dict[str, Any]]


def breakdown_main(argv: list[str] | None, description: str, breakdown: Breakdown) -> int:
    """Parse the shared options, run `breakdown` on the held-out train captions, print its JSON."""
    from laitkit.jobs.train_text import held_out_ids

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--train", default=str(DEFAULT_TRAIN))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", type=int, default=3000)
    ap.add_argument("--naming", default=None, help="naming tagger weights (a missing path = rules only)")
    ap.add_argument("--proposer", default=None, help="proposer weights (a missing path = rules only)")
    args = ap.parse_args(argv)
    captions, golds = read_factual_csv(args.train)
    ids = held_out_ids(len(captions), args.seed, args.holdout)[0]
    ex = TextExtractor(replace(TextConfig(), naming=args.naming, proposer=args.proposer))
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    print(json.dumps(breakdown(ex, norm, [captions[i] for i in ids], [golds[i] for i in ids])))
    return 0


def caption_rows(ex: TextExtractor, norm: Normalizer, captions: list[str], golds: list) -> Iterator[tuple]:
    """Per caption: (Doc, gold tuples, predicted tuples, the proposer's candidates for it), the
    tuples as `Normalizer.tuples` gives them and the candidates as `train_text._proposer_caption`
    (None where it has none)."""
    from laitkit.jobs.train_text import _proposer_caption

    alts = ex.proposer.alts if ex.proposer is not None else {}
    for doc, gold in zip(ex.nlp.pipe(captions, batch_size=256), golds, strict=True):
        pred = norm.tuples(graph_to_facts(ex.annotate_doc(doc)))
        yield doc, norm.tuples(gold), pred, _proposer_caption(doc, gold, ex, norm, alts)


def summary(
    kind: str,
    n_captions: int,
    n_gold: int,
    n_pred: int,
    missed: Counter,
    wrong: Counter,
    examples: dict[str, Counter],
    top: Callable[[str], int],
) -> dict[str, Any]:
    """The breakdown's JSON object: counts of `kind` ("relations", ...) and of each class, and the
    `top(key)` commonest examples per example key."""
    return {
        "captions": n_captions,
        f"gold_{kind}": n_gold,
        f"pred_{kind}": n_pred,
        "missed": sum(missed.values()),
        "wrong": sum(wrong.values()),
        "missed_by_class": dict(missed.most_common()),
        "wrong_by_class": dict(wrong.most_common()),
        "examples": {k: dict(v.most_common(top(k))) for k, v in sorted(examples.items())},
    }
