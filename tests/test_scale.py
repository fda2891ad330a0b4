"""Scale-out, for real: a two-node Ray cluster on 127.0.0.1, `ray job submit`, SIGKILL and resume,
an S3-compatible server (moto) on 127.0.0.1, and the distributed dedup against the single pass.

One small synthetic web (12 pages) is served for the whole module. Its WARC gets one page
appended a second time (the same page archived twice, as happens in real crawls), so every run
also checks that exact duplicate inputs become DUP_URL verdicts, never a crash or a key clash.
The local run (an in-process private cluster) is the reference every other run must equal:
same keys, same statuses, same verdicts (stage and reason; the dedup details too).

The cluster is `jobs/ray_cluster.LocalCluster`: `ray start --head --node-ip-address 127.0.0.1`,
then a second `ray start --address …`, one CPU each, token authentication on (a fresh token in
RAY_AUTH_TOKEN), everything on 127.0.0.1; see its docstring for what Ray needs to be told. Only
this module's processes are stopped at the end, by pid (never `ray stop`: other Ray clusters may
run on this machine).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laitkit.datasets.arrow_codec import table_to_samples
from laitkit.datasets.codec import from_row
from laitkit.datasets.schema import Reason, Sample, make_key
from laitkit.datasets.shards import iter_parquet, list_shard_files
from laitkit.jobs.config import load_config
from laitkit.jobs.ray_cluster import LOOPBACK_ENV as LOCAL_ENV
from laitkit.jobs.ray_cluster import free_port
from laitkit.pipeline import dist_dedup
from laitkit.pipeline.crawl import Deduper, readers
from laitkit.pipeline.runner import run_job

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PAGES_PER_SHARD = 6
SETTINGS = {"input.pages_per_shard": PAGES_PER_SHARD, "pretrain.enabled": False, "crawl.timeout": 5}


def sets(out: Path, warc: str, **extra: object) -> list[str]:
    items = {"out": str(out), "input.kind": "warc", "input.path": warc, **SETTINGS, **extra}
    return [a for k, v in items.items() for a in ("--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}")]


def outcome(samples: list[Sample]) -> dict[str, tuple]:
    """key -> (status, (stage, reason) of every verdict, dedup detail): what must not depend on where it ran."""
    out = {}
    for s in samples:
        assert s.key not in out, f"duplicate key {s.key}"
        dedup = [v.detail for v in s.verdicts if v.stage == "dedup"]
        out[s.key] = (s.status, tuple((v.stage, str(v.reason)) for v in s.verdicts), tuple(dedup))
    return out


def read_run(out: Path) -> dict[str, tuple]:
    return outcome([*iter_parquet(out / "shards"), *iter_parquet(out / "rejected")])


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from laitkit.datasets.synth import SynthServer, generate

    root = tmp_path_factory.mktemp("scale")
    site = root / "web"
    generate(site, pages=12, seed=3, base_url=f"http://127.0.0.1:{free_port()}")
    original = (site / "pages.warc.gz").read_bytes()
    start, end, _ = readers.index_warc(site / "pages.warc.gz", 1)[1]  # the first article page
    warc = root / "input" / "dup.warc.gz"
    warc.parent.mkdir()
    warc.write_bytes(original + original[start:end])  # its records (page + images) archived twice
    mp = pytest.MonkeyPatch()
    for k, v in LOCAL_ENV.items():
        mp.setenv(k, v)
    with SynthServer(site, port=None, timeout_delay=8.0):
        yield {"root": root, "warc": warc, "dup_offset": len(original)}
    mp.undo()


@pytest.fixture(scope="module")
def local(web):
    out = web["root"] / "local"
    overrides = {"out": str(out), "input": {"kind": "warc", "path": str(web["warc"]), "pages_per_shard": 6},
                 "pretrain.enabled": False, "crawl.timeout": 5}  # fmt: skip
    summary = run_job(load_config(None, overrides))
    return {"out": out, "summary": summary, "outcome": read_run(out)}


def test_duplicate_page_in_a_warc_gives_dup_url_verdicts_not_a_crash(local) -> None:
    by_place = defaultdict(list)
    for s in [*iter_parquet(local["out"] / "shards"), *iter_parquet(local["out"] / "rejected")]:
        by_place[(s.page_url, s.url)].append(s)
    twice = {k: v for k, v in by_place.items() if len(v) == 2}
    assert twice, "the duplicated page's candidates should each appear twice"
    assert all(len(v) <= 2 for v in by_place.values())
    dup_url = 0
    for copies in twice.values():
        a, b = sorted(copies, key=lambda s: s.key)  # the dedup winner is the first in (page_url, url, key)
        assert a.key != b.key
        if a.kept:
            assert b.status == "dup_url" and a.key in b.verdicts[-1].detail
            dup_url += 1
        else:
            assert b.status == a.status  # rejected for the same reason before dedup
    assert dup_url >= 1
    assert local["summary"]["input_shards"] == 3  # 13 HTML pages + the copy, 6 per shard


def test_keys_are_length_prefixed_and_long() -> None:
    assert make_key("http://x/a.jpg", "a\nb", "c") != make_key("http://x/a.jpg", "a", "b\nc")
    assert make_key("http://x/a.jpg", "ab", "") != make_key("http://x/a.jpg", "a", "b")
    key = make_key("http://x/a.jpg", "cap")
    assert key.startswith("a-") and len(key.split("-")[-1]) == 32 and "." not in key


def _single_pass(crawl_files: list[Path], cfg) -> dict[str, tuple[str, str]]:
    metas = [m for f in crawl_files for m in pq.read_table(f, columns=["json"])["json"].to_pylist()]
    samples = [from_row({"json": m}) for m in metas]
    before = {s.key: len(s.verdicts) for s in samples}
    deduper = Deduper.from_config(cfg)
    deduper.count(samples)
    deduper.apply(samples)
    return {s.key: (str(s.verdicts[-1].reason), s.verdicts[-1].detail)
            for s in samples if len(s.verdicts) > before[s.key]}  # fmt: skip


def _distributed(dedup_dir: Path) -> dict[str, tuple[str, str]]:
    rows = [r for f in sorted(dedup_dir.glob("0*.parquet")) for r in pq.read_table(f).to_pylist()]
    return {r["key"]: (r["reason"], r["detail"]) for r in rows}


def test_distributed_dedup_equals_single_pass_on_the_synthetic_web(local) -> None:
    from laitkit.pipeline import stages

    work = local["out"] / "work"
    cfg = stages.crawl_config({})
    single = _single_pass(sorted((work / "crawl").glob("*.parquet")), cfg)
    assert _distributed(work / "dedup") == single
    reasons = {r for r, _ in single.values()}
    assert {"keep", "dup_url"} <= reasons, reasons


def test_distributed_dedup_equals_single_pass_on_chains_of_near_duplicates(local, tmp_path) -> None:
    """Hashes built to stress the greedy rule: chains a~b~c where a and c are far apart (c must
    survive when b loses), shared URLs and sha256s across shards, boilerplate captions."""
    import random

    rng = random.Random(7)
    rows, shard_files = [], []
    for i in range(240):
        base = rng.getrandbits(64) if i % 3 == 0 else rows[-1]["_h"]
        h = base ^ (sum(1 << b for b in rng.sample(range(64), rng.choice((0, 2, 3, 4, 5)))))
        rows.append({"_h": h, "key": f"k{i:04d}", "status": "keep" if i % 11 else "nsfw", "shard_id": i % 4,
                     "url": f"http://x/{rng.randrange(200)}.jpg", "page_url": f"http://p/{rng.randrange(30)}",
                     "sha256": f"s{rng.randrange(180)}", "phash": f"{h:016x}",
                     "caption": "click to enlarge" if i % 7 == 0 else f"caption {i}"})  # fmt: skip
    for shard in range(4):
        part = [{k: v for k, v in r.items() if k != "_h"} for r in rows if r["shard_id"] == shard]
        shard_files.append(tmp_path / f"{shard:05d}.parquet")
        pq.write_table(pa.Table.from_pylist(part), shard_files[-1])
    cfg = type("C", (), {"phash_max_distance": 4, "max_images_per_caption": 5})()
    counts = dist_dedup.run_dedup(shard_files, tmp_path / "dedup", cfg, partitions=3)
    samples = []
    for r in rows:
        s = Sample(key=r["key"], url=r["url"], page_url=r["page_url"], caption=r["caption"])
        s.sha256, s.phash = r["sha256"], r["phash"]
        if r["status"] != "keep":
            s.reject("nsfw", Reason.NSFW)
        samples.append(s)
    deduper = Deduper.from_config(cfg)
    deduper.count(samples)
    deduper.apply(samples)
    single = {s.key: (str(s.verdicts[-1].reason), s.verdicts[-1].detail)
              for s in samples if s.verdicts[-1].stage == "dedup"}  # fmt: skip
    assert _distributed(tmp_path / "dedup") == single
    assert {"keep", "dup_url", "dup_sha256", "dup_phash", "dup_caption"} <= set(counts), counts


# --- a real two-node cluster on 127.0.0.1 ---------------------------------------------------------

# Two one-CPU nodes: the light actors (0.8 CPU in all) may land on both nodes, so the detector
# asks for half a core (a per-stage resource override, `ray.stages.regions.num_cpus`); with a
# whole core it could find no node with one free and wait forever.
CLUSTER_SETTINGS = {"ray.stages.regions.num_cpus": 0.5}


@pytest.fixture(scope="module")
def cluster(s3):
    """The nodes get the S3 server's settings in their environment, as a real cluster's nodes
    get their credentials: Ray workers read inputs and write shards there."""
    from laitkit.jobs.ray_cluster import LocalCluster

    saved = {k: os.environ.get(k) for k in s3}
    os.environ.update(s3)
    try:
        c = LocalCluster(nodes=2, cpus_per_node=1, tag="test")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with c:
        yield {"address": c.address, "dashboard": c.dashboard, "env": c.env}


def _run_cli(args: list[str], env: dict[str, str], log: Path, pause: str | None = None, timeout: float = 600) -> int:
    """`laitkit run …` in its own session; with `pause`, SIGKILL it once it reaches that pause point."""
    run_env = dict(env)
    marker = log.with_suffix(".paused")
    marker.unlink(missing_ok=True)
    if pause:
        run_env.update(LAITKIT_PAUSE_AT=pause, LAITKIT_PAUSE_MARKER=str(marker))
    with log.open("ab") as fh:
        proc = subprocess.Popen([str(BIN / "laitkit"), "run", *args], env=run_env, stdout=fh, stderr=fh,
                                start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if pause and marker.exists():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return -9
            time.sleep(0.5)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"laitkit run timed out; log {log}")
    assert not pause, f"never reached pause point {pause}; log:\n{log.read_text()[-3000:]}"
    return proc.returncode


def test_two_node_run_killed_in_dedup_and_in_shard_writing_resumes_and_equals_local(web, local, cluster):
    out = web["root"] / "two-node"
    args = sets(out, str(web["warc"]), **{"ray.address": cluster["address"], **CLUSTER_SETTINGS})
    log = web["root"] / "two-node.log"
    assert _run_cli(args, cluster["env"], log, pause="dedup") == -9
    assert not (out / "work" / "dedup" / "_done.json").exists()
    assert not list((out / "shards").glob("*_stats.json"))
    assert _run_cli(args, cluster["env"], log, pause="write") == -9
    assert (out / "work" / "dedup" / "_done.json").exists()
    assert len(list((out / "shards").glob("*_stats.json"))) < local["summary"]["input_shards"]
    assert _run_cli(args, cluster["env"], log) == 0, log.read_text()[-3000:]
    assert read_run(out) == local["outcome"]
    nodes = json.loads((out / "run.json").read_text())
    assert nodes["input_shards"] == local["summary"]["input_shards"]


def test_ray_client_address_that_is_not_listening_fails_in_one_line(web, tmp_path):
    proc = subprocess.run([str(BIN / "laitkit"), "run", *sets(tmp_path / "x", str(web["warc"]),
                           **{"ray.address": f"ray://127.0.0.1:{free_port()}"})],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("laitkit run: error: cannot reach the Ray Client server"), lines


def test_local_starts_a_private_loopback_cluster_even_when_ray_address_points_elsewhere(tmp_path):
    """A dead cluster's address in RAY_ADDRESS (what a leftover `ray_current_cluster` also gives)
    must not be joined: `local` starts its own, and every Ray listener is on 127.0.0.1."""
    code = (
        "import types; from laitkit.pipeline.runner import init_ray; import ray\n"
        "init_ray(types.SimpleNamespace(ray=types.SimpleNamespace(address='local', num_cpus=1)))\n"
        "print(ray.get_runtime_context().gcs_address)\n"
    )
    env = {**os.environ, **LOCAL_ENV, "RAY_ADDRESS": f"127.0.0.1:{free_port()}"}
    code += "import sys; sys.stdout.flush(); input()\n"  # hold the cluster up while we look at it
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        gcs = proc.stdout.readline().strip()
        assert gcs.startswith("127.0.0.1:"), gcs
        assert gcs != env["RAY_ADDRESS"]
        listening = _listeners_of_tree(proc.pid)
        assert listening and all(ip == "127.0.0.1" for ip, _ in listening), listening
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def _listeners_of_tree(root: int) -> set[tuple[str, int]]:
    """(ip, port) of every listening TCP socket owned by `root` or its descendants (from /proc)."""
    kids = {root}
    changed = True
    while changed:
        changed = False
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) not in kids:
                try:
                    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid in kids:
                    kids.add(int(pid))
                    changed = True
    inodes = set()
    for pid in kids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    out = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            addr, port = f[1].split(":")
            raw = bytes.fromhex(addr)
            if v6:
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                ip = socket.inet_ntop(socket.AF_INET6, words)
                ip = ip.removeprefix("::ffff:")
            else:
                ip = socket.inet_ntoa(raw[::-1])
            out.add((ip, int(port, 16)))
    return out


# --- S3: a real S3-compatible server (moto) on 127.0.0.1 ------------------------------------------


@pytest.fixture(scope="module")
def s3():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    try:
        yield env
    finally:
        server.stop()


def test_ray_job_submit_reading_a_warc_paths_file_on_s3_and_writing_shards_to_s3_equals_local(web, local, s3,
                                                                                             cluster):  # fmt: skip
    """One run for two things: the job goes through `ray job submit` (its driver runs on the head
    node), and it reads `s3://…/warc.paths` and writes its shards to `s3://…` on the moto server."""
    import s3fs

    fs = s3fs.S3FileSystem(key="test", secret="test", endpoint_url=s3["AWS_ENDPOINT_URL"])
    fs.mkdir("corpus")
    fs.put_file(str(web["warc"]), "corpus/crawl/dup.warc.gz")
    fs.pipe_file("corpus/crawl/warc.paths", b"crawl/dup.warc.gz\n")
    out = web["root"] / "job-submit-s3"
    extra = {"input.paths_base": "s3://corpus", "shards.dest": "s3://corpus/out", "ray.address": "auto",
             **CLUSTER_SETTINGS}  # fmt: skip
    args = sets(out, "s3://corpus/crawl/warc.paths", **extra)
    cmd = [str(BIN / "ray"), "job", "submit", "--address", cluster["dashboard"], "--", str(BIN / "laitkit"), "run"]
    for _ in range(24):  # the head's job agent registers a while after `ray start` returns
        proc = subprocess.run(cmd + args, env=cluster["env"], capture_output=True, text=True, timeout=900)
        if "No available agent to submit job" not in proc.stderr:
            break
        time.sleep(5)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout + proc.stderr
    names = [p.rsplit("/", 1)[-1] for p in fs.find("corpus/out")]
    n = local["summary"]["input_shards"]
    stats = sorted(x for x in names if x.endswith("_stats.json"))
    assert stats == sorted([f"{i:05d}_stats.json" for i in range(n)] * 2)  # shards/ and rejected/
    samples = []
    for sub in ("shards", "rejected"):  # the remote folders have the local layout and a manifest saying where
        manifest = json.loads(fs.cat_file(f"corpus/out/{sub}/manifest.json"))
        assert manifest["layout"] == "split" and manifest["num_shards"] == n
        for entry in manifest["shards"]:
            assert entry["tar"] == f"tar/{entry['shard']:05d}.tar" and fs.exists(f"corpus/out/{sub}/{entry['tar']}")
            with fs.open(f"corpus/out/{sub}/{entry['parquet']}", "rb") as fh:
                samples.extend(table_to_samples(pq.read_table(fh)))
    assert outcome(samples) == local["outcome"]
    assert not list_shard_files(out / "shards", "tar")  # the shards went to S3; only their stats are kept locally
