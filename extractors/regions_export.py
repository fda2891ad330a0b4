"""Export stored region features to the layouts LXMERT, UNITER and Oscar/VinVL read as they are.

Why: the models that consume region features each fixed a file layout years ago, and their data
loaders are what users will run. Writing those layouts from laitkit shards lets a corpus built here
drop into their training code with no conversion script of the user's own. Each writer follows the
consumer's own reader (read in their repositories, never copied):

- LXMERT (`lxmert-tsv`, `export_lxmert`): one TSV, no header, fields `img_id, img_h, img_w,
  objects_id, objects_conf, attrs_id, attrs_conf, num_boxes, boxes, features`; arrays are base64
  of raw little-endian bytes (int64 ids, float32 the rest), as `load_obj_tsv` decodes them. Beside
  it, `<name>.json` in the layout of `data/lxmert/*.json` (`img_id`, `sentf: {source: [caption]}`,
  `labelf: {}`). LXMERT's pretraining indexes `features[random.randint(0, 35)]` and stacks a batch,
  so a corpus whose images do not all have exactly `boxes` (36) boxes is refused with one line,
  unless `any_boxes=True` (e.g. for a fine-tuning loader that pads).
- UNITER (`uniter-npz`, `uniter-lmdb`): per image `norm_bb` (N, 6) `[x1/w, y1/h, x2/w, y2/h, bw/w,
  bh/h]` (UNITER's loader appends the area itself), `features`, `conf` = the score with which the box
  survived BUTD's NMS, `soft_labels` (N, K+1) = the class distribution with background at column 0,
  all float16, boxes sorted by `conf` (UNITER keeps the first `nbb` rows). The LMDB is UNITER's image
  db: `feat_th{conf_th}_max{max_bb}_min{min_bb}[_compressed]/` with one msgpack-numpy (or compressed
  npz) value per `<key>.npz`, `__keys__`, and `nbb_th..json` beside it, as `convert_imgdir.py` writes.
- Oscar/VinVL (`oscar-tsv`): `features.tsv` (`image_id`, JSON `{num_boxes, features}` with float32
  (N, D+6) rows: feature ⊕ `[x1/w, y1/h, x2/w, y2/h, bw/w, bh/h]`), `label.tsv` (`image_id`, JSON list
  of `{class, rect, conf}`), a `.lineidx` of byte offsets for each, `captions.json` (`image_id`,
  `id`, `caption`), `train.yaml` naming them, `imageid2idx.json` and `key_to_image_id.json`. Image
  ids are integers 0.. in export order, written as decimal strings where Oscar compares strings.

Shards store each box's class distribution in top-k sparse form (`Regions.soft_ids/soft_probs`,
background always kept); `densify` spreads the mass outside the top k evenly over the other classes,
so a row still sums to 1 (exact when k covers every class). Shards written before the sparse form
existed fall back to the top class and background. Only samples with status "keep" and regions are
exported; the rest are counted.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from laitkit.atomic import atomic_path, atomic_write_bytes, atomic_write_text, fsync_dir, tmp_path
from laitkit.datasets.schema import Regions, Sample
from laitkit.errors import UserError

LXMERT_FIELDS = (
    "img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id", "attrs_conf", "num_boxes", "boxes",
    "features",
)
FORMATS = ("lxmert-tsv", "uniter-npz", "uniter-lmdb", "oscar-tsv")
LXMERT_BOXES = 36
# Object-class counts of known detectors, by detector-name prefix (for UNITER's soft_labels width).
_KNOWN_CLASSES = {"laitkit-tiny-c4": 10, "random-tiny": 10, "random-r101-c4-vg": 1600}


# --- shared -------------------------------------------------------------------------------------


def _b64(arr: np.ndarray, dtype: Any) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


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


def _safe_name(key: str, fmt: str) -> str:
    if not key or "/" in key or "\\" in key or key.startswith("."):
        raise UserError(f"{fmt}: sample key {key!r} is not a safe file name")
    return key


def _classes_of(detector: str) -> int:
    for prefix, k in _KNOWN_CLASSES.items():
        if detector.startswith(prefix):
            return k
    return 1600


def box_conf(r: Regions) -> np.ndarray:
    """The BUTD surviving score of each box; the top class probability for shards that predate it."""
    return r.box_conf if r.box_conf is not None else r.obj_conf


def norm_pos(r: Regions) -> np.ndarray:
    """(N, 6) float32 `[x1/w, y1/h, x2/w, y2/h, bw/w, bh/h]`: UNITER's `norm_bb`, VinVL's position tail."""
    w, h = float(r.image_w), float(r.image_h)
    b = r.boxes.astype(np.float32)
    return np.stack([b[:, 0] / w, b[:, 1] / h, b[:, 2] / w, b[:, 3] / h, (b[:, 2] - b[:, 0]) / w,
                     (b[:, 3] - b[:, 1]) / h], axis=1).astype(np.float32)


def densify(r: Regions, num_classes: int) -> np.ndarray:
    """(N, K+1) float32 class distribution, background at column 0, rows summing to 1.

    From the stored top-k (mass outside it spread evenly over the classes it does not name); for
    shards without it, the top class's confidence at class+1 and the rest on background.
    """
    n = r.num_boxes
    out = np.zeros((n, num_classes + 1), dtype=np.float32)
    if not n:
        return out
    if int(r.obj_ids.max()) >= num_classes or int(r.obj_ids.min()) < 0:
        raise UserError(f"export: object id {int(r.obj_ids.max())} outside {num_classes} classes (--num-classes)")
    if r.soft_ids is None or r.soft_probs is None:
        conf = np.clip(r.obj_conf, 0.0, 1.0)
        out[np.arange(n), r.obj_ids + 1] = conf
        out[:, 0] = 1.0 - conf
        return out
    ids = r.soft_ids.astype(np.int64)
    if int(ids.max()) > num_classes:
        raise UserError(f"export: class column {int(ids.max())} outside {num_classes} classes (--num-classes)")
    probs = np.clip(r.soft_probs.astype(np.float32), 0.0, 1.0)
    rows = np.arange(n)[:, None]
    out[rows, ids] = probs
    rest = num_classes + 1 - ids.shape[1]
    if rest > 0:
        residual = np.clip(1.0 - probs.sum(axis=1), 0.0, None) / rest
        covered = np.zeros_like(out, dtype=bool)
        covered[rows, ids] = True
        out = np.where(covered, out, residual[:, None])
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)


def iter_shard_samples(shards: Sequence[str | Path]) -> Iterator[Sample]:
    """Samples of laitkit WebDataset shards (tar files, or shard directories of either layout), in order."""
    from laitkit.datasets.shards import iter_tar

    for path in shards:
        if not Path(path).exists():
            raise UserError(f"export: no such shard or directory: {path}")
        yield from iter_tar(path)


# --- LXMERT -------------------------------------------------------------------------------------


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


def export_lxmert(samples: Iterable[Sample], out: str | Path, *, boxes: int = LXMERT_BOXES, any_boxes: bool = False,
                  source: str = "laitkit") -> dict[str, int]:
    """Write LXMERT's feature TSV at `out` and its caption JSON at `out` with suffix `.json`.

    Raises `UserError` (nothing written) when an image has other than `boxes` boxes and
    `any_boxes` is False.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {"written": 0}
    wrong: dict[int, int] = {}
    captions: list[dict[str, Any]] = []
    with atomic_path(out) as tmp:  # a refused corpus leaves nothing behind (the temp file is removed)
        with tmp.open("w", newline="", encoding="ascii") as f:
            writer = csv.DictWriter(f, fieldnames=list(LXMERT_FIELDS), delimiter="\t", lineterminator="\n")
            for s in _exportable(samples, counts):
                assert s.regions is not None
                n = s.regions.num_boxes
                if n == 0:  # LXMERT's reader cannot reshape an empty feature array
                    counts["skipped_no_boxes"] = counts.get("skipped_no_boxes", 0) + 1
                    continue
                if n != boxes and not any_boxes:
                    wrong[n] = wrong.get(n, 0) + 1
                    continue
                writer.writerow(lxmert_row(s.key, s.regions))
                captions.append({"img_id": s.key, "sentf": {source: [s.caption]}, "labelf": {}})
                counts["written"] += 1
        if wrong:
            bad = sum(wrong.values())
            lo, hi = min(wrong), max(wrong)
            seen = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise UserError(
                f"lxmert-tsv: LXMERT's pretraining needs exactly {boxes} boxes per image, but {bad} of "
                f"{bad + counts['written']} images have {seen} boxes; extract with regions.fixed_boxes: {boxes}, "
                "or pass --any-boxes if your loader pads"
            )
    atomic_write_text(out.with_suffix(".json"), json.dumps(captions, ensure_ascii=False) + "\n")
    return counts


