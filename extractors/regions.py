"""Region features for vision-language pretraining: batched detectron2 Faster R-CNN, BUTD box selection.

Why this module: LXMERT, UNITER, VisualBERT and Oscar consume per image 10-100 boxes with a pooled
RoI feature, an object label and an attribute label each, selected the way the Caffe
bottom-up-attention extractor did. Existing extractors run one image at a time, hard-code CUDA,
write attributes as zeros, or have no path for given boxes. `RegionExtractor` runs any detectron2
Faster R-CNN (C4 or FPN, see `det2_model`) on batches of images on CPU or CUDA and returns the
schema's `Regions` per image, or an error string (a recorded verdict) for an image it cannot read.

The pipeline per batch: decode (PIL, JPEG draft mode for big images) → resize shortest side to
`min_size` capped at `max_size` → one padded batch through backbone and RPN → pooled features of
all proposals → class probabilities and class-specific boxes → per image BUTD selection
(`regions_select`: "caffe", generate_tsv.py's rule on the proposals, whose boxes and pooled
features are reported; or "refined", NMS on regressed boxes, whose features are re-pooled, so a
box's feature is the same whether it was detected or given) → attributes from the attribute head
on [feature ⊕ embed(object class)] → top-k class distribution. Boxes come back in original-image
pixels. `mode: grid` replaces detection by a grid of cells; images below `min_image_side` get a
`too_small` verdict.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from laitkit.datasets.schema import Reason, Regions
from laitkit.errors import UserError
from laitkit.extractors.regions_select import caffe_select, select_boxes, soft_topk

__all__ = ["RegionExtractor", "RegionsConfig", "caffe_select", "decode_image", "failure_reason", "grid_boxes",
           "select_boxes", "soft_topk", "too_small_reason"]

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TINY_WEIGHTS = WEIGHTS_DIR / "tiny_synth_c4.pth"
VG_OBJECTS = WEIGHTS_DIR / "vg_objects_vocab.txt"
VG_ATTRIBUTES = WEIGHTS_DIR / "vg_attributes_vocab.txt"
PRESETS = ("tiny", "random-tiny", "random-tiny-fpn", "random-r101-c4")
SELECTIONS = ("auto", "caffe", "refined")
VG_NUM_CLASSES = 1600


@dataclass(frozen=True, kw_only=True)
class RegionsConfig:
    """How to build the detector and select boxes; defaults are bottom-up-attention's.

    `config`: "tiny" (the project's detector trained on the synthetic web, shipped weights),
    "random-tiny" / "random-tiny-fpn" (same shapes, random weights), "random-r101-c4" (the BUTD
    Visual Genome layout with random weights, for timing), or a path to a detectron2 YAML.
    `weights`: a `.pth` (read with `torch.load(weights_only=True)`) or a `.pkl` (Python pickle: can
    run code, read only because the user named it). `box_mode`: "regressed" reports the
    class-specific regressed box and re-pools its feature; "proposal" reports the RoI itself, as
    the Caffe extractor did. `amp` uses float16 autocast on CUDA.
    """

    config: str = "tiny"
    weights: str | None = None
    device: str = "auto"
    min_boxes: int = 10
    max_boxes: int = 100
    conf_thresh: float = 0.2
    nms_thresh: float = 0.3
    fixed_boxes: int | None = None
    attr_thresh: float = 0.1
    min_size: int | None = None  # None: the detector's own (600 for the VG layout, 256 for tiny)
    max_size: int | None = None  # None: the detector's own (1000 for the VG layout, 448 for tiny)
    batch_size: int = 4
    object_vocab: str | None = None
    attribute_vocab: str | None = None
    box_mode: str = "regressed"
    amp: bool = True
    fuse_bn: bool = True  # fold BatchNorm into convolutions after loading (inference only, same numbers)
    seed: int = 0  # initialisation of random-weight presets
    # "caffe": generate_tsv.py's rule (NMS on proposals, proposal boxes and features, original order);
    # "refined": NMS on class-specific regressed boxes, sorted by confidence, `box_mode` decides the
    # reported box; "auto": caffe for the Visual Genome layout (1600 classes), refined otherwise.
    selection: str = "auto"
    mode: str = "detector"  # "detector" | "grid": backbone features of a grid_size x grid_size grid, no detector
    grid_size: int = 8
    soft_topk: int = 32  # classes of each box's distribution kept in the shards (0: none); densified on export
    min_image_side: int = 32  # images whose shorter side is below this get a `too_small` verdict (0: off)

    def __post_init__(self) -> None:
        if not 0 <= self.min_boxes <= self.max_boxes:
            raise UserError(f"regions: need 0 <= min_boxes ({self.min_boxes}) <= max_boxes ({self.max_boxes})")
        if self.fixed_boxes is not None and self.fixed_boxes < 1:
            raise UserError(f"regions: fixed_boxes must be >= 1, got {self.fixed_boxes}")
        if not (0.0 <= self.conf_thresh <= 1.0 and 0.0 < self.nms_thresh <= 1.0 and 0.0 <= self.attr_thresh <= 1.0):
            raise UserError("regions: conf_thresh, nms_thresh and attr_thresh must lie in [0, 1]")
        lo, hi = self.min_size or 1, self.max_size or 10**9
        if lo < 1 or hi < lo:
            raise UserError(f"regions: need 1 <= min_size ({self.min_size}) <= max_size ({self.max_size})")
        if self.batch_size < 1:
            raise UserError("regions: batch_size must be >= 1")
        if self.box_mode not in ("regressed", "proposal"):
            raise UserError(f"regions: box_mode must be 'regressed' or 'proposal', got {self.box_mode!r}")
        if self.selection not in SELECTIONS:
            raise UserError(f"regions: selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.mode not in ("detector", "grid"):
            raise UserError(f"regions: mode must be 'detector' or 'grid', got {self.mode!r}")
        if self.grid_size < 1 or self.soft_topk < 0 or self.min_image_side < 0:
            raise UserError("regions: need grid_size >= 1, soft_topk >= 0 and min_image_side >= 0")
        if self.config not in PRESETS and not self.config.endswith((".yaml", ".yml")):
            raise UserError(f"regions: config must be one of {PRESETS} or a detectron2 .yaml path, got {self.config!r}")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"regions: device {device!r} requested but CUDA is not available")
    return device


def read_vocab(path: str | Path) -> list[str]:
    """One class per line in model order; the first of comma-separated synonyms is the display name."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.split(",")[0].strip() for ln in lines if ln.strip()]


# --- decoding -----------------------------------------------------------------------------------


@dataclass
class Decoded:
    """An RGB uint8 image (possibly decoded at reduced size) and the original image's size."""

    rgb: np.ndarray
    orig_h: int
    orig_w: int


def target_size(h: int, w: int, min_size: int, max_size: int) -> tuple[int, int]:
    """detectron2's ResizeShortestEdge: shortest side to `min_size` unless the longest passes `max_size`."""
    scale = min_size / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def decode_image(data: bytes | bytearray | memoryview | np.ndarray, min_size: int, max_size: int) -> Decoded | str:
    """Decode one image, or return why not ("decode_error: ...") — never raises for bad input."""
    try:
        if isinstance(data, np.ndarray):
            return _decode_array(data)
        raw = bytes(data)
        if not raw:
            return "decode_error: empty image bytes"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                w, h = im.size
                orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
                if orientation in (5, 6, 7, 8):
                    h, w = w, h
                if w < 1 or h < 1:
                    return f"decode_error: empty image {w}x{h}"
                th, tw = target_size(h, w, min_size, max_size)
                if im.format == "JPEG":  # decode big JPEGs at a reduced DCT scale: ~8x less work
                    im.draft("RGB", (tw, th) if orientation not in (5, 6, 7, 8) else (th, tw))
                im.load()
                im = ImageOps.exif_transpose(im) if orientation != 1 else im
                rgb = np.asarray(_to_rgb(im), dtype=np.uint8)
        return Decoded(np.ascontiguousarray(rgb), orig_h=h, orig_w=w)
    except Image.DecompressionBombError as exc:
        return f"decode_error: image too large ({exc})"
    except Exception as exc:  # PIL raises many types for corrupt/truncated data
        msg = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))  # keep verdicts reproducible
        return f"decode_error: {type(exc).__name__}: {msg}"[:300]


