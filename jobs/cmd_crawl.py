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


def extract_html_cmd(args: argparse.Namespace) -> int:
    from laitkit.errors import UserError
    from laitkit.pipeline.crawl.extract import extract_records
    from laitkit.pipeline.crawl.readers import decode_html

    if not args.base_url.lower().startswith(("http://", "https://")):
        raise UserError(f"--base-url must be an http(s) URL, got {args.base_url!r}")
    path = Path(args.input)
    if not path.is_file():
        raise UserError(f"--input is not a file: {path}")
    for record in extract_records(decode_html(path.read_bytes()), args.base_url):
        print(json.dumps(record, ensure_ascii=False))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "crawl",
        help="crawl + filter tools (extract-html, train-relevance); the stage runs in `laitkit run`",
        description="Crawl + filter tools. To crawl, filter and shard a corpus use `laitkit run CONFIG`.",
    )
    csub = p.add_subparsers(dest="crawl_command", required=True, metavar="ACTION")
    t = csub.add_parser("train-relevance", help="train the image-text relevance scorer on synthetic pairs")
    t.add_argument("--out", default="extractors/weights/relevance_tiny.pt", help="where to write the trained weights")
    t.add_argument("--pairs", type=int, default=3000, help="synthetic (image, caption) training pairs")
    t.add_argument("--steps", type=int, default=800, help="training steps")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.set_defaults(func=train_relevance_cmd)
    e = csub.add_parser(
        "extract-html",
        help="print one JSON line per image candidate of a saved page (main or decoy, caption, why)",
    )
    e.add_argument("--input", required=True, help="the saved HTML page")
    e.add_argument("--base-url", required=True, help="the page's URL (relative image URLs resolve against it)")
    e.set_defaults(func=extract_html_cmd)
