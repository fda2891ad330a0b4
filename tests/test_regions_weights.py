"""Real weights: py-bottom-up-attention's Visual Genome checkpoint layout, and safe YAML only.

The key names and shapes below are written from py-bottom-up-attention's description of its
`faster_rcnn_from_caffe_attr.pkl` (detectron2 ResNet-101 C4 with the Caffe max-pool, RPN with a
512-wide hidden conv and 4 sizes x 3 ratios = 12 anchors, res5 in the ROI heads, 1600+1 classes,
the attribute head `cls_embedding` 1601x256, `fc_attr` 2304->512, `attr_score` 512->401, all
inside `roi_heads.box_predictor`), not from laitkit's model. The values are random, written by the
test: the real file cannot be downloaded here, but a file with its layout must load with no
missing and no unexpected keys.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from laitkit.errors import UserError

# ResNet-101: blocks per stage, bottleneck width, output width.
STAGES = {"res2": (3, 64, 256), "res3": (4, 128, 512), "res4": (23, 256, 1024), "res5": (3, 512, 2048)}


def _conv(keys: dict, name: str, out_c: int, in_c: int, k: int) -> None:
    keys[f"{name}.weight"] = (out_c, in_c, k, k)
    for buf in ("weight", "bias", "running_mean", "running_var"):  # FrozenBatchNorm2d
        keys[f"{name}.norm.{buf}"] = (out_c,)


def vg_pkl_layout() -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {}
    _conv(keys, "backbone.stem.conv1", 64, 3, 7)
    in_c = 64
    for stage, (blocks, bott, out_c) in STAGES.items():
        prefix = "roi_heads" if stage == "res5" else "backbone"
        for b in range(blocks):
            name = f"{prefix}.{stage}.{b}"
            if b == 0:
                _conv(keys, f"{name}.shortcut", out_c, in_c, 1)
            _conv(keys, f"{name}.conv1", bott, in_c if b == 0 else out_c, 1)
            _conv(keys, f"{name}.conv2", bott, bott, 3)
            _conv(keys, f"{name}.conv3", out_c, bott, 1)
        in_c = out_c
    rpn = "proposal_generator.rpn_head"
    keys.update({f"{rpn}.conv.weight": (512, 1024, 3, 3), f"{rpn}.conv.bias": (512,),
                 f"{rpn}.objectness_logits.weight": (12, 512, 1, 1), f"{rpn}.objectness_logits.bias": (12,),
                 f"{rpn}.anchor_deltas.weight": (48, 512, 1, 1), f"{rpn}.anchor_deltas.bias": (48,)})
    bp = "roi_heads.box_predictor"
    keys.update({f"{bp}.cls_score.weight": (1601, 2048), f"{bp}.cls_score.bias": (1601,),
                 f"{bp}.bbox_pred.weight": (1600 * 4, 2048), f"{bp}.bbox_pred.bias": (1600 * 4,),
                 f"{bp}.cls_embedding.weight": (1601, 256),
                 f"{bp}.fc_attr.weight": (512, 2048 + 256), f"{bp}.fc_attr.bias": (512,),
                 f"{bp}.attr_score.weight": (401, 512), f"{bp}.attr_score.bias": (401,)})
    return keys


PY_BUA_BASE = """
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  RPN:
    PRE_NMS_TOPK_TEST: 6000
    POST_NMS_TOPK_TEST: 1000
  ROI_HEADS:
    NAME: "Res5ROIHeads"
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
"""

PY_BUA_ATTR = """
_BASE_: "Base-RCNN-C4.yaml"
MODEL:
  CAFFE_MAXPOOL: True
  PIXEL_MEAN: [102.9801, 115.9465, 122.7717]
  MASK_ON: False
  RESNETS:
    DEPTH: 101
  PROPOSAL_GENERATOR:
    HID_CHANNELS: 512
  ANCHOR_GENERATOR:
    SIZES: [[64, 128, 256, 512]]
  ROI_HEADS:
    NUM_CLASSES: 1600
  ROI_BOX_HEAD:
    RES5HALVE: False
    POOLER_TYPE: "ROIPool"
    ATTR: True
    NUM_ATTRS: 400
"""


def test_py_bottom_up_attention_vg_pkl_loads_with_no_missing_or_unexpected_keys(tmp_path: Path) -> None:
    """Their YAML (with its _BASE_) builds our model; a .pkl of their exact layout fills every parameter."""
    from laitkit.extractors import det2_model as dm

    (tmp_path / "Base-RCNN-C4.yaml").write_text(PY_BUA_BASE)
    (tmp_path / "vg_attr.yaml").write_text(PY_BUA_ATTR)
    cfg = dm.load_yaml_cfg(str(tmp_path / "vg_attr.yaml"))
    assert cfg.MODEL.ATTRIBUTE_ON and cfg.MODEL.ROI_ATTRIBUTE_HEAD.NUM_CLASSES == 401
    assert cfg.MODEL.ROI_HEADS.NAME == dm.RES5_HEADS and cfg.INPUT.MIN_SIZE_TRAIN == (640, 672, 704, 736, 768, 800)
    model = dm.build_model(cfg, "cpu")
    assert type(model.backbone.stem).__name__ == "CaffeMaxPoolStem"
    assert model.roi_heads.res5[0].conv2.dilation == (2, 2) and model.roi_heads.res5[0].shortcut.stride == (1, 1)
    assert model.backbone.stem(torch.zeros(1, 3, 64, 64)).shape[-1] == 16  # ceil-mode pool: 32 -> 16

    layout = vg_pkl_layout()
    rng = np.random.default_rng(0)
    blobs = {k: rng.random(shape, dtype=np.float32).astype(np.float16) for k, shape in layout.items()}
    pkl = tmp_path / "faster_rcnn_from_caffe_attr.pkl"
    with pkl.open("wb") as f:
        pickle.dump({"model": blobs, "__author__": "test"}, f, protocol=4)
    del blobs
    state, _ = dm.read_checkpoint(str(pkl))
    assert dm.compare_state(model, state) == {"missing": [], "unexpected": [], "mismatched": []}
    # A key the layout does not have is reported (the comparison can fail).
    extra = {**state, "roi_heads.box_predictor.fc_attr_extra.weight": torch.zeros(1)}
    assert dm.compare_state(model, extra)["unexpected"] == ["roi_heads.box_predictor.fc_attr_extra.weight"]
    dm.load_weights(model, state, str(pkl))
    own = model.state_dict()
    for ours, theirs in (("roi_heads.attribute_predictor.fc.weight", "roi_heads.attribute_predictor.fc.weight"),
                         ("roi_heads.box_predictor.cls_score.bias", "roi_heads.box_predictor.cls_score.bias"),
                         ("backbone.res4.22.conv3.weight", "backbone.res4.22.conv3.weight")):
        assert torch.equal(own[ours], state[theirs].float()), ours
    assert "roi_heads.attribute_predictor.fc.weight" in state  # their fc_attr, renamed


def test_unsafe_yaml_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    from laitkit.extractors import det2_model as dm

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f'MODEL: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(UserError, match="only safe YAML"):
        dm.load_yaml_cfg(str(evil))
    assert not marker.exists()
    remote = tmp_path / "remote.yaml"
    remote.write_text('_BASE_: "https://example.invalid/base.yaml"\n')
    with pytest.raises(UserError, match="not a local file"):
        dm.load_yaml_cfg(str(remote))
