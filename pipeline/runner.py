"""Compose the stages into one resumable job on a Ray cluster, with no per-sample work on the driver.

The order is fixed by the recipe: input plan → crawl/filter (Ray tasks, one per input shard)
→ distributed dedup (hash partitions over Ray workers) → relevance, regions, text, write (Ray
Data `map_batches` over whole-shard blocks, actor pools, one model per actor; workers write the
shards) → pretraining → report. The driver lists inputs, holds object refs and small per-shard
summaries; sample bytes never reach it. Every step leaves files; a rerun skips whatever a
previous run completed, so a job killed at any point resumes without duplicates:

- `work/plan.json` the input shards by reference (file + byte or row range),
- `work/crawl/{i}.parquet` crawl rows of input shard i (written atomically by its task),
- `work/dedup/{i}.parquet` dedup verdicts of shard i; `work/dedup/_done.json` marks the set,
- `shards/{i}.*` and `rejected/{i}.*`: output shard i, completion marked by its stats file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from laitkit.atomic import atomic_write_json, atomic_write_parquet
from laitkit.datasets import shards as shardio
from laitkit.datasets.manifest import write_manifest
from laitkit.errors import UserError
from laitkit.pipeline import dist_dedup, faults, plan, sources, storage
from laitkit.pipeline.stage import ROW_COLUMNS
from laitkit.pipeline.write_stage import remote_completed, write_remote_manifest

log = logging.getLogger(__name__)

_ROW_TYPES = {
    "key": pa.string(),
    "status": pa.string(),
    "shard_id": pa.int64(),
    "jpg": pa.binary(),
    "txt": pa.binary(),
    "json": pa.binary(),
    "npz": pa.binary(),
}
_LIGHT = ("url", "page_url", "sha256", "phash", "caption")


@dataclass
class Received:
    """Bytes of every result the driver gets back from workers (pickled size): the number that
    must stay per-shard, not per-sample, for the driver to scale."""

    bytes: int = 0

    def add(self, value: Any) -> Any:
        self.bytes += len(pickle.dumps(value, protocol=5))
        return value


RECEIVED = Received()


@dataclass
class StageTimes:
    """Wall seconds per stage, for the report."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, t0: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 2)


def crawl_path(work: Path, shard: int) -> Path:
    return work / "crawl" / f"{shard:05d}.parquet"


def crawl_input_shard(shard_id: int, shard: dict[str, Any], crawl_cfg: Any, work_dir: str) -> int:
    """Ray task body: read input shard `shard` (its own range), crawl it, write its rows.

    Besides the encoded members, the rows carry the light columns dedup reads (URL, page URL,
    hashes, caption), so dedup never decodes images or JSON. Returns the row count.
    """
    from laitkit.pipeline.crawl import crawl_pages, crawl_url_rows
    from laitkit.pipeline.stage import samples_to_batch

    kind, items = plan.read_shard(plan.InputShard.from_dict(shard))
    shard_work = Path(work_dir) / "crawl_tmp" / f"{shard_id:05d}"
    crawl = crawl_pages if kind == "pages" else crawl_url_rows
    # dedup is global (see `dist_dedup`); a per-shard pass would only be a subset of it
    samples = crawl(items, dataclasses.replace(crawl_cfg, dedup=False), shard_work)
    batch = samples_to_batch(samples, [shard_id] * len(samples))
    cols = {c: pa.array(list(batch[c]), type=_ROW_TYPES[c]) for c in ROW_COLUMNS}
    for c in _LIGHT:
        cols[c] = pa.array([getattr(s, c) or "" for s in samples], type=pa.string())
    atomic_write_parquet(crawl_path(Path(work_dir), shard_id), pa.table(cols))
    return len(samples)


def read_crawl_shard(batch: dict[str, Any], work_dir: str) -> pa.Table:
    """Ray Data flat step: one `{"shard": i}` row in, input shard i's crawl rows out (one block)."""
    (shard,) = [int(s) for s in batch["shard"]]
    return pq.read_table(crawl_path(Path(work_dir), shard), columns=list(ROW_COLUMNS))


