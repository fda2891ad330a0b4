"""Checks on the downloaded image: size, aspect ratio, "unnatural" graphics, and its perceptual hash.

Why these: LAIT keeps photographs that can ground a sentence. Images whose shorter side is under
300 px carry too little detail, extreme aspect ratios are banners and strips, and charts, logos
and text screenshots are graphics, not scenes. Size and aspect use the *original* size that
img2dataset reports (the stored image is resized); the unnatural score and the phash use the
stored image, which is all that later stages will see.

The unnatural score is a cheap, documented heuristic, not a model. Three measurements of the
decoded RGB image, each in [0, 1], higher meaning more graphic-like:

- `flat` (weight 0.5): share of pixels whose largest channel difference to the right and lower
  neighbours is <= 1. Flat fills are exactly flat even after JPEG; sensor noise and texture make
  such pixels rare in photographs (about 2-10%, against 75-95% for charts, logos, text).
- `dominant` (weight 0.3): share of the 4 most frequent colours (4 bits per channel) — a white
  page with black text, a logo on a plain background.
- `low_entropy` (weight 0.2): 1 - H/6, H the colour entropy in bits over the same 4096 bins
  (photographs ~4-7 bits, graphics ~0.5-2.5).

score = 0.5*flat + 0.3*dominant + 0.2*low_entropy. Photographs measure about 0.1-0.4, flat
graphics 0.75-0.95; the default threshold is 0.6. A product shot on a pure white background can
score high: that is the known weakness of any flatness measure.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

ANALYSIS_MAX_SIDE = 512  # larger images are subsampled (nearest, which keeps the pixel noise) before measuring


@dataclass(frozen=True)
class UnnaturalParts:
    """The three measurements behind `score`, kept for the verdict detail."""

    flat: float
    dominant: float
    low_entropy: float

    @property
    def score(self) -> float:
        return float(min(1.0, max(0.0, 0.5 * self.flat + 0.3 * self.dominant + 0.2 * self.low_entropy)))

    def __str__(self) -> str:
        return f"unnatural {self.score:.2f} (flat {self.flat:.2f}, dominant {self.dominant:.2f}, " \
            f"low_entropy {self.low_entropy:.2f})"  # fmt: skip


def decode_image(data: bytes) -> Image.Image:
    """Fully decoded RGB image; raises OSError/ValueError (incl. Pillow's bomb error) on bad bytes."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.convert("RGB")


def unnatural_parts(img: Image.Image) -> UnnaturalParts:
    """Measure flatness, dominant colours and colour entropy of an RGB image (see module doc)."""
    a = np.asarray(img.convert("RGB"), dtype=np.int16)
    step = max(1, math.ceil(max(a.shape[0], a.shape[1]) / ANALYSIS_MAX_SIDE))
    a = a[::step, ::step]
    if a.shape[0] < 2 or a.shape[1] < 2:
        return UnnaturalParts(1.0, 1.0, 1.0)
    dx = np.abs(np.diff(a, axis=1)).max(axis=2)[:-1, :]
    dy = np.abs(np.diff(a, axis=0)).max(axis=2)[:, :-1]
    flat = float((np.maximum(dx, dy) <= 1).mean())
    q = (a >> 4).reshape(-1, 3)
    counts = np.bincount((q[:, 0] << 8) | (q[:, 1] << 4) | q[:, 2], minlength=4096).astype(np.float64)
    total = counts.sum()
    dominant = float(np.sort(counts)[-4:].sum() / total)
    p = counts[counts > 0] / total
    entropy_bits = float(-(p * np.log2(p)).sum())
    return UnnaturalParts(flat, dominant, float(max(0.0, 1.0 - entropy_bits / 6.0)))


def phash_hex(img: Image.Image) -> str:
    """64-bit DCT perceptual hash (imagehash.phash) as 16 hex digits."""
    import imagehash

    return str(imagehash.phash(img))


def size_reason(orig_width: int, orig_height: int, min_side: int = 300) -> str:
    """'' when the shorter original side is at least `min_side`, else a human detail."""
    short = min(orig_width, orig_height)
    return "" if short >= min_side else f"shorter side {short} px < {min_side} ({orig_width}x{orig_height})"


def aspect_reason(orig_width: int, orig_height: int, max_ratio: float = 3.0) -> str:
    """'' when long/short <= `max_ratio`, else a human detail."""
    if min(orig_width, orig_height) <= 0:
        return f"degenerate size {orig_width}x{orig_height}"
    ratio = max(orig_width, orig_height) / min(orig_width, orig_height)
    return "" if ratio <= max_ratio else f"aspect {ratio:.2f}:1 > {max_ratio:g}:1 ({orig_width}x{orig_height})"
