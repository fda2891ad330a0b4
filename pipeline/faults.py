"""A pause point for crash tests: stop a job at a named step so a test can SIGKILL it there.

Why in the product: "killed during dedup" or "killed while a shard is half written" must be
reproducible, and a timer cannot hit a step that takes milliseconds. With `LAITKIT_PAUSE_AT=name`
the process that reaches `pause_point(name)` touches `LAITKIT_PAUSE_MARKER` (when set) and sleeps;
unset (always, outside tests), it is a dictionary lookup. `runner.init_ray` forwards both variables
to Ray workers, so a pause inside a stage actor works on any cluster.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_VARS = ("LAITKIT_PAUSE_AT", "LAITKIT_PAUSE_MARKER")


def pause_point(name: str) -> None:
    if os.environ.get("LAITKIT_PAUSE_AT") != name:
        return
    marker = os.environ.get("LAITKIT_PAUSE_MARKER")
    if marker:
        Path(marker).write_text(f"{name} {os.getpid()}\n")
    time.sleep(3600)


def forwarded_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ENV_VARS if k in os.environ}
