"""Export stored region features to the layouts LXMERT and UNITER read.

Why: the models that consume region features each fixed a file layout years ago, and their data
loaders are what users will run. Writing those layouts from laitkit shards lets a corpus built here
drop into their training code with no conversion script of the user's own.

- LXMERT (`--format lxmert-tsv`): one TSV, no header, fields `img_id, img_h, img_w, objects_id,
  objects_conf, attrs_id, attrs_conf, num_boxes, boxes, features`; array fields are base64 of the
  raw little-endian bytes: objects_id/attrs_id int64, objects_conf/attrs_conf/boxes/features
  float32 (LXMERT's `load_obj_tsv` decodes them with `np.frombuffer` and reshapes by `num_boxes`).
  `attrs_id` is -1 where no attribute passed `attr_thresh`; extract with `attr_thresh=0` if the
  consumer's attribute loss cannot ignore -1.
- UNITER (`--format uniter-npz`): one `<img_id>.npz` per image with `norm_bb` (N, 7) float16
  `[x1/w, y1/h, x2/w, y2/h, bw/w, bh/h, bw*bh/(w*h)]`, `features` (N, D) float16, `conf` (N,)
  float16 (object confidence) and `soft_labels` (N, K+1) float16 with background at column 0.
  laitkit stores only each box's top class and confidence, so `soft_labels` is that confidence at
  column class+1 and the remaining mass on background: a faithful argmax, not the full
  distribution UNITER's MRC-kl task was trained on.

Only samples with status "keep" and regions are exported; the rest are counted.
"""

from __future__ import annotations

import base64
import csv
import io
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from laitkit.datasets.schema import Regions, Sample
from laitkit.errors import UserError

LXMERT_FIELDS = (
    "img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id", "attrs_conf", "num_boxes", "boxes",
    "features",
)
FORMATS = ("lxmert-tsv", "uniter-npz")
# Object-class counts of known detectors, by detector-name prefix (for UNITER's soft_labels width).
_KNOWN_CLASSES = {"laitkit-tiny-c4": 10, "random-tiny": 10, "random-r101-c4-vg": 1600}


def _b64(arr: np.ndarray, dtype: Any) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


def lxmert_row(img_id: str, r: Regions) -> dict[str, Any]:
    """One TSV row in LXMERT's field order and dtypes."""
    return {
        "img_id": img_id,
        "img_h": int(r.image_h),
        "img_w": int(r.image_w),
        "objects_id": _b64(r.obj_ids, "<i8"),
        "objects_conf": _b64(r.obj_conf, "<f4"),
        "attrs_id": _b64(r.attr_ids, "<i8"),
        "attrs_conf": _b64(r.attr_conf, "<f4"),
        "num_boxes": r.num_boxes,
        "boxes": _b64(r.boxes, "<f4"),
        "features": _b64(r.features, "<f4"),
    }


