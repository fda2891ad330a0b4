"""`laitkit crawl`: the crawl + filter stage's own tools (the stage itself runs inside `laitkit run`)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def train_relevance_cmd(args: argparse.Namespace) -> int:
    from laitkit.extractors.relevance_train import train_builtin

    t0 = time.perf_counter()
    metrics = train_builtin(Path(args.out), pairs=args.pairs, steps=args.steps, seed=args.seed)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    metrics["out"] = args.out
    print(json.dumps(metrics))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "crawl",
        help="crawl + filter tools (train the relevance model); the stage runs in `laitkit run`",
        description="Crawl + filter tools. To crawl, filter and shard a corpus use `laitkit run CONFIG`.",
    )
    csub = p.add_subparsers(dest="crawl_command", required=True, metavar="ACTION")
    t = csub.add_parser("train-relevance", help="train the image-text relevance scorer on synthetic pairs")
    t.add_argument("--out", default="extractors/weights/relevance_tiny.pt")
    t.add_argument("--pairs", type=int, default=3000)
    t.add_argument("--steps", type=int, default=800)
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=train_relevance_cmd)
