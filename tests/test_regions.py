"""Region extractor: BUTD selection, given boxes, the tiny detector, bad input, safe loading, VG layout.

Everything runs on CPU with the shipped tiny detector (or random tiny weights) on ~256-px images,
one torch thread, so the module stays within a few seconds per test on a shared 2-core machine.
"""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from laitkit.datasets.schema import Reason, Regions
from laitkit.extractors.regions import (
    TINY_WEIGHTS,
    RegionExtractor,
    RegionsConfig,
    decode_image,
    failure_reason,
    select_boxes,
)
from laitkit.extractors.regions_synth import GoldImage, detection_metrics, render_gold

torch.set_num_threads(1)

needs_tiny = pytest.mark.skipif(not TINY_WEIGHTS.is_file(), reason="tiny detector weights not trained yet")


def _jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def scenes() -> list[GoldImage]:
    rng = np.random.default_rng(12345)
    return [render_gold(rng) for _ in range(6)]


@pytest.fixture(scope="module")
def tiny() -> RegionExtractor:
    if not TINY_WEIGHTS.is_file():
        pytest.skip("tiny detector weights not trained yet")
    return RegionExtractor(RegionsConfig(config="tiny", device="cpu"))


@pytest.fixture(scope="module")
def random_tiny() -> RegionExtractor:
    return RegionExtractor(RegionsConfig(config="random-tiny", device="cpu"))


# --- box selection ------------------------------------------------------------------------------


def test_select_boxes_per_class_nms_and_max_conf() -> None:
    # Proposals 0 and 1 overlap almost fully. In class 0 proposal 1 is suppressed by 0; in class 1,
    # proposal 1 scores higher, survives, and keeps that score. Proposal 2 is weak everywhere.
    box = torch.tensor([10.0, 10.0, 50.0, 50.0])
    boxes = torch.stack([box, box + 1, box + 200]).unsqueeze(1).repeat(1, 2, 1)  # (3, K=2, 4)
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.5, 0.45, 0.05], [0.05, 0.05, 0.9]])
    idx, cls, conf = select_boxes(boxes, probs, conf_thresh=0.2, nms_thresh=0.3, min_boxes=0, max_boxes=10,
                                  fixed_boxes=None)
    assert idx.tolist() == [0, 1]  # proposal 1 passes via class 1 (0.45), not via its suppressed class 0
    assert cls.tolist() == [0, 0] and conf.tolist() == pytest.approx([0.8, 0.5])
    # Same class for both: proposal 1 is suppressed everywhere it is strong, so only 0 passes 0.2.
    probs2 = torch.tensor([[0.8, 0.1, 0.1], [0.7, 0.1, 0.2], [0.05, 0.05, 0.9]])
    idx2, _, _ = select_boxes(boxes, probs2, conf_thresh=0.2, nms_thresh=0.3, min_boxes=0, max_boxes=10,
                              fixed_boxes=None)
    assert idx2.tolist() == [0]
    # min_boxes fills up with the next most confident; max_boxes and fixed_boxes cap.
    assert len(select_boxes(boxes, probs2, conf_thresh=0.2, nms_thresh=0.3, min_boxes=3, max_boxes=10,
                            fixed_boxes=None)[0]) == 3
    assert len(select_boxes(boxes, probs, conf_thresh=0.0, nms_thresh=0.3, min_boxes=0, max_boxes=1,
                            fixed_boxes=None)[0]) == 1
    assert len(select_boxes(boxes, probs, conf_thresh=0.9, nms_thresh=0.3, min_boxes=0, max_boxes=1,
                            fixed_boxes=2)[0]) == 2


def test_kept_box_counts_respect_min_max_and_fixed(random_tiny: RegionExtractor, scenes: list[GoldImage]) -> None:
    imgs = [_jpeg(g.rgb) for g in scenes[:2]]
    base = random_tiny.cfg
    for kw, lo, hi in (
        ({"min_boxes": 10, "max_boxes": 100}, 10, 100),
        ({"min_boxes": 3, "max_boxes": 5, "conf_thresh": 0.0}, 5, 5),  # everything passes 0.0: capped at max
        ({"min_boxes": 7, "max_boxes": 7}, 7, 7),
        ({"fixed_boxes": 36}, 36, 36),
    ):
        random_tiny.cfg = RegionsConfig(**{**base.__dict__, **kw})
        try:
            for r in random_tiny.extract(imgs):
                assert isinstance(r, Regions), r
                assert lo <= r.num_boxes <= hi, (kw, r.num_boxes)
                assert r.features.dtype == np.float16 and r.features.shape == (r.num_boxes, 256)
                assert (r.boxes[:, 2] <= r.image_w + 1e-3).all() and (r.boxes[:, 3] <= r.image_h + 1e-3).all()
        finally:
            random_tiny.cfg = base


