"""`laitkit demo`: synthetic web on loopback → crawl → filter → regions → text → shards →
pretraining → report, with the embedded config; ends by printing where the outputs are."""

from __future__ import annotations

import argparse
import time

from laitkit.jobs.cmd_run import add_common, execute, load


def run(args: argparse.Namespace) -> int:
    args.config = None
    t0 = time.perf_counter()
    execute(load(args))
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the embedded synthetic web (what `make demo` runs)")
    add_common(p)
    p.set_defaults(func=run)
