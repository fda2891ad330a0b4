"""`laitkit bench regions|text|pretrain|pretrain-styles|crawl|scale|all`: speed and quality numbers; the last
line printed is one JSON object (so scripts can `tail -1`). Targets live here, never in timed tests."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

BENCHES = {
    "regions": ("laitkit.jobs.bench_regions", "run_regions_bench"),
    "text": ("laitkit.jobs.bench_text", "run_text_bench"),
    "pretrain": ("laitkit.jobs.bench_pretrain", "run_pretrain_bench"),
    "pretrain-styles": ("laitkit.jobs.bench_pretrain_styles", "run_pretrain_styles_bench"),
    "regions-selection": ("laitkit.jobs.bench_regions", "run_selection_bench"),
    "crawl": ("laitkit.jobs.bench_crawl", "run_crawl_bench"),
    "relevance": ("laitkit.jobs.bench_relevance", "run_relevance_bench"),
    "scale": ("laitkit.jobs.bench_scale", "run_scale_bench"),
}


def run(args: argparse.Namespace) -> int:
    names = list(BENCHES) if args.name == "all" else [args.name]
    results: dict[str, object] = {}
    for name in names:
        module, func = BENCHES[name]
        print(f"bench {name} ...", file=sys.stderr)
        results[name] = getattr(importlib.import_module(module), func)()
        print(json.dumps({name: results[name]}), file=sys.stderr)
    print(json.dumps(results[names[0]] if len(names) == 1 else results))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks; the last line is one JSON object")
    p.add_argument("name", choices=[*BENCHES, "all"], help="which benchmark (all: every one)")
    p.set_defaults(func=run)
