"""`laitkit demo`: synthetic web on loopback → crawl → filter → regions → text → shards →
pretraining → report, with the embedded config; ends by printing where the outputs are."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from laitkit.jobs.cmd_run import add_common, execute, load

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    args.config = None
    t0 = time.perf_counter()
    cfg = load(args)
    previous = Path(cfg.out) / "config.json"
    if previous.exists() and json.loads(previous.read_text()).get("config_hash") != cfg.config_hash():
        # a demo folder from another version or config: start over rather than refuse to resume
        log.info("removing %s: it holds a demo run of another config", cfg.out)
        shutil.rmtree(cfg.out)
    execute(cfg)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the embedded synthetic web (what `make demo` runs)")
    add_common(p)
    p.set_defaults(func=run)
