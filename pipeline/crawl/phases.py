"""Wall-clock spans of a crawl's phases, for the benchmark's breakdown (`laitkit_phases_s`).

Why a recorder passed in, not a global profiler: the crawl's cost over img2dataset alone is a
sum of small serial pieces (language id, the host checks, reading shards back) spread over
several modules, and the benchmark has to show each of them next to img2dataset's own phases
(worker start-up, the shards, the pool's teardown, taken from its `NNNNN_stats.json` files by
`img2dataset_phases`). A `Phases` is plain data: the crawl adds to it, the caller reads it.
Passing None (the default everywhere) records nothing and costs nothing.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path


class Phases:
    """Seconds per phase name; a phase entered twice adds up. Thread-safe (the shard reader adds
    from its own thread)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def rounded(self, digits: int = 2) -> dict[str, float]:
        with self._lock:
            return {k: round(v, digits) for k, v in self.seconds.items()}


def span(phases: Phases | None, name: str) -> contextlib.AbstractContextManager[None]:
    """`phases.span(name)`, or a no-op when no recorder was given."""
    return phases.span(name) if phases is not None else contextlib.nullcontext()


def img2dataset_phases(out_dir: Path, started: float, ended: float) -> dict[str, float]:
    """img2dataset's own phases from its shard stats (wall-clock `time.time()` stamps):
    `start_up` from the call until the first shard started (its reader writing the URL shards,
    spawning the workers, their imports), `shards` from then until the last shard ended, and
    `teardown` from then until the call returned. Empty when no shard wrote stats."""
    stamps = []
    for f in out_dir.glob("*_stats.json"):
        try:
            s = json.loads(f.read_text())
            stamps.append((float(s["start_time"]), float(s["end_time"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if not stamps:
        return {}
    first = min(a for a, _ in stamps)
    last = max(b for _, b in stamps)
    return {"start_up": first - started, "shards": last - first, "teardown": ended - last}
