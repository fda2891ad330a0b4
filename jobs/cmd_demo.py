"""`laitkit demo`: synthetic web on loopback → crawl → filter → regions → text → shards →
pretraining → report, with the embedded config; ends by printing where the outputs are.

Why it deletes nothing: a demo folder of an earlier version or config is resumed like any run
(per-stage fingerprints redo exactly what changed), and a folder that is not a laitkit run
folder is refused in one line (`runner.claim_out`), so `--out` pointed at a user's files by
mistake loses nothing.
"""

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
    p = sub.add_parser("demo", help="the whole pipeline on the embedded synthetic web (what `make demo` runs)",
                       description="Run the embedded demo config (a synthetic web served on 127.0.0.1) end to end. "
                                   "Reruns reuse every step whose inputs and config did not change.")  # fmt: skip
    add_common(p)
    p.set_defaults(func=run)
