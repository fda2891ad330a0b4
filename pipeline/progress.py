"""Progress bars and Ray quiet: what a person watching a long job sees, and what they do not.

Why one module: every long step (input shards crawled, shards featurised, captions parsed,
pretraining steps) shows the same kind of bar (tqdm: count, rate, ETA) on stderr, and Ray's own
chatter (Ray Data's status block every few seconds, worker log lines, the token-auth notice) is
switched off in one place unless the user asked for `-v`. Bars show on a terminal and stay out
of logs and pipes (`LAITKIT_PROGRESS=1` forces them, `0` hides them).
"""

from __future__ import annotations

import logging
import os
from typing import Any

VERBOSE_ENV = "LAITKIT_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def bar(total: int | None, desc: str, unit: str = "it") -> Any:
    """A tqdm bar with rate and ETA (a context manager; `update(n)`)."""
    from tqdm.auto import tqdm

    force = os.environ.get("LAITKIT_PROGRESS")
    disable = None if force is None else force == "0"  # None: only on a terminal
    fmt = None if total is None else ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                      "[{elapsed}<{remaining}, {rate_fmt}]")
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, leave=True,
                bar_format=fmt)  # fmt: skip


def quiet_ray_data() -> None:
    """Ray Data: no periodic status block, no per-operator bars, no stats dump (unless -v)."""
    import ray

    ctx = ray.data.DataContext.get_current()
    loud = verbose()
    ctx.enable_progress_bars = loud
    ctx.enable_operator_progress_bars = loud
    ctx.enable_auto_log_stats = loud
    ctx.verbose_stats_logs = loud
    ctx.print_on_execution_start = loud
    if not loud:
        # ERROR: Ray Data warns that the bars it was told to hide are hidden
        for name in ("ray.data", "ray.train", "ray.tune"):
            logging.getLogger(name).setLevel(logging.ERROR)


def quiet_env() -> dict[str, str]:
    """Environment for Ray processes started by this job: no log dedup chatter, warnings only."""
    if verbose():
        return {}
    return {"RAY_DEDUP_LOGS": "0"}
