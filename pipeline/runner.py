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
    from laitkit.pipeline.progress import quiet_ray_data

    quiet_ray_data()
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
    rows = []
    with _progress(len(todo), "featurise+write", "shard") as pbar:
        for row in ds.iter_rows():
            rows.append(RECEIVED.add({k: int(v) for k, v in row.items()}))
            pbar.update(1)
    return rows


MARKER = ".laitkit-run"


def claim_out(out: Path) -> None:
    """Make `out` this job's folder, or refuse in one line: never write into (or later delete
    from) a folder that holds someone else's files. `.laitkit-run` proves a laitkit run made it."""
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"the output path {out} is a file, not a folder")
        if out.is_dir() and not (out / MARKER).exists() and any(out.iterdir()):
            legacy = out / "config.json"
            if not (legacy.exists() and "config_hash" in legacy.read_text()):
                raise UserError(f"{out} is not empty and is not a laitkit run folder (no {MARKER} file); "
                                "choose a new or empty output folder")  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("laitkit run folder: laitkit may rewrite and delete what it made here\n")
    except OSError as exc:
        raise UserError(f"cannot write the output folder {out}: {exc.strerror or exc}") from None


def _drop_shard(out: Path, shard: int) -> None:
    """Remove an output shard this job wrote (stale: its input is gone); stats first, then files."""
    for sub in ("shards", "rejected"):
        (out / sub / shardio.stats_name(shard)).unlink(missing_ok=True)
        shardio.clean_partial(out / sub)


def _progress(total: int, desc: str, unit: str) -> Any:
    from laitkit.pipeline.progress import bar

    return bar(total=total, desc=desc, unit=unit)


