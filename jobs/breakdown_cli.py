"""The command line shared by the text stage's error breakdowns (`naming_errors`, `relation_errors`).

Why one place: both read FACTUAL train, take exactly the captions `train_text --proposer` holds out
for the seed (never dev, never test), run the stage with the given weights and print the breakdown
as one JSON line; a second copy of that would drift from the split the thresholds are chosen on.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from laitkit.extractors.factual import Normalizer, read_factual_csv, spacy_noun_lemmatizer
from laitkit.extractors.text import TextConfig, TextExtractor

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