# --- given boxes --------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["tiny", "random-tiny-fpn"])
def test_given_box_feature_equals_detected(
    config: str, scenes: list[GoldImage], request: pytest.FixtureRequest
) -> None:
    if config == "tiny":
        ext = request.getfixturevalue("tiny")
    else:
        ext = RegionExtractor(RegionsConfig(config=config, device="cpu"))
    img = _jpeg(scenes[0].rgb)
    det = ext.extract([img])[0]
    assert isinstance(det, Regions) and det.num_boxes >= 10
    given = ext.extract_given_boxes([img], [det.boxes])[0]
    assert isinstance(given, Regions)
    np.testing.assert_array_equal(given.boxes, det.boxes)
    np.testing.assert_array_equal(given.features, det.features)
    # A different box gives a different feature (the test can fail).
    shifted = det.boxes.copy()
    shifted[:, [0, 2]] = np.clip(shifted[:, [0, 2]] + 40, 0, det.image_w)
    other = ext.extract_given_boxes([img], [shifted])[0]
    assert isinstance(other, Regions)
    assert not np.array_equal(other.features, det.features)


def test_given_boxes_scale_into_resized_input(tiny: RegionExtractor, scenes: list[GoldImage]) -> None:
    """The same scene at two resolutions: the gold box (in each image's pixels) gets the same class."""
    g = scenes[1]
    big = np.asarray(Image.fromarray(g.rgb).resize((g.rgb.shape[1] * 2, g.rgb.shape[0] * 2), Image.BILINEAR))
    small_r = tiny.extract_given_boxes([_jpeg(g.rgb)], [g.boxes])[0]
    big_r = tiny.extract_given_boxes([_jpeg(big)], [g.boxes * 2])[0]
    assert isinstance(small_r, Regions) and isinstance(big_r, Regions)
    assert small_r.image_w * 2 == big_r.image_w
    np.testing.assert_array_equal(small_r.obj_ids, g.classes)
    np.testing.assert_array_equal(big_r.obj_ids, g.classes)
    cos = (small_r.features.astype(np.float32) * big_r.features.astype(np.float32)).sum(1) / (
        np.linalg.norm(small_r.features.astype(np.float32), axis=1) * np.linalg.norm(big_r.features.astype(np.float32),
                                                                                      axis=1))
    assert (cos > 0.9).all(), cos


def test_given_boxes_bad_shape_is_recorded(tiny: RegionExtractor, scenes: list[GoldImage]) -> None:
    img = _jpeg(scenes[0].rgb)
    out = tiny.extract_given_boxes([img, img], [np.zeros((2, 3)), scenes[0].boxes])
    assert isinstance(out[0], str) and out[0].startswith("regions_error")
    assert isinstance(out[1], Regions) and out[1].num_boxes == len(scenes[0].boxes)


# --- the tiny detector --------------------------------------------------------------------------


@needs_tiny
def test_tiny_detector_finds_synthetic_objects(tiny: RegionExtractor, scenes: list[GoldImage]) -> None:
    res = tiny.extract([_jpeg(g.rgb) for g in scenes])
    assert all(isinstance(r, Regions) for r in res)
    m = detection_metrics(res, scenes, num_classes=len(tiny.obj_names))
    assert m["map50"] >= 0.7, m
    assert m["attr_accuracy"] >= 0.6, m
    # The most confident box of the first scene is one of its objects, with the right name.
    r, g = res[0], scenes[0]
    top = int(np.argmax(r.obj_conf))
    names = [tiny.obj_names[c] for c in g.classes]
    assert r.obj_names[top] in names and r.obj_conf[top] > 0.5
    assert r.detector.startswith("laitkit-tiny-c4@")


# --- bad input ----------------------------------------------------------------------------------


