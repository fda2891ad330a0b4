"""The last stage: a Ray worker writes each output shard itself and returns one summary row.

Why on workers: image bytes and region features never travel to the driver, which receives a
few numbers per shard (its id, kept, rejected, bytes). Batches arrive whole-shard (every stage
runs with `batch_size=None` on blocks that hold one input shard each, see `stages.py`); a batch
that holds only part of a shard is a bug upstream and fails loudly rather than writing half a
shard. Shard files are written atomically, the kept shard's stats file last (the completion
marker); paths come from `datasets.shards.shard_paths`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from laitkit.datasets import shards as shardio
from laitkit.datasets.codec import from_row
from laitkit.pipeline.faults import pause_point
from laitkit.pipeline.stage import MEMBER_COLUMNS, Batch

SUMMARY_COLUMNS = ("shard_id", "kept", "rejected", "bytes")


def write_output_shard(
    out: Path, shard_id: int, samples: list[Any], config_hash: str, write_rejected: bool, feature_dim: int | None,
    layout: str | None = None,
) -> tuple[int, int, int]:
    """Write kept and rejected samples of one shard in `layout` (see `shards.shard_paths`); (kept, rejected, bytes)."""
    kept = sorted((s for s in samples if s.kept), key=lambda s: s.key)
    rejected = sorted((s for s in samples if not s.kept), key=lambda s: s.key)
    dims = {s.regions.feature_dim for s in kept if s.regions is not None and s.regions.num_boxes}
    feature_dim = next(iter(dims)) if dims else feature_dim
    size = 0
    if write_rejected:
        info = shardio.write_shard(out / "rejected", shard_id, rejected, config_hash=config_hash,
                                   feature_dim=feature_dim, layout=layout)  # fmt: skip
        size += info.bytes
    pause_point("write")  # crash tests: the rejected shard is complete, the kept one not started
    # the kept shard's stats file is the job-level completion marker, so it is written last
    info = shardio.write_shard(out / "shards", shard_id, kept, config_hash=config_hash, feature_dim=feature_dim,
                               layout=layout)  # fmt: skip
    return len(kept), len(rejected), size + info.bytes


class WriteShardStage:
    """`map_batches` callable: batch of whole shards in, one summary row per shard out."""

    name = "write"

    def __init__(self, out: str, config_hash: str, write_rejected: bool, expected: dict[int, int],
                 dest: str = "", layout: str | None = None) -> None:  # fmt: skip
        self.out = Path(out)
        self.config_hash = config_hash
        self.write_rejected = write_rejected
        self.expected = {int(k): int(v) for k, v in expected.items()}
        self.dest = dest
        self.layout = layout

    def __call__(self, batch: Batch) -> Batch:
        rows: dict[int, list[int]] = defaultdict(list)
        for i, sid in enumerate(batch["shard_id"]):
            rows[int(sid)].append(i)
        dims = batch.get("feature_dim")
        summary: dict[str, list[int]] = {c: [] for c in SUMMARY_COLUMNS}
        for sid, idx in sorted(rows.items()):
            if len(idx) != self.expected.get(sid, -1):
                raise RuntimeError(f"shard {sid}: batch holds {len(idx)} rows, expected {self.expected.get(sid)}")
            samples = [from_row({c: batch[c][i] for c in MEMBER_COLUMNS}) for i in idx]
            dim = int(dims[idx[0]]) if dims is not None else None
            if self.dest:
                kept, rejected, size = write_remote_shard(self.out / "work" / "staging", self.dest, sid, samples,
                                                          self.config_hash, self.write_rejected, dim,
                                                          self.layout)  # fmt: skip
            else:
                kept, rejected, size = write_output_shard(self.out, sid, samples, self.config_hash,
                                                          self.write_rejected, dim, self.layout)  # fmt: skip
            for c, v in zip(SUMMARY_COLUMNS, (sid, kept, rejected, size), strict=True):
                summary[c].append(v)
        return {c: np.asarray(v, dtype=np.int64) for c, v in summary.items()}


def write_remote_shard(
    staging: Path, dest: str, shard_id: int, samples: list[Any], config_hash: str, write_rejected: bool,
    feature_dim: int | None, layout: str | None = None,
) -> tuple[int, int, int]:
    """Write shard `shard_id` in a local staging folder (`OUT/work/staging`), then upload it under
    `dest` (any fsspec URI) in the same layout as a local run: rejected first, the kept shard's stats
    object last, so a reader of `dest` trusts a shard exactly when its stats object exists (a PUT is
    all or nothing)."""
    import shutil

    from laitkit.pipeline import storage

    local = staging / f"{shard_id:05d}"
    shutil.rmtree(local, ignore_errors=True)
    counts = write_output_shard(local, shard_id, samples, config_hash, write_rejected, feature_dim, layout)
    for sub in ("rejected", "shards") if write_rejected else ("shards",):
        for kind in ("tar", "parquet", "stats"):  # the stats object last: it marks the shard complete
            p = shardio.shard_paths(local / sub, shard_id, kind, "auto")
            storage.put_file(str(p), storage.join(dest, sub, p.relative_to(local / sub).as_posix()))
        # a local copy of the stats only, so `laitkit report OUT` counts what went to `dest`
        (staging.parent.parent / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shardio.shard_paths(local / sub, shard_id, "stats"),
                        shardio.shard_paths(staging.parent.parent / sub, shard_id, "stats"))  # fmt: skip
    shutil.rmtree(local, ignore_errors=True)
    return counts


def remote_completed(dest: str, sub: str = "shards") -> dict[int, dict[str, Any]]:
    """Stats of the complete shards under `dest/sub`: stats object present, and the tar and parquet
    it names (paths relative to `dest/sub`, so either layout) present too."""
    import json

    from laitkit.pipeline import storage

    uri = storage.join(dest, sub)
    if not storage.exists(uri):
        return {}
    fs, root = storage.url_to_fs(uri)
    root = root.rstrip("/")
    rel = {f[len(root):].lstrip("/") for f in fs.find(root) if f.startswith(root)}
    out: dict[int, dict[str, Any]] = {}
    for name in sorted(rel):
        m = shardio.SHARD_FILE_RE.match(name)  # stats objects sit at the top of `sub`, never below
        if m and m.group(2) == shardio.STATS_SUFFIX:
            with storage.open_binary(storage.join(uri, name)) as fh:
                st = json.loads(fh.read())
            sid = int(m.group(1))
            tar, parquet = st.get("tar", shardio.tar_name(sid)), st.get("parquet", shardio.parquet_name(sid))
            if tar in rel and parquet in rel:
                out[sid] = st
    return out


def write_remote_manifest(dest: str, config_hash: str, config: dict[str, Any] | None,
                          subs: tuple[str, ...] = ("shards",)) -> dict[str, Any]:  # fmt: skip
    """Write `manifest.json` under `dest/sub` for each `sub`, from its complete shards' stats (as a
    local run does); returns the `shards` one. Uploaded from a local temp file: one atomic PUT."""
    import tempfile

    from laitkit.datasets.manifest import MANIFEST, build_manifest
    from laitkit.pipeline import storage

    first: dict[str, Any] = {}
    for sub in subs:
        manifest = build_manifest(remote_completed(dest, sub), config_hash, config)
        with tempfile.TemporaryDirectory(prefix="lk-manifest-") as tmp:
            local = Path(tmp) / MANIFEST
            shardio.atomic_write_json(local, manifest)
            storage.put_file(str(local), storage.join(dest, sub, MANIFEST))
        first = first or manifest
    return first
