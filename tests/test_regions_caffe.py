"""`selection: caffe` against an independent implementation of bottom-up-attention's generate_tsv.py.

The reference below is written from the Caffe script's description: for every foreground class,
py-faster-rcnn's greedy NMS (`py_cpu_nms`: sort by score, keep the best, drop boxes whose IoU with
it, +1-pixel widths and areas, exceeds the threshold) over the raw proposal boxes in original-image
pixels; `max_conf[keep] = max(max_conf[keep], scores[keep])`; keep `np.where(max_conf >= 0.2)`,
replaced by the top MIN_BOXES / MAX_BOXES of `np.argsort(max_conf)[::-1]` when too few / too many;
report those proposals' boxes and their pool5 features.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from laitkit.datasets.schema import Regions
from laitkit.extractors.regions import RegionExtractor, RegionsConfig, decode_image, target_size
from laitkit.extractors.regions_select import _caffe_max_conf_torch, caffe_select
from laitkit.extractors.regions_synth import render_gold

torch.set_num_threads(1)


def py_cpu_nms(dets: np.ndarray, thresh: float) -> list[int]:
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        inds = np.where(ovr <= thresh)[0]
        order = order[inds + 1]
    return keep


def generate_tsv_keep(cls_boxes: np.ndarray, cls_prob: np.ndarray, conf_thresh: float = 0.2, nms: float = 0.3,
                      min_boxes: int = 10, max_boxes: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """`cls_prob` (R, K+1) with background at column 0, as in the Caffe net."""
    max_conf = np.zeros(cls_boxes.shape[0])
    for cls_ind in range(1, cls_prob.shape[1]):
        cls_scores = cls_prob[:, cls_ind]
        dets = np.hstack((cls_boxes, cls_scores[:, np.newaxis])).astype(np.float32)
        keep = np.array(py_cpu_nms(dets, nms))
        max_conf[keep] = np.where(cls_scores[keep] > max_conf[keep], cls_scores[keep], max_conf[keep])
    keep_boxes = np.where(max_conf >= conf_thresh)[0]
    if len(keep_boxes) < min_boxes:
        keep_boxes = np.argsort(max_conf)[::-1][:min_boxes]
    elif len(keep_boxes) > max_boxes:
        keep_boxes = np.argsort(max_conf)[::-1][:max_boxes]
    return keep_boxes, max_conf


def _detector_outputs(seed: int, r: int = 120, k: int = 30, sharp: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed proposals clustered around a few objects (so NMS matters) and softmax class scores."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(60, 440, (6, 2))
    c = centres[rng.integers(0, 6, r)] + rng.normal(0, 12, (r, 2))
    wh = rng.uniform(20, 120, (r, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).clip(0, 500).astype(np.float32)
    logits = rng.normal(0, sharp, (r, k + 1))
    prob = np.exp(logits - logits.max(1, keepdims=True))
    return boxes, (prob / prob.sum(1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(("seed", "sharp", "min_boxes", "max_boxes"), [
    (0, 1.0, 10, 100),  # between min and max: original proposal order
    (1, 0.5, 10, 100),  # flat scores: none pass 0.2, filled up to 10 by max_conf
    (2, 4.0, 10, 100),  # peaked scores: more than 100 pass, top 100
    (3, 2.0, 36, 36),  # LXMERT's fixed 36
])
def test_caffe_select_equals_generate_tsv(seed: int, sharp: float, min_boxes: int, max_boxes: int) -> None:
    boxes, prob_bg_first = _detector_outputs(seed, sharp=sharp)
    ref_keep, ref_conf = generate_tsv_keep(boxes, prob_bg_first, min_boxes=min_boxes, max_boxes=max_boxes)
    keep, max_conf = caffe_select(boxes, prob_bg_first[:, 1:], conf_thresh=0.2, nms_thresh=0.3,
                                  min_boxes=min_boxes, max_boxes=max_boxes)
    np.testing.assert_array_equal(keep, ref_keep)  # same boxes, same order
    np.testing.assert_array_equal(max_conf, ref_conf.astype(np.float32))
    # The device loop (used on CUDA) computes the same scores; run here on CPU.
    np.testing.assert_array_equal(_caffe_max_conf_torch(boxes, prob_bg_first[:, 1:], 0.3, "cpu"), max_conf)
    n_pass = int((ref_conf >= 0.2).sum())
    if seed == 0:
        assert min_boxes <= n_pass <= max_boxes and (np.diff(keep) > 0).all()
    if seed == 1:
        assert n_pass < min_boxes and len(keep) == min_boxes
    if seed == 2:
        assert n_pass > max_boxes and len(keep) == max_boxes


def test_extractor_caffe_mode_reports_proposals_and_their_features() -> None:
    """End to end on the random tiny detector: boxes, order, features and scores are generate_tsv's
    applied to the model's own proposals; the refined selection gives other boxes (the test can fail)."""
    g = render_gold(np.random.default_rng(7))
    buf = io.BytesIO()
    Image.fromarray(g.rgb).save(buf, format="JPEG", quality=92)
    img = buf.getvalue()
    ext = RegionExtractor(RegionsConfig(config="random-tiny", device="cpu", selection="caffe", min_boxes=5,
                                        max_boxes=30))
    assert ext.selection == "caffe"
    got = ext.extract([img])[0]
    assert isinstance(got, Regions)

    # The reference: the same network, proposals, pooled features and softmax, then the Caffe rule.
    d = decode_image(img, ext.min_size, ext.max_size)
    th, tw = target_size(d.orig_h, d.orig_w, ext.min_size, ext.max_size)
    arr = np.asarray(Image.fromarray(d.rgb).resize((tw, th), Image.Resampling.BILINEAR))
    with torch.inference_mode():
        images = ext.model.preprocess_image([{"image": torch.from_numpy(arr.copy()).permute(2, 0, 1)}])
        feats = ext.model.backbone(images.tensor)
        proposals, _ = ext.model.proposal_generator(images, feats, None)
        pb = proposals[0].proposal_boxes
        pooled = ext.heads.pooled_features(feats, [pb]).float()
        prob = torch.softmax(ext.heads.box_predictor(pooled)[0].float(), dim=1).numpy()
    scale = np.array([tw / d.orig_w, th / d.orig_h] * 2, dtype=np.float32)
    cls_boxes = (pb.tensor.numpy() / scale).astype(np.float32)
    bg_first = np.concatenate([prob[:, -1:], prob[:, :-1]], axis=1)
    keep, max_conf = generate_tsv_keep(cls_boxes, bg_first, min_boxes=5, max_boxes=30)
    assert got.num_boxes == len(keep) >= 5
    np.testing.assert_allclose(got.boxes, cls_boxes[keep].clip(0, [d.orig_w, d.orig_h] * 2), atol=1e-3)
    np.testing.assert_allclose(got.features.astype(np.float32), pooled.numpy()[keep], rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(got.box_conf, max_conf[keep], atol=1e-5)
    np.testing.assert_array_equal(got.obj_ids, prob[keep, :-1].argmax(1))
    np.testing.assert_allclose(got.obj_conf, prob[keep, :-1].max(1), atol=1e-5)
    assert got.soft_ids is not None and (got.soft_ids[:, 0] == 0).all()
    np.testing.assert_allclose(got.soft_probs[:, 0].astype(np.float32), prob[keep, -1], atol=1e-3)

    refined = RegionExtractor(RegionsConfig(config="random-tiny", device="cpu", selection="refined", min_boxes=5,
                                            max_boxes=30)).extract([img])[0]
    assert isinstance(refined, Regions)
    assert refined.num_boxes != got.num_boxes or not np.allclose(refined.boxes, got.boxes)


def test_auto_selection_is_caffe_only_for_the_vg_layout() -> None:
    assert RegionExtractor(RegionsConfig(config="random-tiny", device="cpu")).selection == "refined"