def _huge_png_header(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h with a tiny (truncated) body: no memory spent making it."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def test_bad_images_are_recorded_and_do_not_break_the_batch(random_tiny: RegionExtractor,
                                                             scenes: list[GoldImage]) -> None:
    good = _jpeg(scenes[2].rgb)
    rgb = scenes[3].rgb
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, format="JPEG")
    batch: list[bytes | np.ndarray] = [
        good,
        b"not an image at all",
        good[: len(good) // 3],  # truncated JPEG
        b"",
        _png(Image.fromarray(rgb).convert("L")),  # grayscale
        cmyk.getvalue(),  # CMYK JPEG
        _png(Image.fromarray(rgb).convert("RGBA")),  # alpha
        _png(Image.new("RGB", (1, 1), (200, 10, 10))),  # 1x1
        _huge_png_header(20000, 20000),  # 20000x20000 claimed
        np.zeros((5, 7), dtype=np.uint8),  # grayscale array
        np.zeros((5, 7, 2), dtype=np.uint8),  # nonsense array
        np.zeros((1, 5000, 3), dtype=np.uint8),  # extreme aspect ratio: resized to 1 x 448
        good,
    ]
    out = random_tiny.extract(batch)
    assert len(out) == len(batch)
    kinds = ["ok" if isinstance(r, Regions) else r.split(":")[0] for r in out]
    assert kinds == ["ok", "decode_error", "decode_error", "decode_error", "ok", "ok", "ok", "too_small",
                     "decode_error", "too_small", "decode_error", "too_small", "ok"], out
    assert "too large" in out[8]
    assert out[7] == "too_small: 1x1 image, shorter side below 32 px"
    assert failure_reason(out[7]) == Reason.TOO_SMALL and failure_reason(out[1]) == Reason.REGIONS_ERROR
    # With the check off, tiny and extreme images still run through the detector without breaking it.
    base = random_tiny.cfg
    random_tiny.cfg = RegionsConfig(**{**base.__dict__, "min_image_side": 0})
    try:
        off = random_tiny.extract([batch[7], batch[11]])
    finally:
        random_tiny.cfg = base
    assert isinstance(off[0], Regions) and off[0].image_h == 1 and off[0].image_w == 1 and off[0].num_boxes >= 1
    assert (off[0].boxes <= 1.0).all()
    assert isinstance(off[1], Regions) and off[1].image_h == 1 and (off[1].boxes[:, 3] <= 1.0).all()
    # The two copies of the good image agree, so the failures around them changed nothing.
    np.testing.assert_allclose(out[0].boxes, out[-1].boxes, atol=1e-3)
    alone = random_tiny.extract([good])[0]
    assert isinstance(alone, Regions) and alone.num_boxes == out[0].num_boxes


def test_decode_handles_modes_and_exif() -> None:
    img = Image.new("RGB", (40, 20), (10, 200, 30))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90: displayed as 20 wide, 40 tall
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    d = decode_image(buf.getvalue(), 600, 1000)
    assert not isinstance(d, str) and (d.orig_h, d.orig_w) == (40, 20) and d.rgb.shape[:2] == (40, 20)
    la = _png(Image.new("LA", (4, 4), (0, 0)))  # fully transparent black -> white background
    d2 = decode_image(la, 600, 1000)
    assert not isinstance(d2, str) and (d2.rgb == 255).all()
    d3 = decode_image(np.full((3, 3), 0.5, dtype=np.float32), 600, 1000)
    assert not isinstance(d3, str) and d3.rgb.dtype == np.uint8 and int(d3.rgb[0, 0, 0]) == 127


def test_big_jpeg_decodes_in_draft_mode_with_original_size() -> None:
    rgb = np.zeros((2400, 3200, 3), dtype=np.uint8)
    rgb[600:1200, 800:1600] = (220, 30, 30)
    d = decode_image(_jpeg(rgb, quality=70), 600, 1000)
    assert not isinstance(d, str)
    assert (d.orig_h, d.orig_w) == (2400, 3200)
    assert d.rgb.shape[0] < 2400  # decoded at a reduced DCT scale, never at full size


# --- config and loading -------------------------------------------------------------------------


def test_config_validation() -> None:
    from laitkit.errors import UserError

    with pytest.raises(UserError):
        RegionsConfig(min_boxes=20, max_boxes=10)
    with pytest.raises(UserError):
        RegionsConfig(config="no-such-preset")
    with pytest.raises(UserError):
        RegionsConfig(box_mode="center")


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_pth_weights_are_loaded_without_unpickling_code(tmp_path: Path) -> None:
    from laitkit.extractors.det2_model import read_checkpoint

    ok = tmp_path / "ok.pth"
    torch.save({"model": {"a.weight": torch.ones(2)}, "meta": {"name": "x"}}, ok)
    state, meta = read_checkpoint(str(ok))
    assert meta["name"] == "x" and torch.equal(state["a.weight"], torch.ones(2))
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"a.weight": torch.ones(2)}, "x": _Evil()}, evil)
    with pytest.raises(pickle.UnpicklingError):
        read_checkpoint(str(evil))


