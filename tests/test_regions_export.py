"""Every export read back by a reader written from the consumer's public loader, not laitkit's code.

- LXMERT: `load_obj_tsv` of `src/utils.py` (csv.DictReader over 10 tab-separated fields, base64
  arrays decoded with np.frombuffer as int64/float32, reshaped by num_boxes), the caption JSON as
  `LXMERTDataset` / `LXMERTTorchDataset` flatten it (`sentf`, `labelf`), and the pretraining's
  `features[random.randint(0, 35)]` plus `np.stack` over a batch.
- UNITER: the npz keys its image db stores, `DetectFeatLmdb` (LMDB folder named from conf_th /
  max_bb / min_bb, `nbb_*.json`, msgpack-numpy or compressed-npz values, `arr[:nbb]`) and
  `_get_img_feat`, which appends the area to the 6-d `norm_bb`.
- Oscar/VinVL: `TSVFile` (seek by `.lineidx`, split on tabs), `get_image_features` (JSON with
  num_boxes + base64 float32), `get_od_labels` (list of class/rect/conf), the captions JSON.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from laitkit.datasets.schema import Reason, Regions, Sample
from laitkit.errors import UserError
from laitkit.extractors.regions_export import (
    export_lxmert,
    export_oscar_tsv,
    export_uniter_lmdb,
    export_uniter_npz,
)

FIELDS = ["img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id", "attrs_conf", "num_boxes", "boxes",
          "features"]
K = 10  # object classes of the test detector


def lxmert_load_obj_tsv(path: Path) -> list[dict]:
    csv.field_size_limit(sys.maxsize)
    data = []
    with open(path) as f:
        for item in csv.DictReader(f, FIELDS, delimiter="\t"):
            for key in ["img_h", "img_w", "num_boxes"]:
                item[key] = int(item[key])
            boxes = item["num_boxes"]
            decode_config = [
                ("objects_id", (boxes,), np.int64),
                ("objects_conf", (boxes,), np.float32),
                ("attrs_id", (boxes,), np.int64),
                ("attrs_conf", (boxes,), np.float32),
                ("boxes", (boxes, 4), np.float32),
                ("features", (boxes, -1), np.float32),
            ]
            for key, shape, dtype in decode_config:
                item[key] = np.frombuffer(base64.b64decode(item[key]), dtype=dtype).reshape(shape)
                item[key].setflags(write=False)
            data.append(item)
    return data


def _regions(rng: np.random.Generator, n: int, d: int = 16, h: int = 300, w: int = 400, k: int = 4) -> Regions:
    x0 = rng.uniform(0, w / 2, n)
    y0 = rng.uniform(0, h / 2, n)
    boxes = np.stack([x0, y0, x0 + rng.uniform(5, w / 2, n), y0 + rng.uniform(5, h / 2, n)], 1)
    full = rng.dirichlet(np.ones(K + 1), n).astype(np.float32)  # column 0 background, c+1 class c
    top = np.argsort(-full[:, 1:], axis=1)[:, :k] + 1
    soft_ids = np.concatenate([np.zeros((n, 1), dtype=np.int32), top], 1)
    soft_probs = np.take_along_axis(full, soft_ids, 1)
    return Regions(
        detector="laitkit-tiny-c4@test", image_h=h, image_w=w, boxes=boxes,
        features=rng.normal(size=(n, d)).astype(np.float16), obj_ids=top[:, 0] - 1,
        obj_conf=soft_probs[:, 1], attr_ids=np.where(rng.random(n) < 0.3, -1, rng.integers(0, 10, n)),
        attr_conf=rng.uniform(0, 1, n), obj_names=[f"obj{c - 1}" for c in top[:, 0]],
        box_conf=rng.uniform(0.0, 1.0, n), soft_ids=soft_ids, soft_probs=soft_probs,
    )


def _samples(counts: list[int]) -> list[Sample]:
    rng = np.random.default_rng(3)
    out = []
    for i, n in enumerate(counts):
        s = Sample(key=f"img-{i:03d}", url=f"http://x/{i}.jpg", caption=f"caption number {i}", image=b"\xff\xd8jpeg")
        s.regions = _regions(rng, n)
        out.append(s)
    rejected = Sample(key="img-rej", url="http://x/r.jpg")
    rejected.regions = _regions(rng, 5)
    rejected.reject("regions", Reason.REGIONS_ERROR, "boom")
    out.append(rejected)
    out.append(Sample(key="img-none", url="http://x/n.jpg"))  # kept but no regions
    return out


@pytest.fixture()
def samples() -> list[Sample]:
    return _samples([10, 36, 3])


# --- LXMERT -------------------------------------------------------------------------------------


def test_lxmert_tsv_and_json_feed_lxmert_pretraining(tmp_path: Path) -> None:
    samples = _samples([36, 36, 36])
    out = tmp_path / "feats.tsv"
    counts = export_lxmert(samples, out)
    assert counts == {"written": 3, "seen": 5, "skipped_rejected": 1, "skipped_no_regions": 1}
    rows = lxmert_load_obj_tsv(out)
    assert [r["img_id"] for r in rows] == ["img-000", "img-001", "img-002"]
    for row, s in zip(rows, samples[:3], strict=True):
        r = s.regions
        assert (row["img_h"], row["img_w"], row["num_boxes"]) == (300, 400, 36)
        np.testing.assert_array_equal(row["objects_id"], r.obj_ids)
        np.testing.assert_array_equal(row["attrs_id"], r.attr_ids)
        np.testing.assert_array_equal(row["boxes"], r.boxes)
        np.testing.assert_array_equal(row["objects_conf"], r.obj_conf)
        np.testing.assert_array_equal(row["features"], r.features.astype(np.float32))
    # The caption file, flattened as LXMERTTorchDataset does it.
    data = json.loads(out.with_suffix(".json").read_text())
    imgid2img = {r["img_id"]: r for r in rows}
    flat = []
    for datum in data:
        assert datum["img_id"] in imgid2img
        for _cat, labels in datum["labelf"].items():  # LXMERTDataset walks labelf: it must be a dict
            assert isinstance(labels, list)
        for sents_cat, sents in datum["sentf"].items():
            for sent_idx, sent in enumerate(sents):
                flat.append({"uid": f"{datum['img_id']}_{sents_cat}_{sent_idx:03d}", "img_id": datum["img_id"],
                             "sent": sent})
    assert [d["sent"] for d in flat] == ["caption number 0", "caption number 1", "caption number 2"]
    # What the pretraining does with the features: a random box, normalised boxes, a stacked batch.
    random.seed(0)
    feat = imgid2img[flat[0]["img_id"]]["features"][random.randint(0, 35)]
    assert feat.shape == (16,)
    batch = []
    for d in flat:
        img = imgid2img[d["img_id"]]
        boxes = img["boxes"].copy()
        boxes[:, (0, 2)] /= img["img_w"]
        boxes[:, (1, 3)] /= img["img_h"]
        np.testing.assert_array_less(boxes, 1 + 1e-5)
        np.testing.assert_array_less(-boxes, 0 + 1e-5)
        batch.append(img["features"])
    assert np.stack(batch).shape == (3, 36, 16)


def test_lxmert_refuses_other_box_counts_with_one_line(samples: list[Sample], tmp_path: Path) -> None:
    out = tmp_path / "feats.tsv"
    with pytest.raises(UserError) as exc:
        export_lxmert(samples, out)
    msg = str(exc.value)
    assert "\n" not in msg and "exactly 36 boxes" in msg and "2 of 3 images have 3 to 10 boxes" in msg
    assert not out.exists() and not out.with_suffix(".json").exists()
    counts = export_lxmert(samples, out, any_boxes=True)
    assert counts["written"] == 3
    assert [r["num_boxes"] for r in lxmert_load_obj_tsv(out)] == [10, 36, 3]


# --- UNITER -------------------------------------------------------------------------------------


def _check_uniter_arrays(z: dict, r: Regions, nbb: int | None = None) -> None:
    """What UNITER reads: 6-d norm_bb (+ area appended by the loader), fp16, conf sorted, soft labels."""
    n = r.num_boxes if nbb is None else nbb
    nbb_, feat, conf, soft = z["norm_bb"], z["features"], z["conf"], z["soft_labels"]
    assert nbb_.shape == (n, 6) and nbb_.dtype == np.float16
    assert feat.shape == (n, 16) and feat.dtype == np.float16
    assert conf.shape == (n,) and conf.dtype == np.float16
    assert soft.shape == (n, K + 1) and soft.dtype == np.float16
    order = np.argsort(-r.box_conf, kind="stable")[:n]  # the surviving score, most confident first
    np.testing.assert_allclose(conf.astype(np.float32), r.box_conf[order], atol=1e-3)
    assert (np.diff(conf.astype(np.float32)) <= 0).all()
    np.testing.assert_array_equal(feat, r.features[order])
    b, w, h = r.boxes[order], 400.0, 300.0
    np.testing.assert_allclose(nbb_[:, 0], b[:, 0] / w, atol=1e-3)
    np.testing.assert_allclose(nbb_[:, 3], b[:, 3] / h, atol=1e-3)
    np.testing.assert_allclose(nbb_[:, 4], (b[:, 2] - b[:, 0]) / w, atol=1e-3)
    np.testing.assert_allclose(nbb_[:, 5], (b[:, 3] - b[:, 1]) / h, atol=1e-3)
    bb = nbb_.astype(np.float32)
    img_bb = np.concatenate([bb, bb[:, 4:5] * bb[:, 5:]], axis=-1)  # UNITER's _get_img_feat
    assert img_bb.shape == (n, 7)
    # soft_labels: the class distribution with background first; the stored top-k columns exactly.
    s32 = soft.astype(np.float32)
    np.testing.assert_allclose(s32.sum(1), 1.0, atol=5e-3)
    for row, i in enumerate(order):
        np.testing.assert_allclose(s32[row, r.soft_ids[i]], r.soft_probs[i].astype(np.float32), atol=2e-3)
        assert s32[row, 1:].argmax() == r.obj_ids[i]
        others = np.setdiff1d(np.arange(K + 1), r.soft_ids[i])
        assert np.ptp(s32[row, others]) < 2e-3  # the mass outside the top k, spread evenly


def test_uniter_npz_round_trip(samples: list[Sample], tmp_path: Path) -> None:
    counts = export_uniter_npz(samples, tmp_path / "npz")
    assert counts["written"] == 3
    files = sorted((tmp_path / "npz").glob("*.npz"))
    assert [f.stem for f in files] == ["img-000", "img-001", "img-002"]
    for f, s in zip(files, samples[:3], strict=True):
        with np.load(f, allow_pickle=False) as z:
            assert set(z.files) == {"norm_bb", "features", "conf", "soft_labels"}
            _check_uniter_arrays({k: z[k] for k in z.files}, s.regions)


def test_uniter_npz_from_old_shards_without_soft_labels(tmp_path: Path) -> None:
    s = _samples([5])[0]
    r = s.regions
    s.regions = Regions(detector=r.detector, image_h=r.image_h, image_w=r.image_w, boxes=r.boxes, features=r.features,
                        obj_ids=r.obj_ids, obj_conf=r.obj_conf, attr_ids=r.attr_ids, attr_conf=r.attr_conf)
    export_uniter_npz([s], tmp_path)
    with np.load(tmp_path / "img-000.npz") as z:
        soft, conf = z["soft_labels"].astype(np.float32), z["conf"].astype(np.float32)
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=2e-3)
    np.testing.assert_allclose(np.sort(conf)[::-1], np.sort(r.obj_conf)[::-1], atol=1e-3)


class DetectFeatLmdbReader:
    """UNITER's DetectFeatLmdb, written from its description (no horovod, no torch)."""

    def __init__(self, img_dir: Path, conf_th: float = 0.2, max_bb: int = 100, min_bb: int = 10, num_bb: int = 36,
                 compress: bool = False) -> None:
        import lmdb

        if conf_th == -1:
            db_name = f"feat_numbb{num_bb}"
            self.name2nbb = None
        else:
            db_name = f"feat_th{conf_th}_max{max_bb}_min{min_bb}"
            self.name2nbb = json.load(open(f"{img_dir}/nbb_th{conf_th}_max{max_bb}_min{min_bb}.json"))
        self.num_bb = num_bb
        self.compress = compress
        if compress:
            db_name += "_compressed"
        self.env = lmdb.open(f"{img_dir}/{db_name}", readonly=True, create=False)
        self.txn = self.env.begin(buffers=True)

    def keys(self) -> list[str]:
        return json.loads(bytes(self.txn.get(b"__keys__")).decode("utf-8"))

    def get_dump(self, file_name: str) -> dict[str, np.ndarray]:
        import msgpack
        import msgpack_numpy

        dump = self.txn.get(file_name.encode("utf-8"))
        nbb = self.name2nbb[file_name] if self.name2nbb is not None else self.num_bb
        if self.compress:
            with io.BytesIO(dump) as reader:
                img_dump = dict(np.load(reader, allow_pickle=True))
        else:
            img_dump = msgpack.loads(dump, raw=False, object_hook=msgpack_numpy.decode)
        return {k: arr[:nbb, ...] for k, arr in img_dump.items()}

    def close(self) -> None:
        self.env.close()


