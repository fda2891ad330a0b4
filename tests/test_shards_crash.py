"""Atomicity under SIGKILL: a writer killed at any moment leaves only complete shards plus leftovers
that `clean_partial` removes.

A real subprocess writes large samples (so each shard takes a while) and is killed with SIGKILL
(no cleanup handlers run). Two timings: while a shard's tar is being streamed (a leftover is then
certain), and at a point chosen by a fixed seed after the first shard completes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from laitkit.datasets.manifest import validate
from laitkit.datasets.shards import (
    TMP_MARK,
    clean_partial,
    completed_shards,
    iter_parquet,
    iter_tar,
    read_stats,
    shard_dir_files,
    shard_paths,
)

WRITER = r"""
import sys, time
import numpy as np
from laitkit.datasets.schema import Regions, Sample
from laitkit.datasets.shards import write_shard

out, delay = sys.argv[1], float(sys.argv[2])

def samples(shard):
    rng = np.random.default_rng(shard)
    for i in range(12):
        s = Sample(key=f"s{shard:03d}-{i:03d}", url=f"https://x/{shard}/{i}.jpg", caption=f"c{i}",
                   image=rng.bytes(300_000))
        n = 36
        s.regions = Regions("det", 480, 640, rng.random((n, 4)), rng.standard_normal((n, 1024)).astype(np.float16),
                            np.arange(n), rng.random(n), np.arange(n), rng.random(n))
        s.accept("test")
        if shard > 0 and delay:
            time.sleep(delay)
        yield s

for shard in range(40):
    write_shard(out, shard, samples(shard), config_hash="h")
"""


def _leftovers(out: Path) -> list[str]:
    done = completed_shards(out)
    names = []
    for p in shard_dir_files(out):  # the folder and its tar/ and parquet/ (the default, split layout)
        stem = p.name.split(".")[0].split("_")[0]
        if TMP_MARK in p.name or (stem.isdigit() and int(stem) not in done):
            names.append(p.name)
    return sorted(names)


def _wait_for(predicate: Callable[[], bool], timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"writer exited early with {proc.returncode}: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the writer")
        time.sleep(0.005)


@pytest.mark.parametrize("mode", ["mid_tar", "seeded_random"])
def test_sigkill_leaves_only_complete_shards(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "shards"
    delay = "0.02" if mode == "mid_tar" else "0"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out), delay], stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: (out / "00000_stats.json").exists(), 60, proc)
        if mode == "mid_tar":
            _wait_for(lambda: any(p.name.startswith(".00001.tar" + TMP_MARK) for p in shard_dir_files(out)), 30, proc)
        else:
            time.sleep(random.Random(1234).uniform(0.0, 0.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    done = completed_shards(out)
    assert 0 in done
    for shard in sorted(done):  # every shard that claims completion is whole and readable
        st = read_stats(out, shard)
        tar_keys = [s.key for s in iter_tar(shard_paths(out, shard, "tar"))]
        pq_keys = [s.key for s in iter_parquet(shard_paths(out, shard, "parquet"))]
        assert len(tar_keys) == st["count"] == 12
        assert tar_keys == pq_keys == [f"s{shard:03d}-{i:03d}" for i in range(12)]

    leftovers = _leftovers(out)
    if mode == "mid_tar":
        assert any(name.startswith(".00001.tar" + TMP_MARK) for name in leftovers), leftovers
    problems = validate(out)
    assert all("manifest.json missing" in p or "temp file" in p or "partial write" in p for p in problems), problems
    for name in leftovers:  # validate reports each leftover: temp files by name, orphans by shard
        what = name if TMP_MARK in name else f"shard {int(name[:5])}:"
        assert any(what in p for p in problems), (name, problems)

    removed = clean_partial(out)
    assert sorted(p.name for p in removed) == leftovers
    assert _leftovers(out) == []
    assert completed_shards(out) == done
    assert validate(out) == ["manifest.json missing (run write_manifest)"]