def test_vg_vocab_is_the_default_for_the_vg_layout() -> None:
    from laitkit.extractors.regions import VG_ATTRIBUTES, VG_OBJECTS, read_vocab

    objs, attrs = read_vocab(VG_OBJECTS), read_vocab(VG_ATTRIBUTES)
    assert len(objs) == 1600 and len(attrs) == 400
    assert attrs[0] == "gray"  # "gray,grey": the first synonym is the display name


VG_YAML = """
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  MASK_ON: False
  RESNETS: {DEPTH: 101}
  RPN: {PRE_NMS_TOPK_TEST: 200, POST_NMS_TOPK_TEST: 6}
  ROI_HEADS: {NAME: "AttributeRes5ROIHeads", NUM_CLASSES: 1600}
  ROI_BOX_HEAD: {RES5HALVE: False, POOLER_TYPE: "ROIPool", POOLER_RESOLUTION: 14}
  ATTRIBUTE_ON: True
  CAFFE_MAXPOOL: True
  PROPOSAL_GENERATOR: {HID_CHANNELS: 512}
  PIXEL_MEAN: [102.9801, 115.9465, 122.7717]
  PIXEL_STD: [1.0, 1.0, 1.0]
INPUT: {FORMAT: "BGR", MIN_SIZE_TEST: 96, MAX_SIZE_TEST: 160}
"""


def test_py_bottom_up_attention_yaml_runs_end_to_end(tmp_path: Path, scenes: list[GoldImage]) -> None:
    """A YAML in py-bottom-up-attention's vocabulary (their head name, keys) builds our heads and extracts
    2048-d features with VG object and attribute names (random weights; tiny input and 6 proposals)."""
    yaml = tmp_path / "vg.yaml"
    yaml.write_text(VG_YAML)
    ext = RegionExtractor(RegionsConfig(config=str(yaml), device="cpu", attr_thresh=0.0))
    assert ext.selection == "caffe"  # the Visual Genome layout defaults to generate_tsv.py's selection
    assert ext.det_cfg.MODEL.RPN.CONV_DIMS == [512]
    assert ext.model.proposal_generator.rpn_head.conv.out_channels == 512
    r = ext.extract([_jpeg(scenes[0].rgb)])[0]
    assert isinstance(r, Regions), r
    assert 1 <= r.num_boxes <= 6 and r.feature_dim == 2048
    assert all(n for n in r.obj_names) and all(n for n in r.attr_names) and (r.attr_ids >= 0).all()
    assert (r.obj_ids < 1600).all() and (r.attr_ids < 400).all()
    assert r.box_conf is not None and r.soft_ids.shape == (r.num_boxes, 33)  # background + top 32 of 1600


# --- grid mode ----------------------------------------------------------------------------------


def test_grid_mode_gives_a_grid_of_boxes_in_the_same_schema(random_tiny: RegionExtractor,
                                                            scenes: list[GoldImage]) -> None:
    from laitkit.extractors.regions import grid_boxes

    ext = RegionExtractor(RegionsConfig(config="random-tiny", device="cpu", mode="grid", grid_size=4))
    img = _jpeg(scenes[0].rgb)
    r = ext.extract([img])[0]
    assert isinstance(r, Regions) and r.num_boxes == 16 and r.features.shape == (16, 256)
    h, w = scenes[0].rgb.shape[:2]
    assert (r.image_h, r.image_w) == (h, w)
    np.testing.assert_allclose(r.boxes[0], [0, 0, w / 4, h / 4], atol=1e-4)
    np.testing.assert_allclose(r.boxes[-1], [3 * w / 4, 3 * h / 4, w, h], atol=1e-4)
    area = ((r.boxes[:, 2] - r.boxes[:, 0]) * (r.boxes[:, 3] - r.boxes[:, 1])).sum()
    assert area == pytest.approx(h * w, rel=1e-5)  # the cells tile the image
    # The same features a user gets by giving those boxes: one pooling path, no detector selection.
    given = random_tiny.extract_given_boxes([img], [grid_boxes(h, w, 4)])[0]
    np.testing.assert_array_equal(given.features, r.features)
    assert len(r.obj_names) == 16 and r.soft_ids is not None and r.box_conf is None
