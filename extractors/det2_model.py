"""detectron2 pieces for region features: config presets, attribute ROI heads, backbones, safe loading.

Why a module of its own: `regions.py` drives inference and must not care whether the detector is
the project's tiny synthetic one, a random-weights R101-C4 for timing, or a user's converted
bottom-up-attention `.pkl`. Everything model-shaped lives here, built on detectron2's registries
so any detectron2 Faster R-CNN YAML (C4 or FPN) works unchanged:

- `LaitkitAttrRes5ROIHeads` (C4) and `LaitkitAttrStandardROIHeads` (FPN) add the
  bottom-up-attention attribute head (class embedding ⊕ pooled feature → fc → attributes) and a
  `pooled_features(features, boxes)` method, so detection and given boxes share one pooling path.
  Their inference `forward` is detectron2's own, so `DefaultPredictor` still works on them.
- `build_laitkit_resnet_backbone` is detectron2's ResNet plus the Caffe stem max-pool (pad 0,
  ceil mode) of the original VG model; `build_laitkit_tiny_backbone` / `..._tiny_fpn_backbone`
  are narrow ResNets for the CPU-trainable synthetic detector.

Registration is explicit (`register_components()`, idempotent) rather than an import side effect,
and YAMLs written for py-bottom-up-attention / bottom-up-attention.pytorch are accepted: their
extra keys are declared by `add_laitkit_config` and their head names are aliased to ours.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from laitkit.errors import UserError

log = logging.getLogger(__name__)

RES5_HEADS = "LaitkitAttrRes5ROIHeads"
STANDARD_HEADS = "LaitkitAttrStandardROIHeads"
# Head names used by the community ports of bottom-up-attention; mapped onto ours when a YAML names them.
HEAD_ALIASES = {
    "AttributeRes5ROIHeads": RES5_HEADS,
    "Res5ROIHeadsForVGStride": RES5_HEADS,
    "AttributeStandardROIHeads": STANDARD_HEADS,
    "Res5ROIHeads": RES5_HEADS,
    "StandardROIHeads": STANDARD_HEADS,
}
# Parameter-name spellings of the attribute head in converted checkpoints -> ours.
ATTR_KEY_ALIASES = (
    ("roi_heads.box_predictor.cls_embedding.", "roi_heads.attribute_predictor.cls_embedding."),
    ("roi_heads.box_predictor.cls_embed.", "roi_heads.attribute_predictor.cls_embedding."),
    ("roi_heads.box_predictor.fc_attr_instance.", "roi_heads.attribute_predictor.fc."),
    ("roi_heads.box_predictor.fc_attr.", "roi_heads.attribute_predictor.fc."),  # py-bottom-up-attention
    ("roi_heads.box_predictor.attr_linear1.", "roi_heads.attribute_predictor.fc."),
    ("roi_heads.box_predictor.attr_linear2.", "roi_heads.attribute_predictor.attr_score."),
    ("roi_heads.box_predictor.attr_score.", "roi_heads.attribute_predictor.attr_score."),
    ("roi_heads.attribute_predictor.obj_embed.", "roi_heads.attribute_predictor.cls_embedding."),
    ("roi_heads.attribute_predictor.fc.0.", "roi_heads.attribute_predictor.fc."),
)

_REGISTERED = False


def _require_detectron2() -> None:
    try:
        import detectron2.modeling  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "region features need detectron2: run `make setup` (or python scripts/install_detectron2.py)"
        ) from exc


def add_laitkit_config(cfg: Any) -> Any:
    """Declare the keys of the bottom-up-attention layout (and ours) on a detectron2 CfgNode."""
    from detectron2.config import CfgNode as CN

    m = cfg.MODEL
    m.CAFFE_MAXPOOL = False  # VG R101: stem max-pool pad 0 + ceil mode (py-bottom-up-attention key)
    m.ATTRIBUTE_ON = False
    m.ROI_ATTRIBUTE_HEAD = CN()
    m.ROI_ATTRIBUTE_HEAD.OBJ_EMBED_DIM = 256
    m.ROI_ATTRIBUTE_HEAD.FC_DIM = 512
    m.ROI_ATTRIBUTE_HEAD.NUM_CLASSES = 401  # outputs incl. index 0 = "no attribute"
    m.ROI_ATTRIBUTE_HEAD.LOSS_WEIGHT = 0.2
    m.ROI_BOX_HEAD.RES5HALVE = True  # False = VG res5: stride 1 + dilation 2 (14x14 RoI output)
    m.PROPOSAL_GENERATOR.HID_CHANNELS = -1  # RPN hidden conv width (512 in the Caffe VG model)
    m.LAITKIT = CN()
    m.LAITKIT.TINY_BLOCKS = [1, 1, 1]  # blocks in res2..res4 of the tiny backbone
    m.LAITKIT.STEM_KERNEL = 7  # the tiny backbone's stem conv kernel
    m.LAITKIT.TINY_STRIDES = [1, 2, 2]  # first-block stride of res2..res4 (res4 at 1/16 by default)
    m.LAITKIT.RES5_BLOCKS = 3  # blocks in the C4 head's res5 (3 in every ResNet; 1 in the tiny detector)
    cfg.INPUT.MAX_ATTR_PER_INS = 16
    return cfg


def _head_kwargs(cfg: Any) -> dict[str, Any]:
    a = cfg.MODEL.ROI_ATTRIBUTE_HEAD
    return {
        "num_obj_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        "embed_dim": a.OBJ_EMBED_DIM,
        "fc_dim": a.FC_DIM,
        "num_attrs": a.NUM_CLASSES,
    }


class AttributePredictor(nn.Module):
    """Bottom-up-attention attribute head: [pooled feature ⊕ embed(object class)] → fc → ReLU → scores.

    Index 0 of the output is "no attribute"; attribute k of the vocabulary is output k + 1. The
    embedding has one row per object class plus background, as in the Caffe model.
    """

    def __init__(self, feat_dim: int, num_obj_classes: int, embed_dim: int, fc_dim: int, num_attrs: int) -> None:
        super().__init__()
        self.cls_embedding = nn.Embedding(num_obj_classes + 1, embed_dim)
        self.fc = nn.Linear(feat_dim + embed_dim, fc_dim)
        self.attr_score = nn.Linear(fc_dim, num_attrs)
        nn.init.normal_(self.cls_embedding.weight, std=0.01)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.normal_(self.attr_score.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)
        nn.init.zeros_(self.attr_score.bias)

    def forward(self, feats: torch.Tensor, obj_labels: torch.Tensor) -> torch.Tensor:
        x = torch.cat([feats, self.cls_embedding(obj_labels)], dim=1)
        return self.attr_score(F.relu(self.fc(x)))

    def loss(self, logits: torch.Tensor, gt_attrs: torch.Tensor) -> torch.Tensor:
        """Soft-target cross-entropy: mass spread over the gold attributes, or on 0 when there are none.

        `gt_attrs` is (R, num_attrs) multi-hot with column 0 unused.
        """
        target = gt_attrs.float().clone()
        target[:, 0] = (target[:, 1:].sum(dim=1) == 0).float()
        target = target / target.sum(dim=1, keepdim=True)
        return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _attr_loss(predictor: AttributePredictor, feats: torch.Tensor, proposals: list, num_classes: int,
               weight: float) -> dict[str, torch.Tensor]:
    """Attribute loss on foreground proposals that carry `gt_attributes` (the gold object class is the input)."""
    gt_classes = torch.cat([p.gt_classes for p in proposals])
    fg = (gt_classes >= 0) & (gt_classes < num_classes)
    if not proposals or not proposals[0].has("gt_attributes") or not bool(fg.any()):
        return {"loss_attr": feats.sum() * 0.0}
    gt_attrs = torch.cat([p.gt_attributes for p in proposals])[fg]
    logits = predictor(feats[fg], gt_classes[fg])
    return {"loss_attr": predictor.loss(logits, gt_attrs) * weight}


def register_components() -> None:
    """Register our ROI heads and backbones with detectron2 (idempotent; call before building a model)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _require_detectron2()
    from detectron2.config import configurable
    from detectron2.layers import ShapeSpec
    from detectron2.modeling import BACKBONE_REGISTRY, ROI_HEADS_REGISTRY
    from detectron2.modeling.backbone import FPN
    from detectron2.modeling.backbone.fpn import LastLevelMaxPool
    from detectron2.modeling.backbone.resnet import BasicStem, BottleneckBlock, ResNet, build_resnet_backbone
    from detectron2.modeling.roi_heads import Res5ROIHeads, StandardROIHeads

    class CaffeMaxPoolStem(BasicStem):
        """BasicStem with the Caffe max-pool (kernel 3, stride 2, pad 0, ceil mode) of the VG R101."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu_(self.conv1(x))
            return F.max_pool2d(x, kernel_size=3, stride=2, padding=0, ceil_mode=True)

    def build_laitkit_resnet_backbone(cfg: Any, input_shape: ShapeSpec) -> Any:
        backbone = build_resnet_backbone(cfg, input_shape)
        if cfg.MODEL.CAFFE_MAXPOOL:
            backbone.stem.__class__ = CaffeMaxPoolStem
        return backbone

    def _tiny_resnet(cfg: Any, input_shape: ShapeSpec, out_features: list[str]) -> Any:
        r = cfg.MODEL.RESNETS
        norm = r.NORM
        stem = BasicStem(in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=norm)
        k = int(cfg.MODEL.LAITKIT.STEM_KERNEL)
        if k != 7:  # a cheaper stem: same stride, smaller kernel
            from detectron2.layers import Conv2d, get_norm

            stem.conv1 = Conv2d(input_shape.channels, r.STEM_OUT_CHANNELS, kernel_size=k, stride=2, padding=k // 2,
                                bias=False, norm=get_norm(norm, r.STEM_OUT_CHANNELS))
        in_ch, out_ch, bott = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS, r.NUM_GROUPS * r.WIDTH_PER_GROUP
        stages = []
        strides = list(cfg.MODEL.LAITKIT.TINY_STRIDES)
        for i, n in enumerate(cfg.MODEL.LAITKIT.TINY_BLOCKS):
            stages.append(
                ResNet.make_stage(
                    BottleneckBlock, n, stride_per_block=[int(strides[i])] + [1] * (n - 1),
                    in_channels=in_ch, out_channels=out_ch, bottleneck_channels=bott,
                    num_groups=r.NUM_GROUPS, norm=norm, stride_in_1x1=r.STRIDE_IN_1X1,
                )
            )
            in_ch, out_ch, bott = out_ch, out_ch * 2, bott * 2
        return ResNet(stem, stages, out_features=out_features, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)

    def build_laitkit_tiny_backbone(cfg: Any, input_shape: ShapeSpec) -> Any:
        return _tiny_resnet(cfg, input_shape, list(cfg.MODEL.RESNETS.OUT_FEATURES))

    def build_laitkit_tiny_fpn_backbone(cfg: Any, input_shape: ShapeSpec) -> Any:
        bottom_up = _tiny_resnet(cfg, input_shape, list(cfg.MODEL.FPN.IN_FEATURES))
        top = LastLevelMaxPool()
        top.in_feature = "p4"  # three stages: the extra level pools the last one
        return FPN(
            bottom_up=bottom_up, in_features=cfg.MODEL.FPN.IN_FEATURES, out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
            norm=cfg.MODEL.FPN.NORM, top_block=top, fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
        )

    for fn in (build_laitkit_resnet_backbone, build_laitkit_tiny_backbone, build_laitkit_tiny_fpn_backbone):
        if fn.__name__ not in BACKBONE_REGISTRY:
            BACKBONE_REGISTRY.register(fn)

    class _AttributeHeads:
        """What both head families share: the optional attribute head and the training step
        (box losses on the pooled features, plus the attribute loss on the same features)."""

        @configurable
        def __init__(self, *, attribute_predictor: AttributePredictor | None = None, attr_loss_weight: float = 0.2,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.attribute_predictor = attribute_predictor
            self.attr_loss_weight = attr_loss_weight

        @property
        def feature_dim(self) -> int:
            return int(self.box_predictor.cls_score.in_features)

        def forward(self, images: Any, features: dict[str, torch.Tensor], proposals: list, targets: Any = None) -> Any:
            if not self.training:
                return super().forward(images, features, proposals, targets)
            proposals = self.label_and_sample_proposals(proposals, targets)
            pooled = self.pooled_features(features, [p.proposal_boxes for p in proposals])
            losses = self.box_predictor.losses(self.box_predictor(pooled), proposals)
            if self.attribute_predictor is not None:
                losses.update(_attr_loss(self.attribute_predictor, pooled, proposals, self.num_classes,
                                         self.attr_loss_weight))
            return [], losses

    class LaitkitAttrRes5ROIHeads(_AttributeHeads, Res5ROIHeads):
        """C4 heads: res5 on RoI-pooled res4 + mean pool; optional attribute head and VG res5 geometry."""

        @classmethod
        def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
            ret = super().from_config(cfg, input_shape)
            if not cfg.MODEL.ROI_BOX_HEAD.RES5HALVE:  # Caffe VG R101: res5 keeps resolution, dilated
                res5 = ret["res5"]
                res5[0].conv1.stride = (1, 1)  # the stride sits in conv1 or conv2 (STRIDE_IN_1X1)
                res5[0].shortcut.stride = (1, 1)
                for block in res5:
                    block.conv2.stride = (1, 1)
                    block.conv2.padding = (2, 2)
                    block.conv2.dilation = (2, 2)
            out_channels = cfg.MODEL.RESNETS.RES2_OUT_CHANNELS * 8
            if cfg.MODEL.ATTRIBUTE_ON:
                ret["attribute_predictor"] = AttributePredictor(out_channels, **_head_kwargs(cfg))
            ret["attr_loss_weight"] = cfg.MODEL.ROI_ATTRIBUTE_HEAD.LOSS_WEIGHT
            return ret

        @classmethod
        def _build_res5_block(cls, cfg: Any) -> tuple[nn.Module, int]:
            blocks, out_channels = super()._build_res5_block(cfg)
            n = int(cfg.MODEL.LAITKIT.RES5_BLOCKS)
            return (blocks if n >= len(blocks) else nn.Sequential(*list(blocks)[:n])), out_channels

        def pooled_features(self, features: dict[str, torch.Tensor], boxes: list) -> torch.Tensor:
            """(R, C) features for boxes (`Boxes` per image, input coordinates): res5 + spatial mean."""
            return self._shared_roi_transform([features[f] for f in self.in_features], boxes).mean(dim=[2, 3])

    class LaitkitAttrStandardROIHeads(_AttributeHeads, StandardROIHeads):
        """FPN heads: the box head's output is the region feature; optional attribute head."""

        @classmethod
        def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
            ret = super().from_config(cfg, input_shape)
            if cfg.MODEL.ATTRIBUTE_ON:
                dim = ret["box_head"].output_shape.channels
                ret["attribute_predictor"] = AttributePredictor(dim, **_head_kwargs(cfg))
            ret["attr_loss_weight"] = cfg.MODEL.ROI_ATTRIBUTE_HEAD.LOSS_WEIGHT
            return ret

        def pooled_features(self, features: dict[str, torch.Tensor], boxes: list) -> torch.Tensor:
            return self.box_head(self.box_pooler([features[f] for f in self.box_in_features], boxes))

    for klass in (LaitkitAttrRes5ROIHeads, LaitkitAttrStandardROIHeads):
        if klass.__name__ not in ROI_HEADS_REGISTRY:
            ROI_HEADS_REGISTRY.register(klass)
    _REGISTERED = True


