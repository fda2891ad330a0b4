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

#: larger images are subsampled (nearest, which keeps the pixel noise) before measuring. 256, not
#: 512 as until issue 11: the measurements then cost 0.4 instead of 1.0 ms per 800x600 image in
#: img2dataset's workers, on the CPUs the downloads share. Measured 512 -> 256: on the synthetic
#: web's stored images no verdict changed (photos' scores fell by up to 0.10, away from the 0.6
#: threshold; graphics moved by < 0.015); the tests' 800x600-1200x800 charts, logos and text
#: pages moved by <= 0.013; a photo's near copy (resized to 75 %, JPEG 60) stays within 2 bits of
#: pHash (mean 0.03 -> 0.38 bits), distinct photos >= 18 bits apart either way.
ANALYSIS_MAX_SIDE = 256


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
    img = Image.open(io.BytesIO(data))  # not `with`: closing would invalidate the pixels kept below
    img.load()
    return img if img.mode == "RGB" else img.convert("RGB")  # no copy for the common RGB JPEG


def decode_array(data: bytes) -> np.ndarray:
    """The stored image as a uint8 array (OpenCV, BGR): the measurements' input, no PIL object or
    copy in between. Raises ValueError on bytes OpenCV cannot decode (its pixel cap included)."""
    import cv2

    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if a is None:
        raise ValueError("not a decodable image")
    return a


def decode_for_measuring(data: bytes) -> np.ndarray:
    """The stored image as `unnatural_parts` and `phash_hex` look at it, decoded as cheaply as that allows.

    Why: the measurements only look at an image of at most ~`ANALYSIS_MAX_SIDE` px (larger ones
    are subsampled), yet a full decode of the stored JPEG was most of their cost in img2dataset's
    workers (issue 11: ~3 of ~5 ms per 800x600 image, on CPUs the downloads share). A JPEG whose
    longer side is over `ANALYSIS_MAX_SIDE` is decoded at half size by libjpeg's DCT scaling
    (`IMREAD_REDUCED_COLOR_2`, about a third cheaper, and the smaller array makes the measurements
    3x cheaper); the half-size pixels are 2x2 averages instead of every second pixel, which moves
    the unnatural score by ~0.01 on photos and graphics alike (tests pin the tolerance). Only by
    two: a stronger reduction averages the sensor noise away that tells photos from flat graphics.
    Other formats and smaller images are decoded fully, as `decode_array` does.
    """
    import cv2

    buf = np.frombuffer(data, np.uint8)
    flag = cv2.IMREAD_COLOR
    if data[:3] == b"\xff\xd8\xff":
        try:
            with Image.open(io.BytesIO(data)) as head:  # the header only: no pixels are decoded here
                longer = max(head.size)
        except Exception:  # noqa: BLE001 - let OpenCV's decoder give the verdict on bad bytes
            longer = 0
        if longer > ANALYSIS_MAX_SIDE:  # where `unnatural_parts` subsamples by at least 2 anyway
            flag = cv2.IMREAD_REDUCED_COLOR_2
    a = cv2.imdecode(buf, flag)
    if a is None:
        raise ValueError("not a decodable image")
    return a