@pytest.mark.parametrize("compress", [False, True])
def test_uniter_lmdb_read_by_detect_feat_lmdb(samples: list[Sample], tmp_path: Path, compress: bool) -> None:
    img_dir = tmp_path / "img_db" / "laitkit_train"
    counts = export_uniter_lmdb(samples, img_dir, compress=compress, min_bb=2)
    assert counts["written"] == 3
    db = DetectFeatLmdbReader(img_dir, min_bb=2, compress=compress)
    try:
        assert db.keys() == ["img-000.npz", "img-001.npz", "img-002.npz"]
        for s in samples[:3]:
            r = s.regions
            expected = int(min(100, max(2, int((r.box_conf.astype(np.float16) > 0.2).sum()))))
            assert db.name2nbb[f"{s.key}.npz"] == expected
            dump = db.get_dump(f"{s.key}.npz")
            assert set(dump) == {"norm_bb", "features", "conf", "soft_labels"}
            _check_uniter_arrays(dump, r, nbb=expected)
    finally:
        db.close()


# --- Oscar / VinVL ------------------------------------------------------------------------------


class OscarTSVFile:
    """Oscar's TSVFile: rows found by byte offsets in the sibling `.lineidx`."""

    def __init__(self, tsv_file: Path) -> None:
        self.fp = open(tsv_file)
        lineidx = os.path.splitext(tsv_file)[0] + ".lineidx"
        with open(lineidx) as fp:
            self.lineidx = [int(i.strip()) for i in fp.readlines()]

    def num_rows(self) -> int:
        return len(self.lineidx)

    def seek(self, idx: int) -> list[str]:
        self.fp.seek(self.lineidx[idx])
        return [s.strip() for s in self.fp.readline().split("\t")]


