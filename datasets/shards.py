"""Write and read output shards: one `{shard:05d}.tar` + `.parquet` + `_stats.json` per shard id.

Why the shard id is the unit: the pipeline maps input shard i to output shard i, so a crashed job
resumes by skipping the ids that are complete, and a rerun can never duplicate a sample. Each file
is written to a hidden temp name in the same directory, fsynced and renamed; the stats json is
renamed last and is the completion marker (img2dataset's `{shard}_stats.json`). A shard without
its stats file is garbage from a crash: `clean_partial` deletes it and readers never see it.

The tar is written with `tarfile`, not webdataset's `TarWriter`: importing webdataset imports torch,
and `datasets/` must stay light. The members are the ones `codec.encode_members` gives, so a plain
`webdataset.WebDataset` reads them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow.parquet as pq

from laitkit.atomic import TMP_MARK, atomic_write_bytes, atomic_write_text, fsync_dir, tmp_path  # noqa: F401
from laitkit.datasets.arrow_codec import infer_feature_dim, samples_to_table, table_to_samples
from laitkit.datasets.codec import decode_members, encode_members
from laitkit.datasets.schema import SCHEMA_VERSION, Sample

STATS_SUFFIX = "_stats.json"
SHARD_FILE_RE = re.compile(r"^(\d{5,})(\.tar|\.parquet|_stats\.json)$")
_PARQUET_BATCH = 256


def tar_name(shard: int) -> str:
    return f"{shard:05d}.tar"


def parquet_name(shard: int) -> str:
    return f"{shard:05d}.parquet"


def stats_name(shard: int) -> str:
    return f"{shard:05d}{STATS_SUFFIX}"


def shard_paths(out_dir: str | os.PathLike[str], shard_id: int, kind: str) -> Path:
    """THE place that decides where shard `shard_id`'s `kind` ("tar" | "parquet" | "stats") file lives."""
    return Path(out_dir) / {"tar": tar_name, "parquet": parquet_name, "stats": stats_name}[kind](shard_id)


@dataclass(frozen=True)
class ShardInfo:
    """What `write_shard` produced: paths, sample count, bytes on disk and the stats record."""

    shard: int
    tar: Path
    parquet: Path
    stats_path: Path
    count: int
    bytes: int
    stats: dict[str, Any]


# --- atomic files -------------------------------------------------------------------------------
# One helper for the whole project (`laitkit.atomic`); these names stay for existing callers.

_tmp_path = tmp_path
_fsync_dir = fsync_dir


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


# --- writing ------------------------------------------------------------------------------------


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # deterministic bytes: the same samples give the same tar
    tar.addfile(info, io.BytesIO(data))