def _pixels(img: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 array of an image (channel order does not matter to the measurements)."""
    if isinstance(img, np.ndarray):
        return img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def _channel_max(a: np.ndarray) -> np.ndarray:
    """Largest of the three channels, per pixel. Why not `a.max(axis=2)`: NumPy reduces a length-3
    inner axis ~25x slower than two element-wise maxima (6 ms against 0.2 ms at 320x240)."""
    return np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])


def analysis_pixels(img: Image.Image | np.ndarray) -> np.ndarray:
    """The pixels the measurements look at (uint8, 3 channels): the image nearest-subsampled by the smallest integer
    step that brings its longer side to at most `ANALYSIS_MAX_SIDE` (the image itself when it is
    that small already, so calling this again costs nothing).

    Why nearest: it keeps each pixel's sensor noise, which is what tells a photograph from a flat
    graphic (`flat`); an averaging reduction would smooth it away. OpenCV's nearest resize picks
    pixel floor(i * W/w), every `step`-th one up to rounding at the edge (issue 11: ~0.35 ms at
    800x600 against ~0.5 ms for NumPy's strided `a[::2, ::2]` copy of 3-byte pixels)."""
    import cv2

    a = _pixels(img)
    h, w = a.shape[:2]
    step = max(1, math.ceil(max(h, w) / ANALYSIS_MAX_SIDE))
    if step == 1:
        return a
    return cv2.resize(a, (math.ceil(w / step), math.ceil(h / step)), interpolation=cv2.INTER_NEAREST)


def unnatural_parts(img: Image.Image | np.ndarray) -> UnnaturalParts:
    """Measure flatness, dominant colours and colour entropy of an image (see module doc).

    Done in uint8 with OpenCV's absdiff and 3-D histogram: the same numbers as int16 NumPy
    arithmetic at a fraction of the cost (it runs once per downloaded image)."""
    import cv2

    a = np.ascontiguousarray(analysis_pixels(img))
    if a.shape[0] < 2 or a.shape[1] < 2:
        return UnnaturalParts(1.0, 1.0, 1.0)
    base = np.ascontiguousarray(a[:-1, :-1])
    dx = _channel_max(cv2.absdiff(np.ascontiguousarray(a[:-1, 1:]), base))
    dy = _channel_max(cv2.absdiff(np.ascontiguousarray(a[1:, :-1]), base))
    flat = np.count_nonzero(np.maximum(dx, dy) <= 1) / dx.size
    counts = cv2.calcHist([a], [0, 1, 2], None, [16, 16, 16], [0, 256, 0, 256, 0, 256]).ravel().astype(np.float64)
    total = counts.sum()
    dominant = float(np.partition(counts, counts.size - 4)[-4:].sum() / total)
    p = counts[counts > 0] / total
    entropy_bits = float(-(p * np.log2(p)).sum())
    return UnnaturalParts(float(flat), dominant, float(max(0.0, 1.0 - entropy_bits / 6.0)))


def phash_hex(img: Image.Image | np.ndarray) -> str:
    """64-bit DCT perceptual hash as 16 hex digits: imagehash.phash's definition (32x32 grey
    thumbnail, 2-D DCT-II, the 8x8 lowest frequencies against their median, bits row-major)
    with OpenCV's area-averaging thumbnail instead of Pillow's Lanczos (which cost more than all
    other measurements together); near copies still land within a few bits (see tests). The
    thumbnail is taken of `analysis_pixels`, as the other measurements are: averaging 32x32
    cells of the subsampled image instead of the full one moves a hash by a bit or two and
    costs a quarter (issue 11: 0.85 -> 0.2 ms at 800x600)."""
    import cv2
    import scipy.fftpack

    to_grey = cv2.COLOR_BGR2GRAY if isinstance(img, np.ndarray) else cv2.COLOR_RGB2GRAY  # PIL: RGB, arrays: BGR
    a = analysis_pixels(img)
    grey = a if a.ndim == 2 else cv2.cvtColor(a, to_grey)
    thumb = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float64)
    low = scipy.fftpack.dct(scipy.fftpack.dct(thumb, axis=0), axis=1)[:8, :8]
    value = 0
    for bit in (low > np.median(low)).ravel():
        value = (value << 1) | int(bit)
    return f"{value:016x}"


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


def analyse(data: bytes, unnatural_clf=None, nsfw_clf=None) -> tuple[str, float, str, float, str]:
    """(decode error, unnatural score, its detail, image NSFW score, phash) of one stored image.

    A plain function of bytes (no sample, no config) so that it can run in a process pool.
    """
    try:
        img = decode_image(data)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt data; all mean "undecodable"
        return f"stored image does not decode: {exc}", float("nan"), "", float("nan"), ""
    if unnatural_clf is None:
        parts = unnatural_parts(img)
        score, detail = parts.score, str(parts)
    else:
        score = float(unnatural_clf(img))
        detail = f"unnatural {score:.2f} (classifier)"
    nsfw = float(nsfw_clf(img)) if nsfw_clf is not None else float("nan")
    return "", score, detail, nsfw, phash_hex(img)


def analyse_many(images: list[bytes], threads: int, unnatural_clf=None, nsfw_clf=None) -> list[tuple]:
    """`analyse` over many images in threads (Pillow's decode/resize and NumPy release the GIL for
    much of the work). Measured on 400 JPEGs on a busy 2-core machine: threads 24 s, a spawned
    process pool 78 s (its imports and the pickled bytes cost more than it saved)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(pool.map(lambda b: analyse(b, unnatural_clf, nsfw_clf), images))


# -- pluggable classifiers ----------------------------------------------------------------------------
#: TorchScript input side: the image is resized (aspect kept, shorter side) and centre-cropped to this
CLASSIFIER_SIDE = 224


def heuristic_unnatural(img: Image.Image) -> float:
    """The default unnatural score (see the module doc) as a classifier callable."""
    return unnatural_parts(img).score


def load_classifier(spec: str):  # -> Callable[[Image.Image], float]
    """A classifier from the config: '' → None; a `.pt`/`.pth`/`.ts` file → a TorchScript model;
    'package.module:function' → that callable. Either maps an RGB PIL image to a score in [0, 1].

    Why both: a callable lets a project plug in any library (an ONNX session, a CLIP probe); a
    TorchScript file needs no code at all. A model must return one probability (shape [], [1] or
    [1, 1]) or two logits/probabilities (shape [1, 2], softmaxed; index 1 is the positive class).
    Its input is a float tensor [1, 3, 224, 224] in [0, 1] (shorter side resized to 224, centre crop).
    """
    spec = (spec or "").strip()
    if not spec:
        return None
    if spec.lower().endswith((".pt", ".pth", ".ts")):
        return TorchScriptClassifier(spec)
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"classifier must be a .pt path or 'module:function', got {spec!r}")
    import importlib

    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"classifier {spec!r} cannot be imported: {exc}") from None
    if not callable(fn):
        raise ValueError(f"classifier {spec!r} is not callable")
    return fn


class TorchScriptClassifier:
    """A TorchScript model as a classifier callable (see `load_classifier` for the contract)."""

    def __init__(self, path: str) -> None:
        import torch

        try:
            self.model = torch.jit.load(path, map_location="cpu").eval()
        except (RuntimeError, ValueError, OSError) as exc:
            raise ValueError(f"classifier {path!r} is not a loadable TorchScript file: {exc}") from None
        self.path = path

    def __call__(self, img: Image.Image) -> float:
        import torch

        w, h = img.size
        scale = CLASSIFIER_SIDE / max(1, min(w, h))
        size = (max(CLASSIFIER_SIDE, round(w * scale)), max(CLASSIFIER_SIDE, round(h * scale)))
        img = img.convert("RGB").resize(size)
        w, h = img.size
        left, top = (w - CLASSIFIER_SIDE) // 2, (h - CLASSIFIER_SIDE) // 2
        img = img.crop((left, top, left + CLASSIFIER_SIDE, top + CLASSIFIER_SIDE))
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
        with torch.inference_mode():
            out = self.model(x).float().reshape(-1)
        if out.numel() == 2:
            return float(torch.softmax(out, 0)[1])
        if out.numel() != 1:
            raise ValueError(f"classifier {self.path}: expected 1 or 2 outputs, got {out.numel()}")
        return float(out[0].clamp(0.0, 1.0))