def export_lxmert_tsv(samples: Iterable[Sample], out: str | Path) -> dict[str, int]:
    """The TSV and caption JSON with any box count (the layout alone; LXMERT fine-tuning pads)."""
    return export_lxmert(samples, out, any_boxes=True)


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


# --- UNITER -------------------------------------------------------------------------------------


def uniter_arrays(r: Regions, num_classes: int) -> dict[str, np.ndarray]:
    """UNITER's per-image arrays, float16, boxes sorted by surviving score (most confident first)."""
    conf = box_conf(r)
    order = np.argsort(-conf.astype(np.float64), kind="stable")
    return {
        "norm_bb": norm_pos(r)[order].astype(np.float16),
        "features": r.features[order].astype(np.float16),
        "conf": conf[order].astype(np.float16),
        "soft_labels": densify(r, num_classes)[order].astype(np.float16),
    }


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
        buf = io.BytesIO()
        np.savez(buf, **uniter_arrays(r, num_classes or _classes_of(r.detector)))
        path = out_dir / f"{_safe_name(s.key, 'uniter-npz')}.npz"
        atomic_write_bytes(path, buf.getvalue())
        counts["written"] += 1
    return counts


def uniter_db_name(conf_th: float, max_bb: int, min_bb: int, num_bb: int, compress: bool) -> str:
    """The LMDB folder name UNITER's `DetectFeatLmdb` opens for these settings."""
    name = f"feat_numbb{num_bb}" if conf_th == -1 else f"feat_th{conf_th}_max{max_bb}_min{min_bb}"
    return name + ("_compressed" if compress else "")


