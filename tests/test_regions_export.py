"""LXMERT TSV and UNITER npz exports, read back by readers written from the formats' public descriptions.

The readers below do not use laitkit's code: the LXMERT one follows `load_obj_tsv` of LXMERT's
`src/utils.py` (csv.DictReader over 10 tab-separated fields, base64 arrays decoded with
np.frombuffer as int64/float32 and reshaped by num_boxes); the UNITER one follows the npz keys its
image LMDB stores (`norm_bb` N x 7, `features`, `conf`, `soft_labels`, all float16).
"""

from __future__ import annotations

import base64
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from laitkit.datasets.schema import Reason, Regions, Sample
from laitkit.extractors.regions_export import export_lxmert_tsv, export_uniter_npz

FIELDS = ["img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id", "attrs_conf", "num_boxes", "boxes",
          "features"]


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


def _regions(rng: np.random.Generator, n: int, d: int = 16, h: int = 300, w: int = 400) -> Regions:
    x0 = rng.uniform(0, w / 2, n)
    y0 = rng.uniform(0, h / 2, n)
    boxes = np.stack([x0, y0, x0 + rng.uniform(5, w / 2, n), y0 + rng.uniform(5, h / 2, n)], 1)
    return Regions(
        detector="laitkit-tiny-c4@test", image_h=h, image_w=w, boxes=boxes,
        features=rng.normal(size=(n, d)).astype(np.float16), obj_ids=rng.integers(0, 10, n),
        obj_conf=rng.uniform(0.2, 1, n), attr_ids=np.where(rng.random(n) < 0.3, -1, rng.integers(0, 10, n)),
        attr_conf=rng.uniform(0, 1, n),
    )


@pytest.fixture()
def samples() -> list[Sample]:
    rng = np.random.default_rng(3)
    out = []
    for i, n in enumerate([10, 36, 3]):
        s = Sample(key=f"img-{i:03d}", url=f"http://x/{i}.jpg", image=b"\xff\xd8jpeg")
        s.regions = _regions(rng, n)
        out.append(s)
    rejected = Sample(key="img-rej", url="http://x/r.jpg")
    rejected.regions = _regions(rng, 5)
    rejected.reject("regions", Reason.REGIONS_ERROR, "boom")
    out.append(rejected)
    out.append(Sample(key="img-none", url="http://x/n.jpg"))  # kept but no regions
    return out


def test_lxmert_tsv_round_trip(samples: list[Sample], tmp_path: Path) -> None:
    out = tmp_path / "feats.tsv"
    counts = export_lxmert_tsv(samples, out)
    assert counts == {"written": 3, "seen": 5, "skipped_rejected": 1, "skipped_no_regions": 1}
    rows = lxmert_load_obj_tsv(out)
    assert [r["img_id"] for r in rows] == ["img-000", "img-001", "img-002"]
    for row, s in zip(rows, samples[:3], strict=True):
        r = s.regions
        assert (row["img_h"], row["img_w"], row["num_boxes"]) == (300, 400, r.num_boxes)
        np.testing.assert_array_equal(row["objects_id"], r.obj_ids)
        np.testing.assert_array_equal(row["attrs_id"], r.attr_ids)
        np.testing.assert_array_equal(row["boxes"], r.boxes)
        np.testing.assert_array_equal(row["objects_conf"], r.obj_conf)
        np.testing.assert_array_equal(row["features"], r.features.astype(np.float32))
        assert row["features"].shape == (r.num_boxes, 16)


def test_uniter_npz_round_trip(samples: list[Sample], tmp_path: Path) -> None:
    counts = export_uniter_npz(samples, tmp_path / "npz")
    assert counts["written"] == 3
    files = sorted((tmp_path / "npz").glob("*.npz"))
    assert [f.stem for f in files] == ["img-000", "img-001", "img-002"]
    for f, s in zip(files, samples[:3], strict=True):
        r = s.regions
        with np.load(f, allow_pickle=False) as z:
            assert set(z.files) == {"norm_bb", "features", "conf", "soft_labels"}
            nbb, feat, conf, soft = z["norm_bb"], z["features"], z["conf"], z["soft_labels"]
        n = r.num_boxes
        assert nbb.shape == (n, 7) and nbb.dtype == np.float16
        assert feat.dtype == np.float16 and feat.shape == (n, 16)
        assert soft.shape == (n, 11) and soft.dtype == np.float16
        assert conf.dtype == np.float16
        w, h = 400.0, 300.0
        b = r.boxes
        np.testing.assert_allclose(nbb[:, 0], b[:, 0] / w, rtol=2e-3, atol=1e-3)
        np.testing.assert_allclose(nbb[:, 3], b[:, 3] / h, rtol=2e-3, atol=1e-3)
        np.testing.assert_allclose(nbb[:, 4], (b[:, 2] - b[:, 0]) / w, rtol=2e-3, atol=1e-3)
        np.testing.assert_allclose(nbb[:, 6], nbb[:, 4].astype(np.float32) * nbb[:, 5], rtol=5e-3, atol=1e-3)
        np.testing.assert_array_equal(feat, r.features)
        # argmax over non-background soft labels is the stored class; rows sum to 1
        np.testing.assert_array_equal(soft[:, 1:].argmax(1), r.obj_ids)
        np.testing.assert_allclose(soft.astype(np.float32).sum(1), 1.0, atol=2e-3)


def test_export_cli_over_shards(samples: list[Sample], tmp_path: Path) -> None:
    from laitkit.datasets.shards import write_shard

    write_shard(tmp_path / "shards", 0, samples[:2], config_hash="t", feature_dim=16)
    write_shard(tmp_path / "shards", 1, samples[2:], config_hash="t", feature_dim=16)
    tsv = tmp_path / "out.tsv"
    cmd = [sys.executable, "-m", "laitkit.jobs.cli", "regions", "export", "--format", "lxmert-tsv",
           str(tmp_path / "shards"), str(tsv)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["written"] == 3
    rows = lxmert_load_obj_tsv(tsv)
    assert [r["num_boxes"] for r in rows] == [10, 36, 3]
    res2 = subprocess.run(cmd[:-4] + ["--format", "uniter-npz", str(tmp_path / "shards"), str(tmp_path / "u")],
                          capture_output=True, text=True, timeout=120)
    assert res2.returncode == 0, res2.stderr
    assert len(list((tmp_path / "u").glob("*.npz"))) == 3