def featurise(out: Path, work: Path, todo: list[int], cfg: Any, config_hash: str) -> list[dict[str, int]]:
    """Ray Data: every stage over shards `todo`; workers write the shards; the driver gets summaries."""
    import ray

    from laitkit.pipeline import stages

    ctx = ray.data.DataContext.get_current()
    ctx.target_max_block_size = None  # one block per shard: never split, so each stage sees it whole
    if cfg.ray.object_store_memory_mb:
        ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
            object_store_memory=cfg.ray.object_store_memory_mb * 1024 * 1024)  # fmt: skip
    expected = {i: pq.read_metadata(crawl_path(work, i)).num_rows for i in todo}
    ds = ray.data.from_items([{"shard": i} for i in todo], override_num_blocks=len(todo))
    ds = ds.map_batches(read_crawl_shard, fn_kwargs={"work_dir": str(work)}, batch_size=1, num_cpus=0.1,
                        batch_format="numpy")  # fmt: skip
    ds = stages.apply_stages(ds, cfg, {"dedup_dir": str(work / "dedup"), "out": str(out),
                                       "config_hash": config_hash, "expected": expected})  # fmt: skip
    return [RECEIVED.add({k: int(v) for k, v in row.items()}) for row in ds.iter_rows()]


def run_job(cfg: Any) -> dict[str, Any]:
    """Run (or resume) the whole job described by a `JobConfig`; return the run summary."""
    import ray

    from laitkit.pipeline import stages

    out = Path(cfg.out)
    work = out / "work"
    if cfg.shards.dest and cfg.pretrain.enabled and cfg.pretrain.steps > 0:
        raise UserError("pretraining reads local shards: with shards.dest set, set pretrain.enabled: false")
    for d in (work / "crawl", work / "dedup", out / "shards", out / "rejected"):
        d.mkdir(parents=True, exist_ok=True)
    for d in (out / "shards", out / "rejected"):
        shardio.clean_partial(d)  # leftovers of a crashed run; no writer is running yet
    config_hash = cfg.config_hash()
    check_same_job(out, config_hash)
    atomic_write_json(out / "config.json", {"config_hash": config_hash, **cfg.to_dict()})
    times = StageTimes()
    crawl_cfg = stages.crawl_config(cfg.crawl)
    if cfg.input.kind != "synth" and not storage.exists(cfg.input.path or "."):
        raise UserError(f"input.path does not exist: {cfg.input.path}")  # before a cluster starts
    init_ray(cfg)
    received_before = RECEIVED.bytes

    with sources.open_input(cfg, out) as inp:
        t0 = time.perf_counter()
        input_shards = plan.build_plan(inp.kind, inp.path, cfg.input.pages_per_shard, work / "plan.json",
                                       inp.paths_base)  # fmt: skip
        RECEIVED.add([s.to_dict() for s in input_shards])  # what the cutting tasks sent back
        times.add("input", t0)
        done_out = completed(out, cfg.shards.dest)
        todo = [i for i in range(len(input_shards)) if i not in done_out]
        crawl_todo = [i for i in todo if not crawl_path(work, i).exists()]
        t0 = time.perf_counter()
        if crawl_todo:
            task = ray.remote(num_cpus=1)(crawl_input_shard)
            RECEIVED.add(ray.get([task.remote(i, input_shards[i].to_dict(), crawl_cfg, str(work)) for i in crawl_todo]))
        times.add("crawl", t0)

    crawl_files = [crawl_path(work, i) for i in range(len(input_shards))]
    t0 = time.perf_counter()
    if todo and (crawl_todo or not dist_dedup.dedup_done(work / "dedup", len(crawl_files))):
        dedup_counts = RECEIVED.add(dist_dedup.run_dedup(crawl_files, work / "dedup", crawl_cfg,
                                                          cfg.ray.dedup_partitions))  # fmt: skip
        atomic_write_json(work / "dedup_counts.json", dedup_counts)
    times.add("dedup", t0)

    t0 = time.perf_counter()
    written = featurise(out, work, todo, cfg, config_hash) if todo else []
    times.add("featurise+shards", t0)
    if cfg.shards.dest:
        subs = ("shards", "rejected") if cfg.shards.write_rejected else ("shards",)
        kept = write_remote_manifest(cfg.shards.dest, config_hash, cfg.to_dict(), subs).get("total_count", 0)
    else:
        kept = write_manifest(out / "shards", config_hash, cfg.to_dict()).get("total_count", 0)
        if cfg.shards.write_rejected:
            write_manifest(out / "rejected", config_hash, cfg.to_dict())

    pretrain_summary: dict[str, Any] = {}
    if cfg.pretrain.enabled and cfg.pretrain.steps > 0:
        from laitkit.pipeline.pretrain.train import pretrain

        t0 = time.perf_counter()
        pretrain_summary = pretrain(out / "shards", out / "pretrain", cfg.pretrain)
        times.add("pretrain", t0)
        atomic_write_json(out / "pretrain" / "summary.json", pretrain_summary)

    summary = {
        "out": str(out),
        "config_hash": config_hash,
        "input_shards": len(input_shards),
        "shards_written_now": len(written),
        "kept": kept,
        "shards_dest": cfg.shards.dest or str(out / "shards"),
        "stage_seconds": times.seconds,
        "pretrain": pretrain_summary,
        "candidates_written_now": sum(w["kept"] + w["rejected"] for w in written),
        "driver_received_bytes": RECEIVED.bytes - received_before,
    }
    atomic_write_json(out / "run.json", summary)
    return summary