def export_uniter_lmdb(
    samples: Iterable[Sample], out_dir: str | Path, num_classes: int | None = None, *, conf_th: float = 0.2,
    max_bb: int = 100, min_bb: int = 10, num_bb: int = 36, compress: bool = False,
) -> dict[str, int]:
    """Write UNITER's image db for `out_dir` (the `--img_db` path): the LMDB plus its `nbb_*.json`.

    Each image's arrays are cut to `nbb = min(max_bb, max(min_bb, #(conf > conf_th)))` rows, as
    UNITER's `convert_imgdir.py` does (`conf_th = -1`: a fixed `num_bb`).
    """
    import lmdb
    import msgpack
    import msgpack_numpy

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / uniter_db_name(conf_th, max_bb, min_bb, num_bb, compress)
    counts: dict[str, int] = {"written": 0}
    name2nbb: dict[str, int] = {}
    env = lmdb.open(str(db_path), map_size=1 << 40, subdir=True)
    try:
        txn = env.begin(write=True)
        for s in _exportable(samples, counts):
            r = s.regions
            assert r is not None
            arrays = uniter_arrays(r, num_classes or _classes_of(r.detector))
            conf = arrays["conf"]
            nbb = num_bb if conf_th == -1 else int(min(max_bb, max(min_bb, int((conf > conf_th).sum()))))
            dump = {k: np.ascontiguousarray(v[:nbb]) for k, v in arrays.items()}
            fname = f"{_safe_name(s.key, 'uniter-lmdb')}.npz"
            if compress:
                buf = io.BytesIO()
                np.savez_compressed(buf, **dump)
                value = buf.getvalue()
            else:
                value = msgpack.dumps(dump, default=msgpack_numpy.encode, use_bin_type=True)
            txn.put(fname.encode("utf-8"), value)
            name2nbb[fname] = nbb
            counts["written"] += 1
            if counts["written"] % 1000 == 0:
                txn.commit()
                txn = env.begin(write=True)
        txn.put(b"__keys__", json.dumps(list(name2nbb)).encode("utf-8"))
        txn.commit()
    finally:
        env.close()
    if conf_th != -1:
        (out_dir / f"nbb_th{conf_th}_max{max_bb}_min{min_bb}.json").write_text(json.dumps(name2nbb), encoding="utf-8")
    return counts