def test_oscar_tsv_read_by_oscar_loaders(samples: list[Sample], tmp_path: Path) -> None:
    import yaml

    counts = export_oscar_tsv(samples, tmp_path)
    assert counts["written"] == 3
    cfg = yaml.safe_load((tmp_path / "train.yaml").read_text())
    feat_tsv, label_tsv = OscarTSVFile(tmp_path / cfg["feature"]), OscarTSVFile(tmp_path / cfg["label"])
    captions = json.load(open(tmp_path / cfg["caption"]))
    image_keys = [label_tsv.seek(i)[0] for i in range(label_tsv.num_rows())]
    key2index = {label_tsv.seek(i)[0]: i for i in range(label_tsv.num_rows())}
    key2captions: dict[str, list[str]] = {key: [] for key in image_keys}
    for cap in captions:
        key2captions[cap["image_id"]].append(cap["caption"])
    key2id = json.loads((tmp_path / "key_to_image_id.json").read_text())
    id2idx = json.loads((tmp_path / "imageid2idx.json").read_text())
    assert image_keys == ["0", "1", "2"] and all(isinstance(v, int) for v in key2id.values())
    for s in samples[:3]:
        r = s.regions
        img_id = key2id[s.key]
        idx = key2index[str(img_id)]
        assert id2idx[str(img_id)] == idx
        feat_info = json.loads(feat_tsv.seek(idx)[1])
        feats = np.frombuffer(base64.b64decode(feat_info["features"]), np.float32).reshape((feat_info["num_boxes"], -1))
        assert feats.shape == (r.num_boxes, 16 + 6)  # feature + VinVL's 6-d box position
        np.testing.assert_array_equal(feats[:, :16], r.features.astype(np.float32))
        np.testing.assert_allclose(feats[:, 16], r.boxes[:, 0] / 400.0, rtol=1e-6)
        np.testing.assert_allclose(feats[:, 21], (r.boxes[:, 3] - r.boxes[:, 1]) / 300.0, rtol=1e-5)
        label_info = json.loads(label_tsv.seek(idx)[1])
        od_labels = " ".join([lab["class"] for lab in label_info])
        assert od_labels == " ".join(r.obj_names)
        np.testing.assert_allclose(np.array([lab["rect"] for lab in label_info], dtype=np.float32), r.boxes)
        np.testing.assert_allclose([lab["conf"] for lab in label_info], r.box_conf, rtol=1e-6)
        assert key2captions[str(img_id)] == [s.caption]
        # The retrieval loader's integer ids
        assert int(feat_tsv.seek(id2idx[str(img_id)])[0]) == img_id


