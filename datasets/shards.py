"""Write and read output shards: one `{shard:05d}.tar` + `.parquet` + `_stats.json` per shard id.

Where each file goes is decided by `shard_paths` alone: "split" (the default: `tar/` and `parquet/`
folders beside the stats files, so each ecosystem's folder reader sees one format) or "flat" (all in
one folder, what earlier versions wrote); every reader here accepts both, and a mix.

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
from collections.abc import Iterable, Iterator
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


# "split": tars in `tar/`, Parquet in `parquet/` beside the stats files, so each ecosystem's folder
# reader (`datasets.load_dataset("webdataset", data_dir=...)`, `pyarrow.dataset.dataset(...)`) sees
# one format. "flat": all in one folder, the original layout, still read everywhere ("auto").
LAYOUTS = ("flat", "split")
# New runs write "split"; every reader lists shards through `list_shard_files` / the stats files,
# so folders written "flat" by earlier versions (or with `shards.layout: flat`) still read.
DEFAULT_LAYOUT = "split"
SUBDIRS = {"tar": "tar", "parquet": "parquet"}


def shard_paths(out_dir: str | os.PathLike[str], shard_id: int, kind: str, layout: str | None = None) -> Path:
    """THE place that decides where shard `shard_id`'s `kind` ("tar" | "parquet" | "stats") file lives.

    `layout`: "flat" or "split" (None: `DEFAULT_LAYOUT`), or "auto" for reading: the split path if
    that file exists, else the flat one (shards written before the split layout).
    Stats files always sit in `out_dir` itself: they are the completion markers of both layouts.
    """
    out = Path(out_dir)
    name = {"tar": tar_name, "parquet": parquet_name, "stats": stats_name}[kind](shard_id)
    if kind == "stats":
        return out / name
    layout = layout or DEFAULT_LAYOUT
    if layout == "auto":
        split = out / SUBDIRS[kind] / name
        return split if split.exists() else out / name
    return out / SUBDIRS[kind] / name if check_layout(layout) == "split" else out / name


def check_layout(layout: str) -> str:
    """`layout` if it is one a writer accepts; ValueError naming the choices otherwise."""
    if layout not in LAYOUTS:
        raise ValueError(f"shard layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


def tar_name(shard: int) -> str:
    return f"{shard:05d}.tar"


def parquet_name(shard: int) -> str:
    return f"{shard:05d}.parquet"


def stats_name(shard: int) -> str:
    return f"{shard:05d}{STATS_SUFFIX}"


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
# One helper for the whole project (`laitkit.atomic`), re-exported here for existing callers.


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
    layout: str | None = None,
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
        layout: "flat" or "split" (see `shard_paths`); None: `DEFAULT_LAYOUT`. The stats file
            records the files' paths relative to `out_dir`, and so does the manifest.

    Raises:
        ValueError: samples disagree on feature dimension, or a key has a '.' or '/'.
    """
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final_tar, final_pq = shard_paths(out, shard_id, "tar", layout), shard_paths(out, shard_id, "parquet", layout)
    final_stats = shard_paths(out, shard_id, "stats")
    for final in (final_tar, final_pq):
        final.parent.mkdir(parents=True, exist_ok=True)
    # A shard rewritten in the other layout must not leave its old files behind as a second copy.
    stale = [p for p in (out / tar_name(shard_id), out / parquet_name(shard_id), out / "tar" / tar_name(shard_id),
                         out / "parquet" / parquet_name(shard_id)) if p not in (final_tar, final_pq)]
    tmp_tar, tmp_pq = tmp_path(final_tar), tmp_path(final_pq)
    try:
        written = _write_tar(tmp_tar, samples)
        d = infer_feature_dim(written) if feature_dim is None else max(int(feature_dim), 1)
        _write_parquet(tmp_pq, written, d)
        keys = [s.key for s in written]
        if len(set(keys)) != len(keys):
            dup = next(k for k, c in Counter(keys).items() if c > 1)
            raise ValueError(f"shard {shard_id}: duplicate key {dup!r}")
        final_stats.unlink(missing_ok=True)  # un-mark first: the old marker must not vouch for new files
        fsync_dir(out)
        for p in stale:
            p.unlink(missing_ok=True)
        os.replace(tmp_tar, final_tar)
        os.replace(tmp_pq, final_pq)
    except BaseException:
        tmp_tar.unlink(missing_ok=True)
        tmp_pq.unlink(missing_ok=True)
        raise
    for folder in {out, final_tar.parent, final_pq.parent}:
        fsync_dir(folder)
    tar_bytes, pq_bytes = final_tar.stat().st_size, final_pq.stat().st_size
    stats = {
        "shard": shard_id,
        "tar": final_tar.relative_to(out).as_posix(),
        "parquet": final_pq.relative_to(out).as_posix(),
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
        layout: str | None = None,
    ) -> None:
        if max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        self.out_dir = Path(out_dir)
        self.max_count = max_count
        self.config_hash = config_hash
        self.feature_dim = feature_dim
        self.layout = layout
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
            self.out_dir, self.next_shard, self._buffer, config_hash=self.config_hash, feature_dim=self.feature_dim,
            layout=self.layout,
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
            if all(shard_paths(out, shard, kind, "auto").is_file() for kind in ("tar", "parquet")):
                done.add(shard)
    return done


