"""Turn the images OpenCV gets wrong into plain 8-bit RGB before img2dataset resizes them.

Why: img2dataset decodes with `cv2.imdecode(..., IMREAD_UNCHANGED)`, which
- ignores the EXIF Orientation tag: a phone photo stored 480x640 with orientation 6 ("rotate
  90° clockwise to display") is kept sideways, and its size (and aspect verdict) is the stored one;
- keeps 16 bits per channel: a 16-bit grey PNG then goes through 8-bit alpha maths and a JPEG
  encoder that saturate it (the stored image comes out almost white);
- keeps the grey+alpha / palette+transparency layouts that its alpha matting does not expect.

`normalise(data)` returns None for the common case (an 8-bit image with no orientation to
apply: the bytes go to img2dataset unchanged, no extra decode) and otherwise a lossless PNG of
the corrected 8-bit RGB image: rotated/flipped as EXIF says, 16-bit values scaled by 1/257
(65535 → 255), transparency composited on white (img2dataset's own choice for RGBA). Only the
header is read to decide, so the cost on ordinary JPEGs is one `Image.open`.

`NormalisingResizer` wraps img2dataset's `Resizer` with this step (the original bytes, which
img2dataset hashes, are not touched).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageOps

_PLAIN_MODES = frozenset({"RGB", "L", "RGBA"})
_ORIENTATION = 0x0112


def needs_normalising(img: Image.Image) -> str:
    """'' when OpenCV decodes `img` right as it is, else why not."""
    try:
        orientation = int(img.getexif().get(_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is no reason to lose the image
        orientation = 1
    if orientation not in (0, 1):
        return f"exif orientation {orientation}"
    if img.mode not in _PLAIN_MODES:
        return f"mode {img.mode}"
    if img.format == "PNG" and (img.info.get("transparency") is not None or _png_bit_depth(img) == 16):
        return "png 16-bit or transparency"
    return ""


def _png_bit_depth(img: Image.Image) -> int:
    fp = getattr(img, "fp", None)
    try:
        fp.seek(24)  # IHDR: 8 signature + 4 length + 4 type + 4 width + 4 height, then bit depth
        return int(fp.read(1)[0])
    except Exception:  # noqa: BLE001
        return 8


def to_rgb8(img: Image.Image) -> Image.Image:
    """An 8-bit RGB copy: EXIF orientation applied, 16-bit scaled, alpha composited on white."""
    img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        grey = np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("P", "PA", "LA", "RGBA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def normalise(data: bytes) -> bytes | None:
    """None when `data` can go to OpenCV as it is, else a PNG of the corrected image (see module doc).

    Undecodable bytes also give None: img2dataset's own decoder then reports them as it always did.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            if not needs_normalising(img):
                return None
            if img.width * img.height > (Image.MAX_IMAGE_PIXELS or 0):
                return None  # a bomb is not decoded here: OpenCV's pixel cap refuses it from the header
            img.load()
            fixed = to_rgb8(img)
    except Exception:  # noqa: BLE001 - Pillow raises many types; img2dataset records the failure
        return None
    out = io.BytesIO()
    fixed.save(out, format="PNG", compress_level=1)
    return out.getvalue()


class NormalisingResizer:
    """img2dataset's resizer, fed normalised bytes where OpenCV would decode them wrong."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, img_stream: Any, blurring_bbox_list: Any = None) -> Any:
        img_stream.seek(0)
        fixed = normalise(img_stream.read())
        img_stream.seek(0)
        return self.inner(io.BytesIO(fixed) if fixed is not None else img_stream, blurring_bbox_list)