# --- presets ------------------------------------------------------------------------------------


def _base_cfg() -> Any:
    from detectron2.config import get_cfg

    cfg = add_laitkit_config(get_cfg())
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.MASK_ON = False
    return cfg


def vg_r101_c4_cfg() -> Any:
    """The bottom-up-attention Visual Genome layout: R101-C4, Caffe max-pool, 1600 objects, 400 attributes."""
    cfg = _base_cfg()
    m = cfg.MODEL
    m.META_ARCHITECTURE = "GeneralizedRCNN"
    m.BACKBONE.NAME = "build_laitkit_resnet_backbone"
    m.RESNETS.DEPTH = 101
    m.RESNETS.OUT_FEATURES = ["res4"]
    m.RESNETS.STRIDE_IN_1X1 = True
    m.CAFFE_MAXPOOL = True
    m.PIXEL_MEAN = [102.9801, 115.9465, 122.7717]  # Caffe BGR means, std 1
    m.PIXEL_STD = [1.0, 1.0, 1.0]
    cfg.INPUT.FORMAT = "BGR"
    m.RPN.IN_FEATURES = ["res4"]
    m.RPN.PRE_NMS_TOPK_TEST = 6000
    m.RPN.POST_NMS_TOPK_TEST = 300
    m.RPN.NMS_THRESH = 0.7
    m.RPN.CONV_DIMS = [512]
    m.PROPOSAL_GENERATOR.HID_CHANNELS = 512
    m.ANCHOR_GENERATOR.SIZES = [[64, 128, 256, 512]]
    m.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    m.ROI_HEADS.NAME = RES5_HEADS
    m.ROI_HEADS.IN_FEATURES = ["res4"]
    m.ROI_HEADS.NUM_CLASSES = 1600
    m.ROI_BOX_HEAD.POOLER_TYPE = "ROIPool"
    m.ROI_BOX_HEAD.POOLER_RESOLUTION = 14
    m.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0
    m.ROI_BOX_HEAD.RES5HALVE = False
    m.ATTRIBUTE_ON = True
    m.ROI_ATTRIBUTE_HEAD.NUM_CLASSES = 401
    cfg.INPUT.MIN_SIZE_TEST = 600
    cfg.INPUT.MAX_SIZE_TEST = 1000
    return cfg