# --- CLI ----------------------------------------------------------------------------------------


def test_export_cli_over_shards(samples: list[Sample], tmp_path: Path) -> None:
    from laitkit.datasets.shards import write_shard

    write_shard(tmp_path / "shards", 0, samples[:2], config_hash="t", feature_dim=16)
    write_shard(tmp_path / "shards", 1, samples[2:], config_hash="t", feature_dim=16)
    base = [sys.executable, "-m", "laitkit.jobs.cli", "regions", "export"]
    tsv = tmp_path / "out.tsv"
    res = subprocess.run(base + ["--format", "lxmert-tsv", str(tmp_path / "shards"), str(tsv)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("laitkit regions: error: lxmert-tsv: LXMERT's pretraining needs exactly 36 boxes")
    res = subprocess.run(base + ["--format", "lxmert-tsv", "--any-boxes", str(tmp_path / "shards"), str(tsv)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["written"] == 3
    assert [r["num_boxes"] for r in lxmert_load_obj_tsv(tsv)] == [10, 36, 3]
    # The shards kept the top-k class distribution and the surviving score: UNITER sees them.
    res = subprocess.run(base + ["--format", "uniter-lmdb", "--min-bb", "2", str(tmp_path / "shards"),
                                 str(tmp_path / "u")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    db = DetectFeatLmdbReader(tmp_path / "u", min_bb=2)
    try:
        _check_uniter_arrays(db.get_dump("img-001.npz"), samples[1].regions, nbb=db.name2nbb["img-001.npz"])
    finally:
        db.close()
