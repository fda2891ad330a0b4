"""Box geometry shared by the detector's evaluation and the pretraining masks.

Why a module of its own: both the synthetic detector's metrics (`extractors/regions_synth.py`)
and 12-in-1's overlap masking (`pipeline/pretrain/masking.py`) need the same pairwise IoU, and
neither side should import the other's heavier module for it.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (N, M) of (N, 4) and (M, 4) xyxy boxes; 0 where the union is empty.

    Normalised coordinates are fine: IoU ignores axis scaling.
    """
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