def _decode_array(arr: np.ndarray) -> Decoded | str:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        return f"decode_error: array of shape {arr.shape} is not HxW, HxWx1, HxWx3 or HxWx4"
    if arr.dtype != np.uint8:
        a = arr.astype(np.float32)
        if not np.isfinite(a).all():
            return "decode_error: array has NaN or inf"
        if a.max() <= 1.0:
            a = a * 255.0
        arr = np.clip(a, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (arr[:, :, :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    return Decoded(np.ascontiguousarray(arr), orig_h=int(arr.shape[0]), orig_w=int(arr.shape[1]))


def resize_rgb(img: Decoded, th: int, tw: int) -> np.ndarray:
    if img.rgb.shape[0] == th and img.rgb.shape[1] == tw:
        return img.rgb
    return np.asarray(Image.fromarray(img.rgb).resize((tw, th), Image.Resampling.BILINEAR))


# --- verdicts and grid ------------------------------------------------------------------------


def too_small_reason(h: int, w: int, min_side: int) -> str | None:
    """Why an image is too small to detect on, or None. A 1x1 image has no objects to find: a detector
    would still return `min_boxes` boxes of noise, so such images get a verdict instead."""
    if min_side and min(h, w) < min_side:
        return f"too_small: {w}x{h} image, shorter side below {min_side} px"
    return None


def failure_reason(error: str) -> Reason:
    """The verdict reason for an extractor error string (its prefix before the first colon)."""
    return Reason.TOO_SMALL if error.startswith("too_small") else Reason.REGIONS_ERROR


def grid_boxes(h: int, w: int, g: int) -> np.ndarray:
    """(g*g, 4) xyxy cells tiling an h x w image row by row: the boxes of grid features."""
    xs, ys = np.linspace(0, w, g + 1, dtype=np.float32), np.linspace(0, h, g + 1, dtype=np.float32)
    return np.array([[xs[j], ys[i], xs[j + 1], ys[i + 1]] for i in range(g) for j in range(g)], dtype=np.float32)


# --- extractor ----------------------------------------------------------------------------------


class RegionExtractor:
    """Batched region features with a detectron2 Faster R-CNN; one model per instance (one per Ray actor)."""

    def __init__(self, cfg: RegionsConfig = RegionsConfig()) -> None:
        import torch

        from laitkit.extractors import det2_model as dm

        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        dm.register_components()
        det_cfg, state, meta, name = self._resolve(cfg, dm)
        self.det_cfg = det_cfg
        with torch.random.fork_rng(devices=[]):  # random-weight presets initialise reproducibly, globals untouched
            torch.manual_seed(cfg.seed)
            self.model = dm.build_model(det_cfg, self.device)
        if state is not None:
            dm.load_weights(self.model, state, cfg.weights or str(TINY_WEIGHTS))
            self.model.to(self.device)
        else:
            dm.stabilise_random_init(self.model)  # random weights: keep activations finite (timing presets)
        self.model.eval()
        if cfg.fuse_bn:
            dm.fuse_conv_bn(self.model)
        # NHWC convolutions: +30% images/s on CPU (oneDNN) for the tiny detector, tensor-core friendly on GPU.
        self.model.to(memory_format=torch.channels_last)
        self.heads = self.model.roi_heads
        self.meta = meta
        self.detector = name
        self.bgr = det_cfg.INPUT.FORMAT == "BGR"
        self.num_classes = int(det_cfg.MODEL.ROI_HEADS.NUM_CLASSES)
        self.obj_names = self._vocab(cfg.object_vocab, meta.get("object_names"), self.num_classes, VG_OBJECTS, "object")
        attr_pred = getattr(self.heads, "attribute_predictor", None)
        self.num_attrs = int(attr_pred.attr_score.out_features) - 1 if attr_pred is not None else 0
        self.attr_names = self._vocab(cfg.attribute_vocab, meta.get("attribute_names"), self.num_attrs, VG_ATTRIBUTES,
                                      "attribute")
        min_test = det_cfg.INPUT.MIN_SIZE_TEST
        min_test = int(min_test[0] if isinstance(min_test, list | tuple) else min_test)
        self.min_size = int(cfg.min_size or min_test)
        self.max_size = int(cfg.max_size or max(det_cfg.INPUT.MAX_SIZE_TEST, self.min_size))
        self.selection = cfg.selection
        if self.selection == "auto":
            self.selection = "caffe" if self.num_classes == VG_NUM_CLASSES else "refined"

    # construction helpers

    @staticmethod
    def _resolve(cfg: RegionsConfig, dm: Any) -> tuple[Any, dict | None, dict, str]:
        """(detectron2 cfg, state dict or None for random, metadata, detector name) for `cfg`."""
        from detectron2.config import CfgNode

        state: dict | None = None
        meta: dict = {}
        if cfg.config == "tiny":
            path = cfg.weights or str(TINY_WEIGHTS)
            if not Path(path).is_file():
                raise UserError(
                    f"regions: tiny detector weights not found at {path}; train them with "
                    "`laitkit regions train-synthetic --out extractors/weights/tiny_synth_c4.pth`"
                )
            state, meta = dm.read_checkpoint(path)
            if "cfg_yaml" not in meta:
                raise UserError(f"regions: {path} carries no detector config; pass --config with a YAML")
            det_cfg = dm.add_laitkit_config(dm._base_cfg())
            det_cfg.merge_from_other_cfg(CfgNode.load_cfg(meta["cfg_yaml"]))
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]
            return det_cfg, state, meta, f"{meta.get('name', 'laitkit-tiny-c4')}@{digest}"
        if cfg.config == "random-tiny":
            from laitkit.extractors.regions_synth import synth_vocab

            objs, attrs = synth_vocab()
            det_cfg, name = dm.tiny_c4_cfg(len(objs), len(attrs) + 1), "random-tiny-c4"
            meta = {"object_names": objs, "attribute_names": attrs}
        elif cfg.config == "random-tiny-fpn":
            from laitkit.extractors.regions_synth import synth_vocab

            objs, attrs = synth_vocab()
            det_cfg, name = dm.tiny_fpn_cfg(len(objs), len(attrs) + 1), "random-tiny-fpn"
            meta = {"object_names": objs, "attribute_names": attrs}
        elif cfg.config == "random-r101-c4":
            det_cfg, name = dm.vg_r101_c4_cfg(), "random-r101-c4-vg"
        else:
            det_cfg, name = dm.load_yaml_cfg(cfg.config), Path(cfg.config).stem
        if cfg.weights:
            state, meta2 = dm.read_checkpoint(cfg.weights)
            meta = {**meta, **meta2}
            name = f"{name}:{Path(cfg.weights).name}"
        return det_cfg, state, meta, name

    @staticmethod
    def _vocab(path: str | None, names: list[str] | None, n: int, vg: Path, what: str) -> list[str]:
        if path:
            vocab = read_vocab(path)
        elif names:
            vocab = list(names)
        elif n == len(read_vocab(vg)):
            vocab = read_vocab(vg)
        else:
            vocab = [f"{what}_{i}" for i in range(n)]
        if len(vocab) != n:
            raise UserError(f"regions: {what} vocabulary has {len(vocab)} names but the model has {n} classes")
        return vocab

    # public API

    def extract(self, images: Sequence[bytes | np.ndarray]) -> list[Regions | str]:
        """Per image `Regions` (BUTD selection, or grid cells in grid mode), or an error string;
        bad images never break the batch."""
        return self._run(images, "grid" if self.cfg.mode == "grid" else None)

    def extract_given_boxes(
        self, images: Sequence[bytes | np.ndarray], boxes: Sequence[np.ndarray]
    ) -> list[Regions | str]:
        """Features, object and attribute predictions for user-given xyxy boxes in original-image pixels.

        Boxes are clipped to the image and scaled into the resized network input, then pooled by
        exactly the path detected boxes take.
        """
        if len(boxes) != len(images):
            raise ValueError(f"extract_given_boxes: {len(images)} images but {len(boxes)} box arrays")
        return self._run(images, boxes)

    # internals

    def _run(self, images: Sequence[bytes | np.ndarray], given: Sequence[np.ndarray] | str | None
             ) -> list[Regions | str]:
        out: list[Regions | str] = [""] * len(images)
        ready: list[tuple[int, Decoded, np.ndarray | None]] = []
        for i, data in enumerate(images):
            dec = decode_image(data, self.min_size, self.max_size)
            if isinstance(dec, str):
                out[i] = dec
                continue
            small = too_small_reason(dec.orig_h, dec.orig_w, self.cfg.min_image_side)
            if small:
                out[i] = small
                continue
            gb = None
            if isinstance(given, str):  # grid mode: the cells of this image
                gb = grid_boxes(dec.orig_h, dec.orig_w, self.cfg.grid_size)
            elif given is not None:
                gb = np.asarray(given[i], dtype=np.float32)
                if gb.size == 0:
                    gb = gb.reshape(0, 4)
                if gb.ndim != 2 or gb.shape[1] != 4 or not np.isfinite(gb).all():
                    out[i] = f"regions_error: given boxes must be a finite (N, 4) xyxy array, got {gb.shape}"
                    continue
            ready.append((i, dec, gb))
        # Similar aspect ratios share a batch: less padding, less wasted compute.
        ready.sort(key=lambda t: t[1].orig_h / t[1].orig_w)
        bs = self.cfg.batch_size
        for start in range(0, len(ready), bs):
            chunk = ready[start : start + bs]
            try:
                results = self._forward([c[1] for c in chunk], [c[2] for c in chunk] if given is not None else None)
            except Exception as exc:  # one bad image must not sink the others: retry one by one
                if len(chunk) == 1:
                    results = [f"regions_error: {type(exc).__name__}: {exc}"[:500]]
                    self._after_error()
                else:
                    self._after_error()
                    results = []
                    for c in chunk:
                        try:
                            results.extend(self._forward([c[1]], [c[2]] if given is not None else None))
                        except Exception as exc1:
                            results.append(f"regions_error: {type(exc1).__name__}: {exc1}"[:500])
                            self._after_error()
            for (i, _, _), res in zip(chunk, results, strict=True):
                out[i] = res
        return out

    def _after_error(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.device.startswith("cuda") and self.cfg.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _forward(self, imgs: list[Decoded], given: list[np.ndarray | None] | None) -> list[Regions]:
        import torch
        from detectron2.structures import Boxes

        sizes = [target_size(d.orig_h, d.orig_w, self.min_size, self.max_size) for d in imgs]
        inputs = []
        for d, (th, tw) in zip(imgs, sizes, strict=True):
            arr = resize_rgb(d, th, tw)
            if self.bgr:
                arr = arr[:, :, ::-1]
            inputs.append({"image": torch.from_numpy(np.array(arr, copy=True, order="C")).permute(2, 0, 1)})
        # per image (sx, sy): resized-input pixels per original pixel
        scales = [torch.tensor([tw / d.orig_w, th / d.orig_h] * 2) for d, (th, tw) in zip(imgs, sizes, strict=True)]
        model, heads = self.model, self.heads
        with torch.inference_mode(), self._autocast():
            images = model.preprocess_image(inputs)
            features = model.backbone(images.tensor)
            if given is None:
                proposals, _ = model.proposal_generator(images, features, None)
                sel = self._select(features, proposals, imgs, scales)
            else:
                sel = []
                for d, gb in zip(imgs, given, strict=True):
                    assert gb is not None
                    b = torch.from_numpy(gb.copy())
                    b[:, 0::2] = b[:, 0::2].clamp(0, d.orig_w)
                    b[:, 1::2] = b[:, 1::2].clamp(0, d.orig_h)
                    sel.append(_Selected(b))
            # Features for exactly the reported boxes, through one shared pooling path (Caffe
            # selection brings its proposals' own features, as generate_tsv.py stored pool5 of the RoIs).
            repool = [j for j, x in enumerate(sel) if x.features is None and len(x.boxes)]
            if repool:
                in_boxes = [Boxes((sel[j].boxes * scales[j]).to(self.device)) for j in repool]
                pooled = heads.pooled_features(features, in_boxes).float()
                offset = 0
                for j, b in zip(repool, in_boxes, strict=True):
                    sel[j].features = pooled[offset : offset + len(b)]
                    offset += len(b)
            for x in sel:
                if x.features is None:
                    x.features = torch.zeros((0, heads.feature_dim), device=self.device)
            if given is not None:
                todo = [x for x in sel if len(x.boxes)]
                if todo:
                    logits, _ = heads.box_predictor(torch.cat([x.features for x in todo]))
                    probs = torch.softmax(logits.float(), dim=1)
                    offset = 0
                    for x in todo:
                        x.probs = probs[offset : offset + len(x.boxes)]
                        offset += len(x.boxes)
                        x.conf, x.cls = x.probs[:, : self.num_classes].max(dim=1)
            return [self._to_regions(x, d) for x, d in zip(sel, imgs, strict=True)]

    def _to_regions(self, x: _Selected, d: Decoded) -> Regions:
        """One image's selected boxes as `Regions`: attributes from [feature ⊕ embed(class)], top-k classes."""
        import torch

        n = len(x.boxes)
        attr_pred = getattr(self.heads, "attribute_predictor", None)
        cls = x.cls if x.cls is not None else torch.zeros(n, dtype=torch.long)
        conf = x.conf if x.conf is not None else torch.zeros(n)
        if attr_pred is not None and n:
            ap = torch.softmax(attr_pred(x.features, cls.to(self.device)).float(), dim=1)[:, 1:]
            a_conf, a_id = ap.max(dim=1)
            a_id = torch.where(a_conf >= self.cfg.attr_thresh, a_id, torch.full_like(a_id, -1))
        else:
            a_conf = torch.zeros(n)
            a_id = torch.full((n,), -1, dtype=torch.long)
        obj = cls.cpu().numpy().astype(np.int64)
        att = a_id.cpu().numpy().astype(np.int64)
        probs = x.probs if x.probs is not None else torch.zeros((n, self.num_classes + 1))
        soft = soft_topk(probs, self.cfg.soft_topk)
        return Regions(
            detector=self.detector,
            image_h=d.orig_h,
            image_w=d.orig_w,
            boxes=x.boxes.cpu().numpy().astype(np.float32),
            features=x.features.float().cpu().numpy().astype(np.float16),
            obj_ids=obj,
            obj_conf=conf.float().cpu().numpy(),
            attr_ids=att,
            attr_conf=a_conf.float().cpu().numpy(),
            obj_names=[self.obj_names[o] for o in obj],
            attr_names=[self.attr_names[a] if a >= 0 else "" for a in att],
            box_conf=x.box_conf.float().cpu().numpy() if x.box_conf is not None else None,
            soft_ids=soft[0] if soft else None,
            soft_probs=soft[1] if soft else None,
        )

    def _select(self, features: dict, proposals: list, imgs: list[Decoded], scales: list) -> list[_Selected]:
        """Run the box head on all proposals of the batch and select boxes per image (Caffe or refined).

        Boxes come back in original pixels, (N, 4) float32 on CPU.
        """
        import torch

        heads = self.heads
        prop_boxes = [p.proposal_boxes for p in proposals]
        total = sum(len(b) for b in prop_boxes)
        if total == 0:
            return [_Selected(torch.zeros((0, 4))) for _ in imgs]
        pooled = heads.pooled_features(features, prop_boxes)
        logits, deltas = heads.box_predictor(pooled)
        probs = torch.softmax(logits.float(), dim=1)
        cat_props = torch.cat([b.tensor for b in prop_boxes]).float()
        pred = heads.box_predictor.box2box_transform.apply_deltas(deltas.float(), cat_props)
        out = []
        start = 0
        for p, d, s in zip(proposals, imgs, scales, strict=True):
            r = len(p)
            pr, bx, props = probs[start : start + r], pred[start : start + r], cat_props[start : start + r]
            feats = pooled[start : start + r]
            start += r
            if r == 0:
                out.append(_Selected(torch.zeros((0, 4))))
                continue
            if self.selection == "caffe":
                out.append(self._select_caffe(pr, props, feats, d, s))
                continue
            h, w = p.image_size
            bx = bx.view(r, -1, 4)
            if bx.shape[1] == 1:  # class-agnostic regression
                bx = bx.expand(r, self.num_classes, 4)
            bx = torch.stack([bx[..., 0].clamp(0, w), bx[..., 1].clamp(0, h), bx[..., 2].clamp(0, w),
                              bx[..., 3].clamp(0, h)], dim=-1)
            idx, cls, conf, max_conf = select_boxes(
                bx, pr, conf_thresh=self.cfg.conf_thresh, nms_thresh=self.cfg.nms_thresh,
                min_boxes=self.cfg.min_boxes, max_boxes=self.cfg.max_boxes, fixed_boxes=self.cfg.fixed_boxes,
                return_max_conf=True,
            )
            chosen = bx[idx, cls] if self.cfg.box_mode == "regressed" else props[idx]
            ob = chosen.cpu() / s
            ob[:, 0::2] = ob[:, 0::2].clamp(0, d.orig_w)
            ob[:, 1::2] = ob[:, 1::2].clamp(0, d.orig_h)
            out.append(_Selected(ob.float(), cls.cpu(), conf.cpu(), max_conf[idx].cpu(), pr[idx]))
        return out

    def _select_caffe(self, pr: Any, props: Any, feats: Any, d: Decoded, s: Any) -> _Selected:
        """generate_tsv.py: NMS on the proposals (original pixels), their boxes and pool5 features."""
        import torch

        cls_boxes = (props.cpu() / s).numpy()
        lo = hi = self.cfg.fixed_boxes
        keep, max_conf = caffe_select(
            cls_boxes, pr[:, : self.num_classes].cpu().numpy(), conf_thresh=self.cfg.conf_thresh,
            nms_thresh=self.cfg.nms_thresh, min_boxes=lo or self.cfg.min_boxes, max_boxes=hi or self.cfg.max_boxes,
            device=self.device,
        )
        idx = torch.from_numpy(keep).to(pr.device)
        ob = torch.from_numpy(cls_boxes[keep]).float()
        ob[:, 0::2] = ob[:, 0::2].clamp(0, d.orig_w)
        ob[:, 1::2] = ob[:, 1::2].clamp(0, d.orig_h)
        conf, cls = pr[idx, : self.num_classes].max(dim=1)
        return _Selected(ob, cls.cpu(), conf.cpu(), torch.from_numpy(max_conf[keep]), pr[idx], feats[idx].float())


@dataclass
class _Selected:
    """One image's chosen boxes (original pixels) and what is known about them so far."""

    boxes: Any
    cls: Any = None
    conf: Any = None
    box_conf: Any = None
    probs: Any = None  # (N, K+1) class probabilities, background last
    features: Any = None
