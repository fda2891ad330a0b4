"""Distributed dedup over Ray: the single-pass `Deduper`'s verdicts, with no sample on the driver.

Why this shape: `pipeline/crawl/dedup.py` decides greedily, in (page_url, url, key) order, and
remembers only the samples it keeps. The winner rule is therefore: **a kept sample survives
unless it has the same URL or sha256 as, or a pHash within `phash_max_distance` of, an earlier
(in (page_url, url, key) order) sample that survived; a survivor whose caption is carried by
more than `max_images_per_caption` distinct images is rejected as DUP_CAPTION (and does not count
as a survivor).** Such a chain only ever runs along "conflict" edges (same URL, same sha256,
near pHash), so a sample with no edge needs no global order at all, and the samples that have
edges can be decided by the same `Deduper` on their own: non-neighbours never change a verdict.

    map    (one task per crawl shard)  light columns → P hash partitions of records:
           caption (every sample) | url, sha256, pHash band (kept samples)
    reduce (one task per partition)    caption → distinct images (capped) → boilerplate captions;
                                       url / sha256 groups of ≥ 2, pHash buckets whose pairs are
                                       within the threshold (verified) → samples with an edge
    decide (one task)                  `Deduper` over the samples with an edge (usually a few %)
    apply  (one task per crawl shard)  verdicts for every kept sample → `work/dedup/{i}.parquet`

pHash near-duplicates use LSH banding with threshold + 1 bands (the same blocks as
`PhashIndex`): two 64-bit hashes within Hamming distance d agree exactly on at least one of
d + 1 bands (pigeonhole), so every such pair meets in some bucket; buckets are then verified.
The driver only holds object refs and gets back per-reason counts.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from laitkit.atomic import atomic_write_json, atomic_write_parquet
from laitkit.datasets.schema import Reason, Sample
from laitkit.pipeline.crawl.dedup import STAGE, Deduper, PhashIndex, caption_key
from laitkit.pipeline.faults import pause_point

LIGHT_COLUMNS = ("key", "status", "shard_id", "url", "page_url", "sha256", "phash", "caption")
_REC = ("kind", "group", "value", "key", "shard_id", "url", "page_url", "sha256", "phash", "caption")
DONE_NAME = "_done.json"


def _part(group: str, partitions: int) -> int:
    """Stable across processes (Python's `hash` of a str is salted per process)."""
    return int.from_bytes(hashlib.blake2b(group.encode("utf-8"), digest_size=8).digest(), "big") % partitions


def bands(phash_hex: str, max_distance: int) -> list[str]:
    """The d + 1 band labels of a 64-bit pHash ("band index:value"), as `PhashIndex` cuts them."""
    h = int(phash_hex, 16)
    index = PhashIndex(max_distance)
    return [f"{b}:{(h >> shift) & mask:x}" for b, (shift, mask) in enumerate(index._blocks)]


def read_light(path: str) -> list[dict[str, Any]]:
    return pq.read_table(path, columns=list(LIGHT_COLUMNS)).to_pylist()


def map_shard(path: str, partitions: int, max_distance: int) -> list[pa.Table] | pa.Table:
    """One crawl shard's records, split into `partitions` tables by the hash of their group
    (one table, not a list of one, when `partitions` is 1: Ray's `num_returns=1`)."""
    out: list[dict[str, list[Any]]] = [{c: [] for c in _REC} for _ in range(partitions)]

    def emit(kind: str, group: str, value: str, row: dict[str, Any]) -> None:
        cols = out[_part(f"{kind}|{group}", partitions)]
        cols["kind"].append(kind)
        cols["group"].append(group)
        cols["value"].append(value)
        for c in _REC[3:]:
            cols[c].append(row[c])

    for row in read_light(path):
        if row["caption"]:
            emit("cap", caption_key(row["caption"]), row["sha256"] or row["url"], row)
        if row["status"] != str(Reason.KEEP):
            continue
        emit("url", row["url"], "", row)
        if row["sha256"]:
            emit("sha", row["sha256"], "", row)
        if row["phash"]:
            for band in bands(row["phash"], max_distance):
                emit("band", band, "", row)
    tables = [pa.table({c: pa.array(cols[c], type=pa.int64() if c == "shard_id" else pa.string()) for c in _REC})
              for cols in out]  # fmt: skip
    return tables if partitions > 1 else tables[0]


def reduce_partition(max_distance: int, max_images_per_caption: int, *tables: pa.Table) -> dict[str, Any]:
    """Boilerplate captions and the samples that have a conflict edge, in one partition."""
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    cap_images: dict[str, set[str]] = defaultdict(set)
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        if r["kind"] == "cap":
            images = cap_images[r["group"]]
            if len(images) <= max_images_per_caption:
                images.add(r["value"])
        else:
            groups[(r["kind"], r["group"])][r["key"]] = r
    involved: dict[str, dict[str, Any]] = {}
    for (kind, _), members in groups.items():
        if len(members) < 2:
            continue
        if kind != "band":
            involved.update(members)
            continue
        items = list(members.values())
        for i, a in enumerate(items):
            ha = int(a["phash"], 16)
            for b in items[i + 1 :]:
                if (ha ^ int(b["phash"], 16)).bit_count() <= max_distance:
                    involved[a["key"]] = a
                    involved[b["key"]] = b
    counts = {ck: len(images) for ck, images in cap_images.items()}
    boiler = sorted(ck for ck, n in counts.items() if n > max_images_per_caption)
    light = [{c: r[c] for c in _REC[3:]} for r in involved.values()]
    return {"boilerplate": boiler, "involved": light}


def decide(phash_max_distance: int, max_images_per_caption: int, *reduced: dict[str, Any]) -> dict[str, Any]:
    """Run the single-pass `Deduper` over the samples that have an edge (see module doc)."""
    boiler: set[str] = set()
    rows: dict[str, dict[str, Any]] = {}
    for part in reduced:
        boiler.update(part["boilerplate"])
        for r in part["involved"]:
            rows[r["key"]] = r
    samples = []
    for r in rows.values():
        s = Sample(key=r["key"], url=r["url"], page_url=r["page_url"], caption=r["caption"])
        s.sha256, s.phash = r["sha256"], r["phash"]
        samples.append((int(r["shard_id"]), s))
    deduper = Deduper(phash_max_distance=phash_max_distance, max_images_per_caption=max_images_per_caption)
    deduper.set_caption_counts({ck: max_images_per_caption + 1 for ck in boiler})  # only "> K" matters
    deduper.apply([s for _, s in samples])
    verdicts = {s.key: (sid, str(s.verdicts[-1].reason), s.verdicts[-1].detail) for sid, s in samples}
    return {"boilerplate": sorted(boiler), "verdicts": verdicts}


def apply_shard(path: str, out_path: str, max_images_per_caption: int, decided: dict[str, Any]) -> dict[str, int]:
    """Write the dedup verdict of every kept sample of one crawl shard; return counts by reason."""
    boiler = set(decided["boilerplate"])
    verdicts = decided["verdicts"]
    keys, reasons, details = [], [], []
    for row in read_light(path):
        if row["status"] != str(Reason.KEEP):
            continue
        if row["key"] in verdicts:
            _, reason, detail = verdicts[row["key"]]
        elif row["caption"] and caption_key(row["caption"]) in boiler:
            reason, detail = str(Reason.DUP_CAPTION), f"caption shared by > {max_images_per_caption} images"
        else:
            reason, detail = str(Reason.KEEP), ""
        keys.append(row["key"])
        reasons.append(reason)
        details.append(detail)
    table = pa.table({"key": pa.array(keys, pa.string()), "stage": pa.array([STAGE] * len(keys), pa.string()),
                      "reason": pa.array(reasons, pa.string()), "detail": pa.array(details, pa.string())})
    atomic_write_parquet(out_path, table)
    counts: dict[str, int] = defaultdict(int)
    for r in reasons:
        counts[r] += 1
    return dict(counts)


def verdict_path(dedup_dir: Path, shard: int) -> Path:
    return dedup_dir / f"{shard:05d}.parquet"


def run_dedup(crawl_files: list[Path], dedup_dir: Path, crawl_cfg: Any, partitions: int = 0) -> dict[str, int]:
    """Distributed dedup of every crawl shard; per-shard verdict files, then the `_done.json` marker.

    Returns counts by reason. Idempotent: rerun after a crash recomputes everything (the verdicts
    are a function of the crawl shards) and only the marker says the set is complete.
    """
    import ray

    dedup_dir.mkdir(parents=True, exist_ok=True)
    (dedup_dir / DONE_NAME).unlink(missing_ok=True)
    d, k = int(crawl_cfg.phash_max_distance), int(crawl_cfg.max_images_per_caption)
    p = partitions or max(1, min(16, len(crawl_files)))
    mapper = ray.remote(num_cpus=0.5, num_returns=p)(map_shard)
    mapped = [mapper.remote(str(f), p, d) for f in crawl_files]
    if p == 1:
        mapped = [[m] for m in mapped]
    reducer = ray.remote(num_cpus=0.5)(reduce_partition)
    reduced = [reducer.remote(d, k, *[m[i] for m in mapped]) for i in range(p)]
    decided = ray.remote(num_cpus=0.5)(decide).remote(d, k, *reduced)
    applier = ray.remote(num_cpus=0.5)(apply_shard)
    parts = ray.get([applier.remote(str(f), str(verdict_path(dedup_dir, i)), k, decided)
                     for i, f in enumerate(crawl_files)])  # fmt: skip
    counts: dict[str, int] = defaultdict(int)
    for part in parts:
        for reason, n in part.items():
            counts[reason] += n
    pause_point("dedup")  # crash tests: every verdict file written, the marker not yet
    atomic_write_json(dedup_dir / DONE_NAME, {"shards": len(crawl_files), "counts": dict(counts)})
    return dict(counts)


def dedup_done(dedup_dir: Path, shards: int) -> bool:
    import json

    marker = dedup_dir / DONE_NAME
    return marker.exists() and json.loads(marker.read_text()).get("shards") == shards
