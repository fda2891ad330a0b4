"""Compose the stages into one resumable job on a Ray cluster.

The order is fixed by the recipe: input shards → crawl/filter (Ray tasks, one per input shard)
→ global dedup (one pass over light metadata) → relevance, regions, text (Ray Data
`map_batches`, actor pools, one model per actor) → shards (kept and rejected) → pretraining →
report. Every step leaves files; a rerun skips whatever a previous run completed, so a job
killed at any point resumes without duplicates:

- `work/pages/{i}.parquet` input shard i (deterministic split of the input),
- `work/crawl/{i}.parquet` crawl rows of shard i (written atomically),
- `work/dedup.parquet` dedup verdicts (recomputed only when crawl shards changed),
- `shards/{i}.*` and `rejected/{i}.*`: output shard i, completion marked by its stats file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from laitkit.datasets import shards as shardio
from laitkit.datasets.codec import from_row
from laitkit.datasets.manifest import write_manifest
from laitkit.datasets.schema import Sample
from laitkit.errors import UserError
from laitkit.pipeline import sources
from laitkit.pipeline.stage import ROW_COLUMNS

log = logging.getLogger(__name__)


@dataclass
class StageTimes:
    """Wall seconds per stage, for the report."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, t0: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 2)


def write_rows_atomic(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def crawl_input_shard(shard_id: int, pages_path: str, crawl_cfg: Any, work_dir: str) -> str:
    """Ray task body: crawl one input shard, write its rows, return the rows' path."""
    from laitkit.pipeline.crawl import crawl_pages, crawl_url_rows
    from laitkit.pipeline.stage import samples_to_batch

    kind, items = sources.read_input_shard(Path(pages_path))
    shard_work = Path(work_dir) / "crawl_tmp" / f"{shard_id:05d}"
    crawl = crawl_pages if kind == "pages" else crawl_url_rows
    # dedup is global (see `dedup_verdicts`); a per-shard pass would only be a subset of it
    samples = crawl(items, dataclasses.replace(crawl_cfg, dedup=False), shard_work)
    batch = samples_to_batch(samples, [shard_id] * len(samples))
    table = pa.table({c: pa.array(list(batch[c]), type=_ROW_TYPES[c]) for c in ROW_COLUMNS})
    out = Path(work_dir) / "crawl" / f"{shard_id:05d}.parquet"
    write_rows_atomic(out, table)
    return str(out)


_ROW_TYPES = {
    "key": pa.string(),
    "status": pa.string(),
    "shard_id": pa.int64(),
    "jpg": pa.binary(),
    "txt": pa.binary(),
    "json": pa.binary(),
    "npz": pa.binary(),
}


def read_rows(path: str) -> pa.Table:
    return pq.read_table(path, columns=list(ROW_COLUMNS))


def light_samples(crawl_files: list[Path]) -> list[Sample]:
    """Samples without image bytes or arrays: all that dedup needs, cheap to hold for a corpus."""
    out: list[Sample] = []
    for f in crawl_files:
        for meta in pq.read_table(f, columns=["json"]).column("json").to_pylist():
            out.append(from_row({"json": meta}))
    return out


def group_by_shard(rows: Any, expected: dict[int, int]) -> Any:
    """Yield (shard_id, samples) as soon as every row of a shard has come back from Ray."""
    buf: dict[int, list[Sample]] = defaultdict(list)
    for row in rows:
        sid = int(row["shard_id"])
        buf[sid].append(from_row(row))
        if len(buf[sid]) == expected[sid]:
            yield sid, buf.pop(sid)
    for sid, samples in sorted(buf.items()):  # only reached if counts disagree: still write, loudly
        log.warning("shard %d: got %d rows, expected %d", sid, len(samples), expected[sid])
        yield sid, samples


def write_output_shard(
    out: Path, shard_id: int, samples: list[Sample], config_hash: str, write_rejected: bool, feature_dim: int | None
) -> int | None:
    """Write kept and rejected samples of one shard; return the feature dim seen (for the next)."""
    kept = sorted((s for s in samples if s.kept), key=lambda s: s.key)
    rejected = sorted((s for s in samples if not s.kept), key=lambda s: s.key)
    dims = {s.regions.feature_dim for s in kept if s.regions is not None and s.regions.num_boxes}
    feature_dim = next(iter(dims)) if dims else feature_dim
    if write_rejected:
        shardio.write_shard(out / "rejected", shard_id, rejected, config_hash=config_hash, feature_dim=feature_dim)
    # the kept shard's stats file is the job-level completion marker, so it is written last
    shardio.write_shard(out / "shards", shard_id, kept, config_hash=config_hash, feature_dim=feature_dim)
    return feature_dim


def save_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    tmp.replace(path)


def dedup_verdicts(crawl_files: list[Path], crawl_cfg: Any, path: Path) -> dict[str, int]:
    """Run the one stateful step over every crawl shard and store its verdicts by key."""
    from laitkit.pipeline.crawl import Deduper

    samples = light_samples(crawl_files)
    before = {s.key: len(s.verdicts) for s in samples}
    deduper = Deduper.from_config(crawl_cfg)
    deduper.count(samples)
    deduper.apply(samples)
    keys, stages, reasons, details = [], [], [], []
    counts: dict[str, int] = defaultdict(int)
    for s in samples:
        for v in s.verdicts[before[s.key] :]:
            keys.append(s.key)
            stages.append(v.stage)
            reasons.append(str(v.reason))
            details.append(v.detail)
            counts[str(v.reason)] += 1
    table = pa.table({"key": keys, "stage": stages, "reason": reasons, "detail": details})
    write_rows_atomic(path, table)
    return dict(counts)


def run_job(cfg: Any) -> dict[str, Any]:
    """Run (or resume) the whole job described by a `JobConfig`; return the run summary."""
    import ray

    from laitkit.pipeline import stages

    out = Path(cfg.out)
    work = out / "work"
    for d in (work / "pages", work / "crawl", out / "shards", out / "rejected"):
        d.mkdir(parents=True, exist_ok=True)
    for d in (out / "shards", out / "rejected"):
        shardio.clean_partial(d)  # leftovers of a crashed run; no writer is running yet
    config_hash = cfg.config_hash()
    check_same_job(out, config_hash)
    save_json(out / "config.json", {"config_hash": config_hash, **cfg.to_dict()})
    times = StageTimes()
    crawl_cfg = stages.crawl_config(cfg.crawl)

    with sources.open_input(cfg, out) as inp:
        t0 = time.perf_counter()
        page_shards = sources.write_input_shards(inp, work / "pages", cfg.input.pages_per_shard)
        times.add("input", t0)
        done_out = shardio.completed_shards(out / "shards")
        todo = [i for i in range(len(page_shards)) if i not in done_out]
        crawl_todo = [i for i in todo if not (work / "crawl" / f"{i:05d}.parquet").exists()]
        _init_ray(cfg)
        t0 = time.perf_counter()
        if crawl_todo:
            task = ray.remote(num_cpus=1)(crawl_input_shard)
            refs = [task.remote(i, str(page_shards[i]), crawl_cfg, str(work)) for i in crawl_todo]
            ray.get(refs)
        times.add("crawl", t0)

    crawl_files = [work / "crawl" / f"{i:05d}.parquet" for i in range(len(page_shards))]
    t0 = time.perf_counter()
    dedup_path = work / "dedup.parquet"
    if todo or not dedup_path.exists():
        dedup_counts = dedup_verdicts(crawl_files, crawl_cfg, dedup_path)
        save_json(work / "dedup_counts.json", dedup_counts)
    times.add("dedup", t0)

    t0 = time.perf_counter()
    if todo:
        expected = {i: pq.read_metadata(crawl_files[i]).num_rows for i in todo}
        # Each crawl shard is read by a light task into the object store. (`ray.data.read_parquet`
        # probes fsspec's HTTP backend, which needs aiohttp, and asks a whole CPU per read task.)
        read = ray.remote(num_cpus=0.05)(read_rows)
        ds = ray.data.from_arrow_refs([read.remote(str(crawl_files[i])) for i in todo])
        ds = stages.apply_stages(ds, cfg, dedup_path)
        feature_dim = None
        for sid, samples in group_by_shard(ds.iter_rows(), expected):
            feature_dim = write_output_shard(out, sid, samples, config_hash, cfg.shards.write_rejected, feature_dim)
    times.add("featurise+shards", t0)
    manifest = write_manifest(out / "shards", config_hash, cfg.to_dict())
    if cfg.shards.write_rejected:
        write_manifest(out / "rejected", config_hash, cfg.to_dict())

    pretrain_summary: dict[str, Any] = {}
    if cfg.pretrain.enabled and cfg.pretrain.steps > 0:
        from laitkit.pipeline.pretrain.train import pretrain

        t0 = time.perf_counter()
        pretrain_summary = pretrain(out / "shards", out / "pretrain", cfg.pretrain)
        times.add("pretrain", t0)
        save_json(out / "pretrain" / "summary.json", pretrain_summary)

    summary = {
        "out": str(out),
        "config_hash": config_hash,
        "input_shards": len(page_shards),
        "shards_written_now": len(todo),
        "kept": manifest.get("total_count", 0),
        "stage_seconds": times.seconds,
        "pretrain": pretrain_summary,
    }
    save_json(out / "run.json", summary)
    return summary


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


def _init_ray(cfg: Any) -> None:
    import ray

    if ray.is_initialized():
        return
    if cfg.ray.address == "local":
        ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        try:
            ray.init(address=cfg.ray.address, log_to_driver=False)
        except (ConnectionError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Ray cluster at {cfg.ray.address!r}: {exc}") from None