def _gather(refs: list[Any], desc: str, unit: str) -> list[Any]:
    """`ray.get` with a progress bar: results in the order of `refs`."""
    import ray

    index = {r: i for i, r in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    with _progress(len(refs), desc, unit) as pbar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for r in done:
                results[index[r]] = ray.get(r)
                pbar.update(1)
    return results


def run_job(cfg: Any) -> dict[str, Any]:
    """Run (or resume) the whole job described by a `JobConfig`; return the run summary.

    Resume by fingerprints (`pipeline/fingerprint.py`): each input shard's crawl, the dedup, each
    output shard and the pretraining are redone exactly when the config sections they read or
    their inputs changed, and reused otherwise; `summary["reused"]` says which.
    """
    from laitkit.pipeline import fingerprint as fpr
    from laitkit.pipeline import stages

    out = Path(cfg.out)
    work = out / "work"
    if cfg.shards.dest and cfg.pretrain.enabled and cfg.pretrain.steps > 0:
        raise UserError("pretraining reads local shards: with shards.dest set, set pretrain.enabled: false")
    if cfg.pretrain.enabled and cfg.pretrain.steps > 0:
        try:
            cfg.pretrain.check_tasks()  # before any crawl: the config loader does not import torch
        except ValueError as exc:
            raise UserError(f"pretrain.tasks: {exc}") from None
    if cfg.input.kind != "synth" and not storage.exists(cfg.input.path or "."):
        raise UserError(f"input.path does not exist: {cfg.input.path}")  # before a cluster starts
    claim_out(out)
    for d in (work / "crawl", work / "dedup", out / "shards", out / "rejected"):
        d.mkdir(parents=True, exist_ok=True)
    for d in (out / "shards", out / "rejected"):
        shardio.clean_partial(d)  # leftovers of a crashed run; no writer is running yet
    config_hash = cfg.config_hash()
    shards_hash = cfg.stage_hash("shards")
    atomic_write_json(out / "config.json", {"config_hash": config_hash, "stage_hashes": {
        k: cfg.stage_hash(k) for k in ("crawl", "dedup", "shards", "pretrain")}, **cfg.to_dict()})  # fmt: skip
    record = fpr.Record(work)
    times = StageTimes()
    crawl_cfg = stages.crawl_config(cfg.crawl)
    sources.check_synth_port(cfg, out)
    init_ray(cfg)
    received_before = RECEIVED.bytes
    reused: dict[str, Any] = {}

    with sources.open_input(cfg, out) as inp:
        t0 = time.perf_counter()
        input_shards = plan.build_plan(inp.kind, inp.path, cfg.input.pages_per_shard, work / "plan.json",
                                       inp.paths_base, base_url=inp.base_url)  # fmt: skip
        RECEIVED.add([s.to_dict() for s in input_shards])  # what the cutting tasks sent back
        n = len(input_shards)
        crawl_fp = {str(i): fpr.digest(cfg.stage_hash("crawl"), fpr.input_shard_stamp(s))
                    for i, s in enumerate(input_shards)}  # fmt: skip
        times.add("input", t0)
        crawl_todo = [i for i in range(n) if record.crawl.get(str(i)) != crawl_fp[str(i)]
                      or not crawl_path(work, i).exists()]  # fmt: skip
        reused["crawl"] = f"{n - len(crawl_todo)}/{n} input shards"
        t0 = time.perf_counter()
        if crawl_todo:
            task = ray_remote(crawl_input_shard)
            refs = [task.remote(i, input_shards[i].to_dict(), crawl_cfg, str(work)) for i in crawl_todo]
            RECEIVED.add(_gather(refs, "crawl", "shard"))
        record.crawl = crawl_fp
        record.save()
        times.add("crawl", t0)

    for stale in sorted(set(shardio.completed_shards(out / "shards")) - set(range(n))):
        _drop_shard(out, stale)  # the input shrank: its shard would mix into the corpus
        record.shards.pop(str(stale), None)
    crawl_files = [crawl_path(work, i) for i in range(n)]
    t0 = time.perf_counter()
    dedup_fp = fpr.digest(cfg.stage_hash("dedup"), [crawl_fp[str(i)] for i in range(n)])
    if record.dedup != dedup_fp or not dist_dedup.dedup_done(work / "dedup", n):
        dedup_counts = RECEIVED.add(dist_dedup.run_dedup(crawl_files, work / "dedup", crawl_cfg,
                                                          cfg.ray.dedup_partitions))  # fmt: skip
        atomic_write_json(work / "dedup_counts.json", dedup_counts)
        record.dedup = dedup_fp
        record.save()
        reused["dedup"] = False
    else:
        reused["dedup"] = True
    times.add("dedup", t0)

    models_fp = fpr.models_stamp(cfg.to_dict())  # a retrained model re-featurises, like a config change
    shard_fp = {str(i): fpr.digest(shards_hash, models_fp, crawl_fp[str(i)], fpr.file_hash(dist_dedup.verdict_path(
        work / "dedup", i))) for i in range(n)}  # fmt: skip
    done_out = completed(out, cfg.shards.dest)
    todo = [i for i in range(n) if i not in done_out or record.shards.get(str(i)) != shard_fp[str(i)]]
    reused["shards"] = f"{n - len(todo)}/{n} output shards"
    if not cfg.shards.dest:
        # Record the new fingerprints before the writers start, so a crash midway keeps the shards
        # finished before it; a stale shard loses its stats file (its completion marker) first, so
        # it cannot pass for one of the new fingerprint until it is rewritten.
        for i in todo:
            if i in done_out:
                _drop_shard(out, i)
            record.shards[str(i)] = shard_fp[str(i)]
        record.save()
    t0 = time.perf_counter()
    written = featurise(out, work, todo, cfg, shards_hash) if todo else []
    for w in written:
        record.shards[str(w["shard_id"])] = shard_fp[str(w["shard_id"])]
    record.save()
    times.add("featurise+shards", t0)
    if cfg.shards.dest:
        subs = ("shards", "rejected") if cfg.shards.write_rejected else ("shards",)
        kept = write_remote_manifest(cfg.shards.dest, shards_hash, cfg.to_dict(), subs).get("total_count", 0)
    else:
        kept = write_manifest(out / "shards", shards_hash, cfg.to_dict()).get("total_count", 0)
        if cfg.shards.write_rejected:
            write_manifest(out / "rejected", shards_hash, cfg.to_dict())

    pretrain_summary: dict[str, Any] = {}
    if cfg.pretrain.enabled and cfg.pretrain.steps > 0 and kept == 0:
        log.warning("no sample was kept: pretraining skipped (the report lists the rejections)")
    elif cfg.pretrain.enabled and cfg.pretrain.steps > 0:
        pretrain_summary, reused["pretrain"] = run_pretrain(out, cfg, fpr.digest(
            cfg.stage_hash("pretrain"), sorted(record.shards.items())), record, times)  # fmt: skip

    summary = {
        "out": str(out),
        "config_hash": config_hash,
        "input_shards": n,
        "shards_written_now": len(written),
        "kept": kept,
        "shards_dest": cfg.shards.dest or str(out / "shards"),
        "stage_seconds": times.seconds,
        "pretrain": pretrain_summary,
        "candidates_written_now": sum(w["kept"] + w["rejected"] for w in written),
        "driver_received_bytes": RECEIVED.bytes - received_before,
        "reused": reused,
    }
    atomic_write_json(out / "run.json", summary)
    return summary


def ray_remote(fn: Any) -> Any:
    import ray

    return ray.remote(num_cpus=1)(fn)


def run_pretrain(out: Path, cfg: Any, fp: str, record: Any, times: StageTimes) -> tuple[dict[str, Any], bool]:
    """Pretrain unless a complete run of the same fingerprint is there (then reuse its summary).

    A run of another fingerprint (config or shards changed) is moved out of the way and training
    starts over; a run of the same fingerprint killed midway resumes from its checkpoint.
    """
    import shutil

    from laitkit.pipeline.pretrain.train import pretrain

    folder = out / "pretrain"
    summary_path = folder / "summary.json"
    if record.pretrain == fp and summary_path.exists() and (folder / "model.pt").exists():
        log.info("pretraining reused: %s holds a complete run of this config and corpus", folder)
        return json.loads(summary_path.read_text()), True
    if record.pretrain and record.pretrain != fp and folder.exists():
        shutil.rmtree(folder)  # made by this job (out/ carries the marker): a run of another config
    record.pretrain = fp
    record.save()
    t0 = time.perf_counter()
    summary = pretrain(out / "shards", folder, cfg.pretrain)
    times.add("pretrain", t0)
    atomic_write_json(summary_path, summary)
    return summary, False


def completed(out: Path, dest: str) -> set[int]:
    """Output shards already complete (the resume skip set), local or under `shards.dest`."""
    return set(remote_completed(dest)) if dest else shardio.completed_shards(out / "shards")


def init_ray(cfg: Any) -> None:
    """Start or join the cluster named by `ray.address` (see `RayConfig`)."""
    import ray

    if ray.is_initialized():
        return
    from laitkit.pipeline.progress import quiet_env, verbose

    address = cfg.ray.address
    os.environ.update(quiet_env())  # inherited by the raylet and workers a local cluster starts
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
        ray.init(address="local", num_cpus=cfg.ray.num_cpus, include_dashboard=False, log_to_driver=verbose(),
                 configure_logging=False, runtime_env=runtime_env)  # fmt: skip
        return
    if address.startswith("ray://"):
        _check_ray_client(address, cfg.ray.connect_timeout)
    elif address != "auto":
        _check_reachable(address, cfg.ray.connect_timeout)
    try:
        ray.init(address=address, log_to_driver=verbose(), runtime_env=runtime_env)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot reach the Ray cluster at {address!r}: {first}") from None


def _check_ray_client(address: str, timeout: float = 5.0) -> None:
    """Ray Client (`ray://host:port`): fail in one line, fast, when nothing listens there.

    Without this, `ray.init` retries for about 30 s and then raises; the user learns the same.
    """
    import importlib.util
    import socket

    if importlib.util.find_spec("grpc") is None:
        raise UserError("ray:// addresses need Ray Client: pip install 'ray[client]'")
    hostport = address[len("ray://") :].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 10001)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot reach the Ray Client server at {address!r}: {exc}") from None


def _check_reachable(address: str, timeout: float) -> None:
    """`host:port` of a cluster's GCS: one line within `timeout` seconds when nothing listens
    there (Ray itself retries for minutes before it gives up)."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"ray.address must be 'local', 'auto', 'host:port' or 'ray://host:port', got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address!r} within {timeout:g} s: "
                        f"{exc.strerror or exc}") from None
