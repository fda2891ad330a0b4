"""The image side's inputs: pooled region features of a sample, or its 64x64 thumbnail, batched.

Why a separate module: the region arrays the pipeline stores (`Regions`) are turned into the
encoder's per-box vectors in one place, so training, scoring in the crawl, eval and the feature
cache all see the same numbers. A box's vector is its pooled RoI feature, its geometry (xyxy
normalised by the image size, and its area) and its detector confidences; its object and
attribute ids are embedded by the encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from laitkit.datasets.schema import Regions

GEOM_DIM = 7  # x0, y0, x1, y1 (0..1), area, obj_conf, attr_conf


@dataclass
class BoxSet:
    """One image's boxes, as compact arrays (what the feature cache stores)."""

    features: np.ndarray  # float16 (N, D)
    geom: np.ndarray  # float32 (N, GEOM_DIM)
    obj_ids: np.ndarray  # int64 (N,)
    attr_ids: np.ndarray  # int64 (N,), -1 when none


def boxset_from_regions(r: Regions) -> BoxSet:
    w, h = max(float(r.image_w), 1.0), max(float(r.image_h), 1.0)
    b = r.boxes.astype(np.float32) / np.array([w, h, w, h], dtype=np.float32)
    b = np.clip(b, 0.0, 1.0)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    geom = np.concatenate([b, area[:, None], r.obj_conf[:, None], r.attr_conf[:, None]], axis=1).astype(np.float32)
    return BoxSet(r.features.astype(np.float16), geom, r.obj_ids.astype(np.int64), r.attr_ids.astype(np.int64))


@dataclass
class RegionBatch:
    """Padded boxes of a batch: features (B, N, D), geom (B, N, G), ids (B, N), mask (B, N) True = real."""

    features: torch.Tensor
    geom: torch.Tensor
    obj_ids: torch.Tensor
    attr_ids: torch.Tensor
    mask: torch.Tensor


def collate_boxes(sets: Sequence[BoxSet], feat_dim: int) -> RegionBatch:
    """Pad to the largest box count; an image with no box gets one all-zero, masked-in dummy box."""
    n = max(1, max((len(s.obj_ids) for s in sets), default=1))
    b = len(sets)
    feats = np.zeros((b, n, feat_dim), dtype=np.float32)
    geom = np.zeros((b, n, GEOM_DIM), dtype=np.float32)
    obj = np.zeros((b, n), dtype=np.int64)
    attr = np.full((b, n), -1, dtype=np.int64)
    mask = np.zeros((b, n), dtype=bool)
    for i, s in enumerate(sets):
        k = len(s.obj_ids)
        if k == 0:
            mask[i, 0] = True
            continue
        d = min(feat_dim, s.features.shape[1])
        feats[i, :k, :d] = s.features[:, :d]
        geom[i, :k] = s.geom
        obj[i, :k] = s.obj_ids
        attr[i, :k] = s.attr_ids
        mask[i, :k] = True
    return RegionBatch(*(torch.from_numpy(a) for a in (feats, geom, obj, attr, mask)))


def thumbnails(images: Sequence[bytes]) -> tuple[torch.Tensor, list[int]]:
    """Thumbnails of the decodable images, and the indices they came from."""
    from laitkit.extractors.relevance import thumbnail

    idx, arrs = [], []
    for i, data in enumerate(images):
        try:
            arrs.append(thumbnail(data))
            idx.append(i)
        except Exception:  # noqa: BLE001 - undecodable bytes: the caller records a verdict
            continue
    if not arrs:
        return torch.zeros((0, 3, 64, 64)), idx
    return torch.from_numpy(np.stack(arrs)), idx