def norm_bb(r: Regions) -> np.ndarray:
    """UNITER's 7-d normalised box: corners, width, height and area, all relative to the image."""
    w, h = float(r.image_w), float(r.image_h)
    b = r.boxes.astype(np.float32)
    bw, bh = (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h
    return np.stack([b[:, 0] / w, b[:, 1] / h, b[:, 2] / w, b[:, 3] / h, bw, bh, bw * bh], axis=1).astype(np.float16)


def soft_labels(r: Regions, num_classes: int) -> np.ndarray:
    """(N, K+1) float16: object confidence at column class+1, the rest on background (column 0)."""
    n = r.num_boxes
    out = np.zeros((n, num_classes + 1), dtype=np.float32)
    if n:
        if int(r.obj_ids.max()) >= num_classes or int(r.obj_ids.min()) < 0:
            raise UserError(f"uniter-npz: object id {int(r.obj_ids.max())} outside {num_classes} classes")
        conf = np.clip(r.obj_conf, 0.0, 1.0)
        out[np.arange(n), r.obj_ids + 1] = conf
        out[:, 0] = 1.0 - conf
    return out.astype(np.float16)


def uniter_arrays(r: Regions, num_classes: int) -> dict[str, np.ndarray]:
    return {
        "norm_bb": norm_bb(r),
        "features": r.features.astype(np.float16),
        "conf": r.obj_conf.astype(np.float16),
        "soft_labels": soft_labels(r, num_classes),
    }


def _safe_name(key: str) -> str:
    if not key or "/" in key or "\\" in key or key.startswith("."):
        raise UserError(f"uniter-npz: sample key {key!r} is not a safe file name")
    return key


def _exportable(samples: Iterable[Sample], counts: dict[str, int]) -> Iterator[Sample]:
    for s in samples:
        counts["seen"] = counts.get("seen", 0) + 1
        if not s.kept:
            counts["skipped_rejected"] = counts.get("skipped_rejected", 0) + 1
            continue
        if s.regions is None:
            counts["skipped_no_regions"] = counts.get("skipped_no_regions", 0) + 1
            continue
        yield s


def export_lxmert_tsv(samples: Iterable[Sample], out: str | Path) -> dict[str, int]:
    """Write kept samples' regions as LXMERT's TSV at `out` (a file); returns counts."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {"written": 0}
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="", encoding="ascii") as f:
        writer = csv.DictWriter(f, fieldnames=list(LXMERT_FIELDS), delimiter="\t", lineterminator="\n")
        for s in _exportable(samples, counts):
            assert s.regions is not None
            if s.regions.num_boxes == 0:  # LXMERT's reader cannot reshape an empty feature array
                counts["skipped_no_boxes"] = counts.get("skipped_no_boxes", 0) + 1
                continue
            writer.writerow(lxmert_row(s.key, s.regions))
            counts["written"] += 1
    tmp.replace(out)
    return counts


def export_uniter_npz(samples: Iterable[Sample], out_dir: str | Path, num_classes: int | None = None) -> dict[str, int]:
    """Write one UNITER-style `<key>.npz` per kept sample under `out_dir`; returns counts.

    `num_classes` (object classes without background) sets the `soft_labels` width; by default it
    comes from the detector name (1600 for the VG layout, 10 for the tiny synthetic detector).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {"written": 0}
    for s in _exportable(samples, counts):
        r = s.regions
        assert r is not None
        k = num_classes or _classes_of(r.detector)
        buf = io.BytesIO()
        np.savez(buf, **uniter_arrays(r, k))
        path = out_dir / f"{_safe_name(s.key)}.npz"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
        counts["written"] += 1
    return counts


def _classes_of(detector: str) -> int:
    for prefix, k in _KNOWN_CLASSES.items():
        if detector.startswith(prefix):
            return k
    return 1600


def iter_shard_samples(shards: Sequence[str | Path]) -> Iterator[Sample]:
    """Samples of laitkit WebDataset shards (files or directories of `*.tar`), in the given order."""
    from laitkit.datasets.shards import iter_tar

    for path in shards:
        if not Path(path).exists():
            raise UserError(f"export: no such shard or directory: {path}")
        yield from iter_tar(path)


def export(fmt: str, samples: Iterable[Sample], out: str | Path, num_classes: int | None = None) -> dict[str, int]:
    if fmt == "lxmert-tsv":
        return export_lxmert_tsv(samples, out)
    if fmt == "uniter-npz":
        return export_uniter_npz(samples, out, num_classes)
    raise UserError(f"export: format must be one of {FORMATS}, got {fmt!r}")


def read_lxmert_tsv(path: str | Path) -> list[dict[str, Any]]:
    """Read back a TSV exactly as LXMERT's `load_obj_tsv` does (kept here for `laitkit` users' checks)."""
    csv.field_size_limit(sys.maxsize)
    rows = []
    with open(path, encoding="ascii") as f:
        for item in csv.DictReader(f, list(LXMERT_FIELDS), delimiter="\t"):
            for key in ("img_h", "img_w", "num_boxes"):
                item[key] = int(item[key])
            n = item["num_boxes"]
            for key, shape, dtype in (
                ("objects_id", (n,), np.int64), ("objects_conf", (n,), np.float32), ("attrs_id", (n,), np.int64),
                ("attrs_conf", (n,), np.float32), ("boxes", (n, 4), np.float32), ("features", (n, -1), np.float32),
            ):
                item[key] = np.frombuffer(base64.b64decode(item[key]), dtype=dtype).reshape(shape)
            rows.append(item)
    return rows
