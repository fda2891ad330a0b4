"""`laitkit bench scale`: does the driver stay flat as the corpus grows, and do two nodes agree?

Why these numbers: a corpus of 10^9 candidates only fits through a job whose driver does no
per-sample work. So the bench runs the same job on N and on 4N synthetic pages, each in a fresh
driver process (`laitkit run` as a user runs it), and reports the driver's peak RSS for both,
their ratio (goal <= 1.25), and the bytes the driver received from workers per candidate
(pickled task results and summary rows, goal <= 512; Ray's own control traffic is not counted).
Then it starts a real two-node cluster on 127.0.0.1 (`jobs/ray_cluster.py`, one CPU per node)
and runs the N-page job there: `multinode_same_keys` is true when keys, statuses and verdicts
equal the local run's. `pages_per_s_1node` is the local run (one node with every core of this
machine), `pages_per_s_2nodes` the two one-core nodes: on one machine they share the same cores,
so the pair measures overhead, not speed-up.

The synthetic web is generated and served by this (bench) process, so the driver only reads the
WARC by reference. N is small (8 pages) so the whole bench takes a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DRIVER = """
import json, resource, sys
from laitkit.jobs.config import load_config
from laitkit.pipeline.runner import run_job
cfg = load_config(None, json.loads(sys.argv[1]))
summary = run_job(cfg)
summary["driver_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("BENCH " + json.dumps(summary))
"""


def _driver(overrides: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(overrides)], env=env, capture_output=True,
                          text=True, timeout=3600)  # fmt: skip
    wall = time.perf_counter() - t0
    lines = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench driver failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(lines[-1][6:]), wall


def _outcome(out: Path) -> dict[str, tuple]:
    from laitkit.datasets.shards import iter_parquet

    return {s.key: (s.status, tuple((v.stage, str(v.reason)) for v in s.verdicts))
            for sub in ("shards", "rejected") for s in iter_parquet(out / sub)}  # fmt: skip


def run_scale_bench(pages: int = 8, pages_per_shard: int = 4) -> dict[str, Any]:
    from laitkit.datasets.synth import SynthServer, free_port, generate
    from laitkit.jobs.ray_cluster import LOOPBACK_ENV, LocalCluster

    env = {**os.environ, **LOOPBACK_ENV}
    result: dict[str, Any] = {"pages_n": pages, "pages_4n": 4 * pages}
    with tempfile.TemporaryDirectory(prefix="laitkit-bench-scale-") as tmp:
        root = Path(tmp)
        runs: dict[str, tuple[dict[str, Any], float]] = {}
        for label, n in (("n", pages), ("4n", 4 * pages)):
            web = root / f"web-{label}"
            generate(web, pages=n, seed=0, base_url=f"http://127.0.0.1:{free_port()}")
            with SynthServer(web, port=None, timeout_delay=6.0):
                base = {"input": {"kind": "warc", "path": str(web / "pages.warc.gz"),
                                  "pages_per_shard": pages_per_shard}, "pretrain.enabled": False}  # fmt: skip
                print(f"bench scale: local run, {n} pages", file=sys.stderr)
                runs[label] = _driver({**base, "out": str(root / f"local-{label}")}, env)
                if label == "n":
                    print("bench scale: two-node cluster run", file=sys.stderr)
                    with LocalCluster(nodes=2, cpus_per_node=1, dashboard=False, tag="bench") as cluster:
                        runs["2nodes"] = _driver({**base, "out": str(root / "two-node"), "ray.address": cluster.address,
                                                  "ray.stages.regions.num_cpus": 0.5}, cluster.env)  # fmt: skip
                    result["multinode_same_keys"] = _outcome(root / "two-node") == _outcome(root / "local-n")
        (sn, wn), (s4, _), (_, w2) = runs["n"], runs["4n"], runs["2nodes"]
        html_pages = {k: json.loads((root / f"local-{k}" / "work" / "plan.json").read_text()) for k in ("n", "4n")}
        counted = {k: sum(s["count"] for s in v["shards"]) for k, v in html_pages.items()}
        candidates = s4["candidates_written_now"]
        result.update({
            "driver_peak_rss_mb_n": round(sn["driver_peak_rss_mb"], 1),
            "driver_peak_rss_mb_4n": round(s4["driver_peak_rss_mb"], 1),
            "driver_rss_ratio": round(s4["driver_peak_rss_mb"] / sn["driver_peak_rss_mb"], 3),
            "driver_bytes_per_sample": round(s4["driver_received_bytes"] / max(candidates, 1), 1),
            "candidates_4n": candidates,
            "pages_per_s_1node": round(counted["n"] / wn, 3),
            "pages_per_s_2nodes": round(counted["n"] / w2, 3),
            "goals": {"driver_rss_ratio": 1.25, "driver_bytes_per_sample": 512},
        })
        result["driver_peak_rss_mb"] = {"n": result["driver_peak_rss_mb_n"], "4n": result["driver_peak_rss_mb_4n"]}
    return result