def tiny_c4_cfg(num_classes: int = 8, num_attrs: int = 9) -> Any:
    """The project's CPU-trainable detector: a 3-stage narrow ResNet, C4 heads, 256-d region features."""
    cfg = _base_cfg()
    m = cfg.MODEL
    m.META_ARCHITECTURE = "GeneralizedRCNN"
    m.BACKBONE.NAME = "build_laitkit_tiny_backbone"
    m.BACKBONE.FREEZE_AT = 0
    m.RESNETS.NORM = "BN"
    m.RESNETS.STEM_OUT_CHANNELS = 16
    m.RESNETS.RES2_OUT_CHANNELS = 32
    m.RESNETS.NUM_GROUPS = 1
    m.RESNETS.WIDTH_PER_GROUP = 8
    m.RESNETS.STRIDE_IN_1X1 = False
    m.RESNETS.OUT_FEATURES = ["res4"]
    m.LAITKIT.TINY_BLOCKS = [1, 1, 1]
    m.LAITKIT.RES5_BLOCKS = 1
    m.LAITKIT.STEM_KERNEL = 3
    m.LAITKIT.TINY_STRIDES = [1, 2, 1]  # res4 at 1/8: shape outlines need the finer grid
    m.PIXEL_MEAN = [123.675, 116.28, 103.53]
    m.PIXEL_STD = [58.395, 57.12, 57.375]
    cfg.INPUT.FORMAT = "RGB"
    m.RPN.IN_FEATURES = ["res4"]
    m.RPN.PRE_NMS_TOPK_TRAIN = 1000
    m.RPN.POST_NMS_TOPK_TRAIN = 200
    m.RPN.PRE_NMS_TOPK_TEST = 600
    m.RPN.POST_NMS_TOPK_TEST = 100
    m.RPN.BATCH_SIZE_PER_IMAGE = 128
    m.ANCHOR_GENERATOR.SIZES = [[32, 64, 128]]
    m.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    m.ROI_HEADS.NAME = RES5_HEADS
    m.ROI_HEADS.IN_FEATURES = ["res4"]
    m.ROI_HEADS.NUM_CLASSES = num_classes
    m.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    m.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignV2"
    m.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    m.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 2
    m.ROI_BOX_HEAD.RES5HALVE = False  # res5 keeps the 7x7 grid (stride 1, dilation 2), as the VG model
    m.ATTRIBUTE_ON = True
    m.ROI_ATTRIBUTE_HEAD.OBJ_EMBED_DIM = 32
    m.ROI_ATTRIBUTE_HEAD.FC_DIM = 64
    m.ROI_ATTRIBUTE_HEAD.NUM_CLASSES = num_attrs
    m.ROI_ATTRIBUTE_HEAD.LOSS_WEIGHT = 0.5
    cfg.INPUT.MIN_SIZE_TEST = 256
    cfg.INPUT.MAX_SIZE_TEST = 448
    return cfg