# --- Oscar / VinVL ------------------------------------------------------------------------------


class _TsvWriter:
    """A TSV plus its `.lineidx` (byte offset of each row), the pair Oscar's `TSVFile` seeks in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = tmp_path(path)
        self.f = self.tmp.open("wb")
        self.offsets: list[int] = []

    def write(self, *fields: str) -> None:
        self.offsets.append(self.f.tell())
        self.f.write(("\t".join(fields) + "\n").encode("utf-8"))

    def close(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)
        atomic_write_text(self.path.with_suffix(".lineidx"), "".join(f"{o}\n" for o in self.offsets))


def export_oscar_tsv(samples: Iterable[Sample], out_dir: str | Path, *, add_pos: bool = True) -> dict[str, int]:
    """Write the VinVL feature, label and caption files (see the module docstring) under `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {"written": 0}
    feats, labels = _TsvWriter(out_dir / "features.tsv"), _TsvWriter(out_dir / "label.tsv")
    captions: list[dict[str, Any]] = []
    key2id: dict[str, int] = {}
    for s in _exportable(samples, counts):
        r = s.regions
        assert r is not None
        img_id = len(key2id)
        key2id[s.key] = img_id
        f32 = r.features.astype(np.float32)
        if add_pos:
            f32 = np.concatenate([f32, norm_pos(r)], axis=1)
        feats.write(str(img_id), json.dumps({"num_boxes": r.num_boxes, "features": _b64(f32, "<f4")}))
        names = r.obj_names or [str(int(c)) for c in r.obj_ids]
        objects = [{"class": names[i], "rect": [float(v) for v in r.boxes[i]], "conf": float(box_conf(r)[i])}
                   for i in range(r.num_boxes)]
        labels.write(str(img_id), json.dumps(objects))
        captions.append({"image_id": str(img_id), "id": img_id, "caption": s.caption})
        counts["written"] += 1
    feats.close()
    labels.close()
    (out_dir / "captions.json").write_text(json.dumps(captions, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "imageid2idx.json").write_text(json.dumps({str(i): i for i in key2id.values()}), encoding="utf-8")
    (out_dir / "key_to_image_id.json").write_text(json.dumps(key2id), encoding="utf-8")
    (out_dir / "train.yaml").write_text("feature: features.tsv\nlabel: label.tsv\ncaption: captions.json\n",
                                        encoding="utf-8")
    return counts


# --- dispatch -----------------------------------------------------------------------------------


def export(fmt: str, samples: Iterable[Sample], out: str | Path, num_classes: int | None = None,
           **options: Any) -> dict[str, int]:
    """Write `samples` in format `fmt` at `out`; `options` are the format's keyword arguments."""
    if fmt == "lxmert-tsv":
        return export_lxmert(samples, out, **options)
    if fmt == "uniter-npz":
        return export_uniter_npz(samples, out, num_classes)
    if fmt == "uniter-lmdb":
        return export_uniter_lmdb(samples, out, num_classes, **options)
    if fmt == "oscar-tsv":
        return export_oscar_tsv(samples, out, **options)
    raise UserError(f"export: format must be one of {FORMATS}, got {fmt!r}")
