"""Convert `Sample`s to an Arrow table following `schema.arrow_schema(D)` exactly, and back.

Why a hand-built conversion rather than `pa.Table.from_pylist`: region features are (N, D) float16
per row; passing them through Python floats is slow and invites silent dtype changes. Here region
arrays go numpy -> Arrow buffers directly (bit-exact, float16 kept), and only the small scalar and
struct columns go through Python objects. Samples without regions get nulls in every `regions_*`
column, so "not run yet" and "ran, found zero boxes" stay distinguishable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from laitkit.datasets.schema import SCHEMA_VERSION, Regions, Sample, arrow_schema

# Per-box region columns: (column, Regions attribute, numpy dtype, fixed inner width or 0 for scalars).
_REGION_ARRAYS: tuple[tuple[str, str, type, int], ...] = (
    ("regions_obj_ids", "obj_ids", np.int64, 0),
    ("regions_obj_conf", "obj_conf", np.float32, 0),
    ("regions_attr_ids", "attr_ids", np.int64, 0),
    ("regions_attr_conf", "attr_conf", np.float32, 0),
)


def infer_feature_dim(samples: Sequence[Sample]) -> int:
    """D of the first sample with regions, else 1 (the schema needs some width)."""
    for s in samples:
        if s.regions is not None:
            return max(s.regions.feature_dim, 1)
    return 1


def samples_to_table(samples: Sequence[Sample], feature_dim: int | None = None) -> pa.Table:
    """An Arrow table with schema `arrow_schema(feature_dim)`, one row per sample, same order.

    Args:
        samples: the records; they are not modified.
        feature_dim: D of `regions_features`; inferred from the first sample with regions when None.

    Raises:
        ValueError: a sample's regions have a feature width other than D.
    """
    samples = list(samples)
    d = infer_feature_dim(samples) if feature_dim is None else max(int(feature_dim), 1)
    schema = arrow_schema(d)
    for s in samples:
        if s.regions is not None and s.regions.feature_dim != d and s.regions.num_boxes > 0:
            raise ValueError(
                f"sample {s.key}: region features are {s.regions.feature_dim}-d but the table is {d}-d; "
                "all samples of one table must come from the same detector"
            )
    cols: dict[str, pa.Array] = {}
    metas = [s.meta() for s in samples]
    for name in ("key", "url", "page_url", "caption", "caption_source", "lang", "sha256", "phash", "status"):
        cols[name] = pa.array([m[name] for m in metas], schema.field(name).type)
    for name in ("width", "height", "orig_width", "orig_height"):
        cols[name] = pa.array([m[name] for m in metas], schema.field(name).type)
    # Scores keep NaN as NaN (not null): `Sample` uses NaN for "not scored".
    cols["lang_score"] = pa.array([s.lang_score for s in samples], pa.float64())
    for name in ("relevance_score", "nsfw_score", "unnatural_score"):
        cols[name] = pa.array([getattr(s, name) for s in samples], pa.float64())
    cols["image"] = pa.array([s.image for s in samples], pa.binary())
    cols["candidates"] = pa.array([m["candidates"] for m in metas], schema.field("candidates").type)
    cols["verdicts"] = pa.array([m["verdicts"] for m in metas], schema.field("verdicts").type)
    cols["text"] = pa.array([m["text"] for m in metas], schema.field("text").type)
    cols["schema_version"] = pa.array([s.schema_version for s in samples], pa.string())
    cols.update(_region_columns([s.regions for s in samples], d))
    return pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema)


def _region_columns(regions: list[Regions | None], d: int) -> dict[str, pa.Array]:
    present = [r for r in regions if r is not None]
    mask = np.array([r is None for r in regions], dtype=bool)
    counts = np.array([r.num_boxes if r is not None else 0 for r in regions], dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    null_mask = pa.array(mask)

    def listed(values: pa.Array) -> pa.Array:
        return pa.ListArray.from_arrays(offsets, values, mask=null_mask)

    def stack(attr: str, dtype: type) -> np.ndarray:
        parts = [np.asarray(getattr(r, attr), dtype=dtype).reshape(-1) for r in present]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    cols: dict[str, pa.Array] = {
        "regions_detector": pa.array([r.detector if r else None for r in regions], pa.string()),
        "regions_image_h": pa.array([r.image_h if r else None for r in regions], pa.int32()),
        "regions_image_w": pa.array([r.image_w if r else None for r in regions], pa.int32()),
        "regions_num_boxes": pa.array([r.num_boxes if r else None for r in regions], pa.int32()),
        "regions_boxes": listed(pa.FixedSizeListArray.from_arrays(pa.array(stack("boxes", np.float32)), 4)),
        "regions_features": listed(
            pa.FixedSizeListArray.from_arrays(pa.array(stack("features", np.float16), pa.float16()), d)
        ),
    }
    for col, attr, dtype, _ in _REGION_ARRAYS:
        cols[col] = listed(pa.array(stack(attr, dtype)))
    for col, attr in (("regions_obj_names", "obj_names"), ("regions_attr_names", "attr_names")):
        cols[col] = pa.array([list(getattr(r, attr)) if r else None for r in regions], pa.list_(pa.string()))
    cols.update(_optional_columns(regions))
    return cols


def _optional_columns(regions: list[Regions | None]) -> dict[str, pa.Array]:
    """`regions_box_conf` and the top-k class distribution; null for a row whose regions lack them."""
    cols: dict[str, pa.Array] = {}
    for col, attr, dtype, arrow_type in (
        ("regions_box_conf", "box_conf", np.float32, pa.float32()),
        ("regions_soft_ids", "soft_ids", np.int32, pa.int32()),
        ("regions_soft_probs", "soft_probs", np.float16, pa.float16()),
    ):
        vals = [getattr(r, attr) if r is not None else None for r in regions]
        mask = pa.array([v is None for v in vals], type=pa.bool_())
        parts = [np.asarray(v, dtype=dtype) for v in vals if v is not None]
        if attr == "box_conf":
            counts = np.array([len(v) if v is not None else 0 for v in vals], dtype=np.int32)
            flat = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
            offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
            cols[col] = pa.ListArray.from_arrays(offsets, pa.array(flat, arrow_type), mask=mask)
            continue
        # (N, k+1) per row: a list of boxes, each a list of k+1 values.
        box_counts = np.array([v.shape[0] if v is not None else 0 for v in vals], dtype=np.int32)
        widths = np.concatenate([np.full(v.shape[0], v.shape[1], dtype=np.int32) for v in parts]) if parts else \
            np.zeros(0, dtype=np.int32)
        flat = np.concatenate([v.reshape(-1) for v in parts]) if parts else np.zeros(0, dtype=dtype)
        inner = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(widths)]).astype(np.int32)),
                                         pa.array(flat, arrow_type))
        outer_offsets = pa.array(np.concatenate([[0], np.cumsum(box_counts)]).astype(np.int32))
        cols[col] = pa.ListArray.from_arrays(outer_offsets, inner, mask=mask)
    return cols


def table_to_samples(table: pa.Table | pa.RecordBatch) -> list[Sample]:
    """Inverse of `samples_to_table`: one `Sample` per row, region arrays as numpy (float16 kept)."""
    if isinstance(table, pa.Table):
        out: list[Sample] = []
        for batch in table.to_batches():
            out.extend(table_to_samples(batch))
        return out
    batch = table
    d = batch.schema.field("regions_features").type.value_type.list_size
    n = batch.num_rows
    py = {name: batch.column(name).to_pylist() for name in _PY_COLUMNS if name in batch.schema.names}
    arrays = _region_arrays(batch, d)
    samples = []
    for i in range(n):
        meta: dict[str, Any] = {name: py[name][i] for name in py}
        regions = None
        if meta["regions_detector"] is not None:
            regions = Regions(
                detector=meta["regions_detector"],
                image_h=int(meta["regions_image_h"]),
                image_w=int(meta["regions_image_w"]),
                obj_names=list(meta["regions_obj_names"] or []),
                attr_names=list(meta["regions_attr_names"] or []),
                **{attr: rows[i] for attr, rows in arrays.items()},
                **{attr: rows[i] for attr, rows in _optional_arrays(batch).items()},
            )
        sample = Sample.from_parts(
            {
                **{k: v for k, v in meta.items() if not k.startswith("regions_") and k != "image"},
                "lang_score": meta["lang_score"] if meta["lang_score"] is not None else 0.0,
                "schema_version": meta.get("schema_version") or SCHEMA_VERSION,
                "regions": None,  # built above from numpy, not from the JSON-shaped parts
            },
            image=meta["image"] or b"",
        )
        sample.regions = regions
        samples.append(sample)
    return samples


_PY_COLUMNS = (
    "key",
    "url",
    "page_url",
    "caption",
    "caption_source",
    "candidates",
    "lang",
    "lang_score",
    "image",
    "width",
    "height",
    "orig_width",
    "orig_height",
    "sha256",
    "phash",
    "verdicts",
    "relevance_score",
    "nsfw_score",
    "unnatural_score",
    "regions_detector",
    "regions_image_h",
    "regions_image_w",
    "regions_obj_names",
    "regions_attr_names",
    "text",
    "schema_version",
)


def _region_arrays(batch: pa.RecordBatch, d: int) -> dict[str, list[np.ndarray]]:
    """Region numeric columns as per-row numpy arrays, keyed by `Regions` attribute name."""
    specs = (("regions_boxes", "boxes", np.float32, 4), ("regions_features", "features", np.float16, d))
    out: dict[str, list[np.ndarray]] = {}
    for col, attr, dtype, width in specs + _REGION_ARRAYS:
        out[attr] = _list_rows(batch.column(col), dtype, width)
    return out


def _list_rows(arr: pa.Array, dtype: type, width: int) -> list[np.ndarray]:
    """Per-row numpy arrays of a list column, robust to sliced arrays (offsets need not start at 0)."""
    offsets = arr.offsets.to_numpy()
    start, end = int(offsets[0]), int(offsets[-1])
    child = arr.values.slice(start, end - start)  # `values` ignores the parent's slice; re-slice it
    if width:
        flat = child.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(-1, width)
    else:
        flat = child.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    rel = offsets - start
    return [flat[rel[i] : rel[i + 1]].copy() for i in range(len(arr))]


def _optional_arrays(batch: pa.RecordBatch) -> dict[str, list[np.ndarray | None]]:
    """The optional region columns as per-row numpy (None where null or where the shard predates them).

    Through Arrow's buffers, not Python lists: a shard holds ~100 boxes x 33 classes per row.
    """
    import pyarrow.compute as pc

    out: dict[str, list[np.ndarray | None]] = {}
    for col, attr, dtype in (("regions_box_conf", "box_conf", np.float32), ("regions_soft_ids", "soft_ids", np.int32),
                             ("regions_soft_probs", "soft_probs", np.float16)):
        if col not in batch.schema.names:
            continue
        arr = batch.column(col)
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        counts = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        per_box = arr.flatten()  # the non-null rows' boxes, in order (slicing respected)
        if attr == "box_conf":
            widths = np.ones(len(per_box), dtype=np.int64)
            values = per_box.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
        else:
            widths = pc.list_value_length(per_box).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            values = per_box.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)
        box_start = np.concatenate([[0], np.cumsum(counts)])
        value_start = np.concatenate([[0], np.cumsum(widths)])
        rows: list[np.ndarray | None] = []
        for i in range(len(arr)):
            if not valid[i]:
                rows.append(None)
                continue
            b0, b1 = int(box_start[i]), int(box_start[i + 1])
            v = values[int(value_start[b0]) : int(value_start[b1])].copy()
            if attr == "box_conf":
                rows.append(v)
            else:
                w = int(widths[b0]) if b1 > b0 else 1
                rows.append(v.reshape(b1 - b0, w))
        out[attr] = rows
    return out