def shard_dir_files(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Every entry of a shard directory and of its `tar/` and `parquet/` folders (either layout)."""
    out = Path(out_dir)
    files = list(out.iterdir())
    for sub in SUBDIRS.values():
        if (out / sub).is_dir():
            files.extend((out / sub).iterdir())
    return sorted(p for p in files if not p.is_dir())


def clean_partial(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete crash leftovers: temp files, and any tar/parquet of a shard with no stats file.

    Run it before workers start (it would also delete a live writer's temp files). Returns the
    removed paths.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return []
    removed = []
    for p in shard_dir_files(out):
        m = SHARD_FILE_RE.match(p.name)
        orphan = m is not None and m.group(2) != STATS_SUFFIX and not (out / stats_name(int(m.group(1)))).exists()
        if (p.name.startswith(".") and TMP_MARK in p.name) or orphan:
            p.unlink(missing_ok=True)
            removed.append(p)
    for folder in {p.parent for p in removed}:
        fsync_dir(folder)
    return removed


def read_stats(out_dir: str | os.PathLike[str], shard: int) -> dict[str, Any]:
    with open(Path(out_dir) / stats_name(shard), encoding="utf-8") as f:
        return json.load(f)


# --- reading ------------------------------------------------------------------------------------


def _shard_files(path_or_dir: str | os.PathLike[str], kind: str) -> list[Path]:
    p = Path(path_or_dir)
    if p.is_dir():  # never read a crash leftover
        return [shard_paths(p, s, kind, "auto") for s in sorted(completed_shards(p))]
    if not p.exists():
        raise FileNotFoundError(p)
    return [p]


def list_shard_files(path_or_dir: str | os.PathLike[str], kind: str = "tar") -> list[Path]:
    """The `kind` ("tar" | "parquet") files of every completed shard of a directory, in shard order."""
    return _shard_files(path_or_dir, kind)


def webdataset_urls(out_dir: str | os.PathLike[str]) -> str | list[str]:
    """What to pass to `webdataset.WebDataset` for a shard directory (it takes brace notation or a
    list, not a glob): `DIR/tar/{00000..00002}.tar` when the completed shards are contiguous
    and in one folder, else the list of their paths."""
    files = list_shard_files(out_dir, "tar")
    ids = sorted(completed_shards(out_dir))
    if files and len({f.parent for f in files}) == 1 and ids == list(range(ids[0], ids[-1] + 1)):
        if len(ids) == 1:
            return str(files[0])
        return str(files[0].parent / f"{{{tar_name(ids[0])[:-4]}..{tar_name(ids[-1])[:-4]}}}.tar")
    return [str(f) for f in files]


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
    for path in _shard_files(path_or_dir, "tar"):
        for key, members in iter_tar_members(path):
            try:
                sample = decode_members(members)
            except Exception as exc:
                raise ValueError(f"{path}: sample {key!r} does not decode: {exc}") from exc
            yield sample


def iter_parquet(path_or_dir: str | os.PathLike[str], batch_size: int = _PARQUET_BATCH) -> Iterator[Sample]:
    """Samples of one parquet file, or of every completed shard of a directory, batch by batch."""
    for path in _shard_files(path_or_dir, "parquet"):
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=batch_size):
            yield from table_to_samples(batch)
