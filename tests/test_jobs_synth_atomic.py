"""A kill during the synthetic web's generation leaves nothing a rerun refuses: the web is built in
a hidden sibling folder and swapped in whole, and the next run clears the dead staging folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_sigkill_during_generation_then_rerun(tmp_path: Path) -> None:
    web = tmp_path / "web"
    cmd = [sys.executable, "-m", "laitkit.jobs.cli", "synth", "--out", str(web), "--pages", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = None
    deadline = time.monotonic() + 120
    while staging is None and time.monotonic() < deadline and proc.poll() is None:
        found = [p for p in tmp_path.glob(".web.synth-tmp-*") if (p / "site").is_dir() and any((p / "site").iterdir())]
        staging = found[0] if found else None
        time.sleep(0.05)
    assert staging is not None, "generation ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not web.exists()  # the target was never half-written
    done = subprocess.run([*cmd[:-1], "3"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (web / "synth.json").exists() and (web / "pages.warc.gz").exists()
    assert not list(tmp_path.glob(".web.synth-*"))  # the dead staging folder was cleared