def tiny_fpn_cfg(num_classes: int = 8, num_attrs: int = 9) -> Any:
    """The tiny backbone with an FPN and a 2-fc box head: exercises the FPN code path cheaply."""
    cfg = tiny_c4_cfg(num_classes, num_attrs)
    m = cfg.MODEL
    m.BACKBONE.NAME = "build_laitkit_tiny_fpn_backbone"
    m.LAITKIT.TINY_STRIDES = [1, 2, 2]  # FPN levels must halve in resolution
    m.FPN.IN_FEATURES = ["res2", "res3", "res4"]
    m.FPN.OUT_CHANNELS = 32
    m.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    m.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128]]
    m.ROI_HEADS.NAME = STANDARD_HEADS
    m.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    m.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    m.ROI_BOX_HEAD.NUM_FC = 2
    m.ROI_BOX_HEAD.FC_DIM = 128
    m.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    return cfg


def read_yaml_safely(path: Path, depth: int = 0) -> dict[str, Any]:
    """A detectron2 YAML and its `_BASE_` chain as one dict, with `yaml.safe_load` only.

    detectron2's own `merge_from_file` falls back to `yaml.unsafe_load` (which runs code named
    in the file) and opens `_BASE_` through a path manager that also fetches URLs; a config is
    data, so here a tag that is not plain YAML or a non-local base is a user error.
    """
    import yaml

    if depth > 8:
        raise UserError(f"{path}: _BASE_ chain deeper than 8 files")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not plain YAML (only safe YAML is read): {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level must be a mapping")
    bases = data.pop("_BASE_", None)
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases or []):
        if "://" in str(base):
            raise UserError(f"{path}: _BASE_ {base!r} is not a local file")
        bp = Path(str(base)).expanduser()
        bp = bp if bp.is_absolute() else path.parent / bp
        if not bp.is_file():
            raise UserError(f"{path}: _BASE_ {base!r} not found")
        merged = _merge_dicts(merged, read_yaml_safely(bp, depth + 1))
    return _merge_dicts(merged, data)