def _write_tar(path: Path, samples: Iterable[Sample]) -> list[Sample]:
    """Stream samples into `path` (a temp name); returns them, as the Parquet file needs them too."""
    kept: list[Sample] = []
    with open(path, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for s in samples:
                if "." in s.key or "/" in s.key:
                    raise ValueError(f"sample key {s.key!r}: no '.' or '/' allowed in keys (WebDataset splits there)")
                members = encode_members(s)
                for ext in ("jpg", "txt", "json", "npz"):
                    # No image yet / no regions yet: leave the member out rather than write 0 bytes.
                    if ext in ("jpg", "npz") and not members[ext]:
                        continue
                    _add_member(tar, f"{s.key}.{ext}", members[ext])
                kept.append(s)
        f.flush()
        os.fsync(f.fileno())
    return kept


def _write_parquet(path: Path, samples: list[Sample], feature_dim: int) -> None:
    table = samples_to_table(samples, feature_dim)
    with open(path, "wb") as f:
        pq.write_table(table, f, compression="zstd", row_group_size=_PARQUET_BATCH)
        f.flush()
        os.fsync(f.fileno())


def shard_stats(samples: list[Sample], feature_dim: int) -> dict[str, Any]:
    """Counts derived from the data of one shard (the numbers reports are built from)."""
    with_regions = [s.regions for s in samples if s.regions is not None]
    return {
        "count": len(samples),
        "status_counts": dict(sorted(Counter(s.status for s in samples).items())),
        "caption_source_counts": dict(sorted(Counter(s.caption_source or "none" for s in samples).items())),
        "num_with_regions": len(with_regions),
        "mean_boxes": (sum(r.num_boxes for r in with_regions) / len(with_regions)) if with_regions else 0.0,
        "feature_dim": feature_dim,
        "schema_version": SCHEMA_VERSION,
    }


def write_shard(
    out_dir: str | os.PathLike[str],
    shard_id: int,
    samples: Iterable[Sample],
    *,
    config_hash: str,
    extra_stats: dict[str, Any] | None = None,
    feature_dim: int | None = None,
) -> ShardInfo:
    """Write shard `shard_id` atomically: tar, then parquet, then the stats json (the marker).

    Rewriting a complete shard is safe: its old stats file is removed before the new tar and
    parquet replace the old ones, so at no moment does a marker vouch for mismatched files.

    Args:
        out_dir: the shard directory (created if missing).
        shard_id: output shard number; the pipeline uses the input shard number.
        samples: the samples, in order; consumed once (a generator is fine).
        config_hash: hash of the resolved job config, recorded so mixed runs can be detected.
        extra_stats: caller's own numbers (timings, upstream counts), stored under "extra".
        feature_dim: D of the Parquet feature column. Pass the detector's D so shards with no
            regions at all share one schema with the rest (else they get D=1 and a reader that
            scans the directory as one table, e.g. polars, refuses the mix).

    Raises:
        ValueError: samples disagree on feature dimension, or a key has a '.' or '/'.
    """
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final_tar, final_pq = shard_paths(out, shard_id, "tar"), shard_paths(out, shard_id, "parquet")
    final_stats = shard_paths(out, shard_id, "stats")
    tmp_tar, tmp_pq = _tmp_path(final_tar), _tmp_path(final_pq)
    try:
        written = _write_tar(tmp_tar, samples)
        d = infer_feature_dim(written) if feature_dim is None else max(int(feature_dim), 1)
        _write_parquet(tmp_pq, written, d)
        keys = [s.key for s in written]
        if len(set(keys)) != len(keys):
            dup = next(k for k, c in Counter(keys).items() if c > 1)
            raise ValueError(f"shard {shard_id}: duplicate key {dup!r}")
        final_stats.unlink(missing_ok=True)  # un-mark first: the old marker must not vouch for new files
        _fsync_dir(out)
        os.replace(tmp_tar, final_tar)
        os.replace(tmp_pq, final_pq)
    except BaseException:
        tmp_tar.unlink(missing_ok=True)
        tmp_pq.unlink(missing_ok=True)
        raise
    _fsync_dir(out)
    tar_bytes, pq_bytes = final_tar.stat().st_size, final_pq.stat().st_size
    stats = {
        "shard": shard_id,
        "tar": final_tar.name,
        "parquet": final_pq.name,
        **shard_stats(written, d),
        "tar_bytes": tar_bytes,
        "parquet_bytes": pq_bytes,
        "bytes": tar_bytes + pq_bytes,
        "tar_sha256": sha256_file(final_tar),
        "parquet_sha256": sha256_file(final_pq),
        "config_hash": config_hash,
        "wall_s": round(time.time() - t0, 4),
        "finished_at": time.time(),
        "extra": dict(extra_stats or {}),
    }
    atomic_write_json(final_stats, stats)
    return ShardInfo(shard_id, final_tar, final_pq, final_stats, len(written), tar_bytes + pq_bytes, stats)


class ShardWriter:
    """Streaming writer for ad-hoc use: `write(sample)` buffers, every `max_count` closes a shard.

    Built on `write_shard`, so its shards are as atomic and as resumable as the pipeline's. It
    holds up to `max_count` samples in memory (images included); size `max_count` accordingly.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        max_count: int = 1000,
        config_hash: str,
        start_shard: int = 0,
        feature_dim: int | None = None,
    ) -> None:
        if max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        self.out_dir = Path(out_dir)
        self.max_count = max_count
        self.config_hash = config_hash
        self.feature_dim = feature_dim
        self.next_shard = start_shard
        self.shards: list[ShardInfo] = []
        self._buffer: list[Sample] = []

    def write(self, sample: Sample) -> None:
        self._buffer.append(sample)
        if len(self._buffer) >= self.max_count:
            self.flush()

    def flush(self) -> None:
        """Write the buffered samples as the next shard (nothing when the buffer is empty)."""
        if not self._buffer:
            return
        info = write_shard(
            self.out_dir, self.next_shard, self._buffer, config_hash=self.config_hash, feature_dim=self.feature_dim
        )
        self.shards.append(info)
        self.next_shard += 1
        self._buffer = []

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # On error, do not mark a half-filled buffer complete: what is written is whole, the rest is lost.
        if exc_type is None:
            self.close()


# --- completion and cleanup ---------------------------------------------------------------------


def completed_shards(out_dir: str | os.PathLike[str]) -> set[int]:
    """Shard ids whose stats file exists and whose tar and parquet exist (the resume skip set)."""
    out = Path(out_dir)
    if not out.is_dir():
        return set()
    done = set()
    for p in out.iterdir():
        m = SHARD_FILE_RE.match(p.name)
        if m and m.group(2) == STATS_SUFFIX:
            shard = int(m.group(1))
            if (out / tar_name(shard)).is_file() and (out / parquet_name(shard)).is_file():
                done.add(shard)
    return done


def clean_partial(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete crash leftovers: temp files, and any tar/parquet of a shard with no stats file.

    Run it before workers start (it would also delete a live writer's temp files). Returns the
    removed paths.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return []
    removed = []
    for p in sorted(out.iterdir()):
        m = SHARD_FILE_RE.match(p.name)
        orphan = m is not None and m.group(2) != STATS_SUFFIX and not (out / stats_name(int(m.group(1)))).exists()
        if (p.name.startswith(".") and TMP_MARK in p.name) or orphan:
            p.unlink(missing_ok=True)
            removed.append(p)
    if removed:
        _fsync_dir(out)
    return removed


def read_stats(out_dir: str | os.PathLike[str], shard: int) -> dict[str, Any]:
    with open(Path(out_dir) / stats_name(shard), encoding="utf-8") as f:
        return json.load(f)


# --- reading ------------------------------------------------------------------------------------


def _shard_files(path_or_dir: str | os.PathLike[str], name: Callable[[int], str]) -> list[Path]:
    p = Path(path_or_dir)
    if p.is_dir():
        return [p / name(s) for s in sorted(completed_shards(p))]  # never read a crash leftover
    if not p.exists():
        raise FileNotFoundError(p)
    return [p]


def iter_tar_members(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) per sample of one tar, in order; members of one key are consecutive."""
    key: str | None = None
    members: dict[str, bytes] = {}
    with tarfile.open(path, mode="r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            base = info.name.rsplit("/", 1)[-1]
            k, _, ext = base.partition(".")
            f = tar.extractfile(info)
            data = f.read() if f is not None else b""
            if k != key:
                if key is not None:
                    yield key, members
                key, members = k, {}
            members[ext] = data
    if key is not None:
        yield key, members


def iter_tar(path_or_dir: str | os.PathLike[str]) -> Iterator[Sample]:
    """Samples of one tar, or of every completed shard of a directory in shard order."""
    for path in _shard_files(path_or_dir, tar_name):
        for key, members in iter_tar_members(path):
            try:
                sample = decode_members(members)
            except Exception as exc:
                raise ValueError(f"{path}: sample {key!r} does not decode: {exc}") from exc
            yield sample


def iter_parquet(path_or_dir: str | os.PathLike[str], batch_size: int = _PARQUET_BATCH) -> Iterator[Sample]:
    """Samples of one parquet file, or of every completed shard of a directory, batch by batch."""
    for path in _shard_files(path_or_dir, parquet_name):
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=batch_size):
            yield from table_to_samples(batch)