def completed(out: Path, dest: str) -> set[int]:
    """Output shards already complete (the resume skip set), local or under `shards.dest`."""
    return set(remote_completed(dest)) if dest else shardio.completed_shards(out / "shards")


def check_same_job(out: Path, config_hash: str) -> None:
    """Refuse to resume into a folder whose shards came from another config (mixed corpora)."""
    previous = out / "config.json"
    if not previous.exists():
        return
    old = json.loads(previous.read_text()).get("config_hash")
    has_work = any((out / "work" / "crawl").glob("*.parquet")) or bool(shardio.completed_shards(out / "shards"))
    if old != config_hash and has_work:
        raise UserError(
            f"{out} holds a run of another config (hash {old}, now {config_hash}); "
            "resume with the same config, or choose another --out"
        )


def init_ray(cfg: Any) -> None:
    """Start or join the cluster named by `ray.address` (see `RayConfig`)."""
    import ray

    if ray.is_initialized():
        return
    address = cfg.ray.address
    env = faults.forwarded_env()
    runtime_env = {"env_vars": env} if env else None
    if address == "local":
        # A fresh private cluster on loopback: address="local" never joins a cluster recorded in
        # /tmp/ray/ray_current_cluster (alive or dead). Ray binds every process to the node IP
        # only when it believes it is single-machine; this switch is how it is told so (it must
        # also be in the environment the raylet and workers inherit).
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
        # a private loopback cluster: Ray's notice that it enabled token auth would only be noise
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(address="local", num_cpus=cfg.ray.num_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env=runtime_env)  # fmt: skip
        return
    if address.startswith("ray://"):
        _check_ray_client(address)
    try:
        ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot reach the Ray cluster at {address!r}: {first}") from None


def _check_ray_client(address: str, timeout: float = 5.0) -> None:
    """Ray Client (`ray://host:port`): fail in one line, fast, when nothing listens there.

    Without this, `ray.init` retries for about 30 s and then raises; the user learns the same.
    """
    import socket

    hostport = address[len("ray://") :].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 10001)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot reach the Ray Client server at {address!r}: {exc}") from None
