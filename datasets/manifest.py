"""The corpus manifest (`manifest.json`) and `validate`, the check that a shard directory is sound.

Why a manifest on top of per-shard stats: readers (pretraining, reports) want one file that lists
the shards and totals without listing a directory, and a config hash that tells whether every
shard came from the same run config. It is derived only from completed shards' stats files, so
rewriting it is always safe. `validate` re-reads everything and reports problems as sentences
rather than raising, so one run lists all of them.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from laitkit.datasets.codec import decode_members
from laitkit.datasets.schema import SCHEMA_VERSION, arrow_schema
from laitkit.datasets.shards import (
    SHARD_FILE_RE,
    STATS_SUFFIX,
    SUBDIRS,
    TMP_MARK,
    atomic_write_json,
    completed_shards,
    iter_tar_members,
    parquet_name,
    read_stats,
    sha256_file,
    shard_dir_files,
    shard_paths,
    stats_name,
    tar_name,
)

MANIFEST = "manifest.json"


def write_manifest(
    out_dir: str | os.PathLike[str], config_hash: str, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Scan completed shards and write `manifest.json` atomically; returns what was written.

    Raises:
        ValueError: a shard was written under another config hash or schema version, or shards
            with regions disagree on feature dimension (one corpus, one detector).
    """
    out = Path(out_dir)
    manifest = build_manifest({s: read_stats(out, s) for s in sorted(completed_shards(out))}, config_hash, config)
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def build_manifest(
    stats: dict[int, dict[str, Any]], config_hash: str, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The manifest of complete shards given their stats records (local or remote, same content).

    Raises:
        ValueError: as `write_manifest`.
    """
    shards = []
    status: Counter[str] = Counter()
    dims: set[int] = set()
    for shard, st in sorted(stats.items()):
        if st.get("config_hash") != config_hash:
            raise ValueError(
                f"shard {shard} was written with config {st.get('config_hash')!r}, not {config_hash!r}; "
                "delete it or rerun with the config it was written with"
            )
        if st.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"shard {shard} has schema {st.get('schema_version')!r}, expected {SCHEMA_VERSION!r}")
        shards.append(
            {"shard": shard, "tar": st["tar"], "parquet": st["parquet"], "count": st["count"], "bytes": st["bytes"]}
        )
        status.update(st["status_counts"])
        if st.get("num_with_regions", 0):
            dims.add(int(st["feature_dim"]))
    if len(dims) > 1:
        raise ValueError(f"shards disagree on region feature dimension: {sorted(dims)}")
    tar_dirs = sorted({str(Path(s["tar"]).parent.as_posix()) for s in shards})
    pq_dirs = sorted({str(Path(s["parquet"]).parent.as_posix()) for s in shards})
    return {
        # Where the files are, relative to this folder ("." = the flat layout), per format and per shard.
        "layout": "split" if tar_dirs == [SUBDIRS["tar"]] and pq_dirs == [SUBDIRS["parquet"]] else
        ("flat" if tar_dirs == pq_dirs == ["."] else ("mixed" if shards else None)),
        "tar_dirs": tar_dirs,
        "parquet_dirs": pq_dirs,
        "schema_version": SCHEMA_VERSION,
        "config_hash": config_hash,
        "config": config,
        "feature_dim": dims.pop() if dims else None,
        "num_shards": len(shards),
        "total_count": sum(s["count"] for s in shards),
        "total_bytes": sum(s["bytes"] for s in shards),
        "status_counts": dict(sorted(status.items())),
        "shards": shards,
        "created_at": time.time(),
    }


def load_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of `out_dir`; FileNotFoundError when there is none."""
    with open(Path(out_dir) / MANIFEST, encoding="utf-8") as f:
        return json.load(f)


def validate(out_dir: str | os.PathLike[str], *, check_hashes: bool = True) -> list[str]:
    """Every problem found in a shard directory, as one sentence each; empty means sound.

    Checks: leftovers of a crash, stats without files, schema version, file sizes and sha256 against
    stats, tar members that do not decode, counts and keys (same keys, same order) of tar vs parquet
    vs stats, Parquet schema, duplicate keys across shards, and the manifest against the shards.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return [f"{out}: not a directory"]
    problems: list[str] = []
    stats_ids, data_ids = set(), set()
    for p in shard_dir_files(out):
        if p.name.startswith(".") and TMP_MARK in p.name:
            problems.append(f"{p.name}: temp file left by a crashed writer (run clean_partial)")
        m = SHARD_FILE_RE.match(p.name)
        if m:
            (stats_ids if m.group(2) == STATS_SUFFIX else data_ids).add(int(m.group(1)))
    for shard in sorted(data_ids - stats_ids):
        problems.append(f"shard {shard}: data file without {stats_name(shard)} (partial write; run clean_partial)")
    for shard in sorted(stats_ids):
        for kind, name in (("tar", tar_name(shard)), ("parquet", parquet_name(shard))):
            if not shard_paths(out, shard, kind, "auto").is_file():
                problems.append(f"shard {shard}: {name} missing")

    dims: dict[int, int] = {}
    seen: dict[str, int] = {}
    stats_by_shard: dict[int, dict[str, Any]] = {}
    for shard in sorted(completed_shards(out)):
        try:
            st = read_stats(out, shard)
        except (OSError, ValueError) as exc:
            problems.append(f"shard {shard}: unreadable stats file: {exc}")
            continue
        stats_by_shard[shard] = st
        problems.extend(_check_shard(out, shard, st, check_hashes, dims, seen))

    if len(set(dims.values())) > 1:
        problems.append(
            f"shards disagree on the Parquet feature width {dict(sorted(dims.items()))}: a reader scanning the "
            "directory as one table (polars, pyarrow.dataset) will refuse it; pass feature_dim= to write_shard"
        )
    problems.extend(_check_manifest(out, stats_by_shard))
    return problems


def _check_shard(
    out: Path, shard: int, st: dict[str, Any], check_hashes: bool, dims: dict[int, int], seen: dict[str, int]
) -> list[str]:
    problems = []
    tar, parquet = shard_paths(out, shard, "tar", "auto"), shard_paths(out, shard, "parquet", "auto")
    if st.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"shard {shard}: schema version {st.get('schema_version')!r}, expected {SCHEMA_VERSION!r}")
    for path, key in ((tar, "tar"), (parquet, "parquet")):
        size = path.stat().st_size
        if size != st.get(f"{key}_bytes"):
            problems.append(f"shard {shard}: {path.name} is {size} bytes, stats say {st.get(f'{key}_bytes')}")
        elif check_hashes and sha256_file(path) != st.get(f"{key}_sha256"):
            problems.append(f"shard {shard}: {path.name} sha256 differs from stats (modified after writing)")

    tar_keys = []
    try:
        for key, members in iter_tar_members(tar):
            tar_keys.append(key)
            try:
                decode_members(members)
            except Exception as exc:
                problems.append(f"shard {shard}: {tar.name} sample {key!r} does not decode: {exc!r}")
    except Exception as exc:
        problems.append(f"shard {shard}: {tar.name} is not a readable tar: {type(exc).__name__}: {exc}")
        tar_keys = None

    pq_keys = None
    try:
        pf = pq.ParquetFile(parquet)
        schema = pf.schema_arrow
        d = schema.field("regions_features").type.value_type.list_size
        dims[shard] = d
        if not (schema.equals(arrow_schema(d)) or schema.equals(arrow_schema(d, legacy=True))):
            problems.append(f"shard {shard}: {parquet.name} schema differs from arrow_schema({d})")
        pq_keys = pf.read(columns=["key"]).column("key").to_pylist()
    except Exception as exc:
        problems.append(f"shard {shard}: {parquet.name} is not readable: {type(exc).__name__}: {exc}")

    count = st.get("count")
    if tar_keys is not None and len(tar_keys) != count:
        problems.append(f"shard {shard}: tar has {len(tar_keys)} samples, stats say {count}")
    if pq_keys is not None and len(pq_keys) != count:
        problems.append(f"shard {shard}: parquet has {len(pq_keys)} rows, stats say {count}")
    if tar_keys is not None and pq_keys is not None and tar_keys != pq_keys:
        problems.append(f"shard {shard}: tar and parquet keys differ (set or order)")
    for key in pq_keys if pq_keys is not None else tar_keys or []:
        if key in seen:
            problems.append(f"shard {shard}: key {key!r} also in shard {seen[key]}")
        seen[key] = shard
    return problems


def _check_manifest(out: Path, stats_by_shard: dict[int, dict[str, Any]]) -> list[str]:
    if not (out / MANIFEST).exists():
        return [f"{MANIFEST} missing (run write_manifest)"]
    try:
        man = load_manifest(out)
    except (OSError, ValueError) as exc:
        return [f"{MANIFEST} unreadable: {exc}"]
    problems = []
    if man.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"{MANIFEST}: schema version {man.get('schema_version')!r}, expected {SCHEMA_VERSION!r}")
    listed = {int(s["shard"]): s for s in man.get("shards", [])}
    for shard in sorted(set(listed) - set(stats_by_shard)):
        problems.append(f"{MANIFEST}: lists shard {shard}, which is not complete on disk")
    for shard in sorted(set(stats_by_shard) - set(listed)):
        problems.append(f"{MANIFEST}: does not list completed shard {shard} (rerun write_manifest)")
    for shard in sorted(set(listed) & set(stats_by_shard)):
        st, entry = stats_by_shard[shard], listed[shard]
        for field in ("count", "bytes"):
            if entry.get(field) != st.get(field):
                problems.append(f"{MANIFEST}: shard {shard} {field} {entry.get(field)} but stats say {st.get(field)}")
        if st.get("config_hash") != man.get("config_hash"):
            problems.append(f"shard {shard}: config hash {st.get('config_hash')!r} differs from the manifest's")
    total = sum(int(s.get("count", 0)) for s in listed.values())
    if man.get("total_count") != total:
        problems.append(f"{MANIFEST}: total_count {man.get('total_count')} but its shards sum to {total}")
    return problems