def _merge_dicts(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge_dicts(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_yaml_cfg(path: str) -> Any:
    """A user's detectron2 YAML, with the bottom-up-attention keys declared and head names aliased."""
    from detectron2.config import CfgNode

    p = Path(path)
    if not p.is_file():
        raise UserError(f"detectron2 config not found: {path}")
    data = read_yaml_safely(p)
    data.pop("VERSION", None)
    cfg = _base_cfg()
    cfg.set_new_allowed(True)
    cfg.merge_from_other_cfg(CfgNode(data))
    cfg.set_new_allowed(False)
    box = cfg.MODEL.ROI_BOX_HEAD
    if box.get("ATTR", False):  # py-bottom-up-attention spells the attribute head ROI_BOX_HEAD.ATTR / NUM_ATTRS
        cfg.MODEL.ATTRIBUTE_ON = True
        if "NUM_ATTRS" in box:
            cfg.MODEL.ROI_ATTRIBUTE_HEAD.NUM_CLASSES = int(box.NUM_ATTRS) + 1
    m = cfg.MODEL
    if m.ROI_HEADS.NAME in HEAD_ALIASES:
        m.ROI_HEADS.NAME = HEAD_ALIASES[m.ROI_HEADS.NAME]
    if m.BACKBONE.NAME == "build_resnet_backbone":
        m.BACKBONE.NAME = "build_laitkit_resnet_backbone"  # same ResNet + CAFFE_MAXPOOL support
    if m.PROPOSAL_GENERATOR.HID_CHANNELS > 0 and list(m.RPN.CONV_DIMS) == [-1]:
        m.RPN.CONV_DIMS = [int(m.PROPOSAL_GENERATOR.HID_CHANNELS)]
    if m.ROI_HEADS.NAME not in (RES5_HEADS, STANDARD_HEADS):
        raise UserError(f"{path}: ROI_HEADS.NAME {m.ROI_HEADS.NAME!r} is not a Faster R-CNN C4/FPN head laitkit knows")
    return cfg


# --- weights ------------------------------------------------------------------------------------


def _rename_attr_keys(state: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in state.items():
        for old, new in ATTR_KEY_ALIASES:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def read_checkpoint(path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights as a state dict, plus any metadata stored with them.

    `.pth`/`.pt` are read with `torch.load(weights_only=True)`: no code runs. `.pkl` is Python
    pickle, which can execute code while loading; laitkit unpickles only a `.pkl` the user named
    explicitly (the Detectron/Caffe-converted bottom-up-attention checkpoints are only published
    as pickles). Convert once with `laitkit`-independent tools if in doubt.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"weights not found: {path}")
    meta: dict[str, Any] = {}
    if p.suffix == ".pkl":
        log.warning("unpickling %s: pickle can run code; only load .pkl files you trust", path)
        with p.open("rb") as f:
            data = pickle.load(f, encoding="latin1")
        if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
            data = data["model"]
        if isinstance(data, dict) and "blobs" in data:
            data = data["blobs"]
    else:
        data = torch.load(str(p), map_location="cpu", weights_only=True)
        if isinstance(data, dict) and isinstance(data.get("meta"), dict):
            meta = data["meta"]
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            data = data["model"]
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a state dict")
    state = {k: torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v
             for k, v in data.items() if isinstance(v, np.ndarray | torch.Tensor)}
    return _rename_attr_keys(state), meta


def compare_state(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Names a checkpoint lacks (`missing`), has extra (`unexpected`) or shapes differently (`mismatched`)
    against `model`, after our attribute-key renaming; `num_batches_tracked` counters are ignored."""
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    return {
        "missing": sorted(set(own) - set(state)),
        "unexpected": sorted(set(state) - set(own)),
        "mismatched": sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)),
    }


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict; exact names first, detectron2's suffix-matching heuristics for foreign names."""
    own = model.state_dict()
    if set(state) <= set(own) and all(state[k].shape == own[k].shape for k in state):
        missing = sorted(set(own) - set(state))
        model.load_state_dict(state, strict=False)
    else:
        from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts

        own_copy = {k: v.clone() for k, v in own.items()}
        align_and_update_state_dicts(own_copy, state, c2_conversion=False)
        model.load_state_dict(own_copy, strict=False)
        missing = [k for k in own if torch.equal(own_copy[k], own[k]) and k not in state]
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing:
        log.warning("%s: %d parameters not in the checkpoint (kept random), e.g. %s", source, len(missing),
                    missing[:3])


def fuse_conv_bn(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm / FrozenBatchNorm that follows a detectron2 `Conv2d` into it.

    Inference-only and numerically equivalent (up to float rounding): ~15% of CPU time in the tiny
    detector is BatchNorm. Returns how many convolutions were fused.
    """
    from detectron2.layers import Conv2d, FrozenBatchNorm2d

    n = 0
    for m in model.modules():
        norm = getattr(m, "norm", None)
        if not isinstance(m, Conv2d) or not isinstance(norm, nn.BatchNorm2d | FrozenBatchNorm2d):
            continue
        if isinstance(norm, nn.BatchNorm2d) and norm.training:
            continue
        with torch.no_grad():
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            bias = norm.bias - norm.running_mean * scale
            if m.bias is not None:
                bias = bias + m.bias * scale
            m.weight.copy_(m.weight * scale.reshape(-1, 1, 1, 1))
            m.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        m.norm = None
        n += 1
    return n


def stabilise_random_init(model: nn.Module) -> int:
    """Zero the last norm scale of every residual block (the "zero-init residual" trick).

    For random-weight models only: without trained normalisation statistics, 100 random conv
    layers multiply activations until they overflow, the RPN then returns no finite proposals,
    and a speed measurement would time an empty head. With each residual branch starting at
    zero, activations stay finite and every stage does its full amount of work.
    """
    from detectron2.layers import FrozenBatchNorm2d

    n = 0
    for m in model.modules():
        conv3 = getattr(m, "conv3", None)
        norm = getattr(conv3, "norm", None)
        if isinstance(norm, FrozenBatchNorm2d):
            norm.weight.zero_()
            n += 1
        elif isinstance(norm, nn.BatchNorm2d):
            with torch.no_grad():
                norm.weight.zero_()
            n += 1
    return n


def build_model(cfg: Any, device: str) -> nn.Module:
    """An eval-mode GeneralizedRCNN on `device` from a detectron2 cfg (our components registered)."""
    register_components()
    from detectron2.modeling import build_model as d2_build

    cfg = cfg.clone()
    cfg.MODEL.DEVICE = device
    model = d2_build(cfg)
    model.eval()
    return model
