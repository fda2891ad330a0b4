"""Non-photographic images: decoys (logo, icons, pixel, ad, avatar) and "unnatural" graphics.

Why separate from scenes: these are the things a crawler must *not* keep, and they are built to
look like the real offenders — flat fills, few distinct colours, hard edges and text — so the
unnatural-image filter and the decoy heuristics have something honest to reject. Encoders are
fixed (PNG without metadata, GIF, JPEG at a fixed quality) so bytes are reproducible.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from laitkit.datasets.synth.scenes import COLOURS

JPEG_QUALITY = 90
_PALETTE = [COLOURS[c] for c in ("red", "green", "blue", "yellow", "purple", "orange")]


def encode(img: Image.Image, fmt: str, quality: int = JPEG_QUALITY) -> bytes:
    """Encode deterministically: no EXIF/ICC/timestamps, fixed quality, no optimiser passes."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=quality, subsampling=2)
    elif fmt == "PNG":
        img.save(buf, "PNG", compress_level=6)
    elif fmt == "GIF":
        img.save(buf, "GIF")
    else:
        raise ValueError(f"unsupported format {fmt}")
    return buf.getvalue()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def site_logo(name: str) -> Image.Image:
    img = Image.new("RGB", (180, 48), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.ellipse((6, 6, 42, 42), fill=(205, 35, 35))
    d.rectangle((18, 18, 30, 30), fill=(255, 255, 255))
    d.text((50, 12), name, font=_font(20), fill=(30, 30, 30))
    return img


def social_icon(letter: str, colour: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (32, 32), colour)
    ImageDraw.Draw(img).text((10, 5), letter, font=_font(20), fill=(255, 255, 255))
    return img


def pixel(grey: int = 255) -> Image.Image:
    return Image.new("L", (1, 1), grey)


def ad_banner(rng: np.random.Generator, text: str) -> Image.Image:
    bg = _PALETTE[int(rng.integers(0, len(_PALETTE)))]
    img = Image.new("RGB", (728, 90), bg)
    d = ImageDraw.Draw(img)
    d.rectangle((560, 20, 710, 70), fill=(255, 255, 255))
    d.text((580, 32), "SHOP NOW", font=_font(22), fill=bg)
    d.text((24, 24), text, font=_font(36), fill=(255, 255, 255))
    return img


def avatar(rng: np.random.Generator) -> Image.Image:
    """A cartoon head on a flat background, 96x96, as blogs show next to the author's name."""
    bg = tuple(int(v) for v in rng.integers(150, 230, size=3))
    img = Image.new("RGB", (96, 96), bg)
    d = ImageDraw.Draw(img)
    skin = (224, 182, 150)
    d.ellipse((20, 62, 76, 120), fill=(60, 60, 90))
    d.ellipse((28, 14, 68, 58), fill=skin)
    d.ellipse((38, 30, 43, 35), fill=(30, 30, 30))
    d.ellipse((53, 30, 58, 35), fill=(30, 30, 30))
    return img


def logo_graphic(rng: np.random.Generator, text: str) -> Image.Image:
    """A flat-colour brand mark: large geometric emblem and a word, two or three colours in all."""
    size = int(rng.integers(360, 520))
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    c = _PALETTE[int(rng.integers(0, len(_PALETTE)))]
    m = size // 6
    d.ellipse((m, m, size - m, size - m), fill=c)
    d.regular_polygon((size / 2, size / 2 - m / 2, size / 4), n_sides=int(rng.integers(3, 7)), fill=(255, 255, 255))
    d.text((m, size - m + 8), text, font=_font(max(16, size // 12)), fill=c)
    return img


def chart_graphic(rng: np.random.Generator, kind: str) -> Image.Image:
    """A bar or pie chart with axes, ticks and a title: flat colours on white."""
    w, h = int(rng.integers(420, 640)), int(rng.integers(320, 480))
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((20, 10), "Quarterly results" if kind == "bar" else "Market share", font=_font(18), fill=(0, 0, 0))
    n = int(rng.integers(3, 7))
    values = rng.uniform(0.2, 1.0, size=n)
    if kind == "bar":
        x0, y0, x1, y1 = 50, 45, w - 20, h - 40
        d.line((x0, y0, x0, y1), fill=(0, 0, 0), width=2)
        d.line((x0, y1, x1, y1), fill=(0, 0, 0), width=2)
        bw = (x1 - x0) / (n * 1.5)
        for i, v in enumerate(values):
            bx = x0 + bw * (0.5 + 1.5 * i)
            d.rectangle((bx, y1 - v * (y1 - y0), bx + bw, y1 - 1), fill=_PALETTE[i % len(_PALETTE)])
            d.text((bx, y1 + 6), f"Q{i + 1}", font=_font(14), fill=(0, 0, 0))
    else:
        r = min(w, h) * 0.35
        cx, cy = w / 2, h / 2 + 15
        start = 0.0
        for i, v in enumerate(values / values.sum()):
            end = start + 360 * float(v)
            d.pieslice((cx - r, cy - r, cx + r, cy + r), start, end, fill=_PALETTE[i % len(_PALETTE)])
            start = end
    return img


_TEXT_LINES = (
    "Terms and conditions apply to all orders.",
    "Free shipping on orders over 50 dollars.",
    "Returns are accepted within thirty days.",
    "Please read the instructions carefully.",
    "Our store is open Monday to Saturday.",
    "Contact customer service for any questions.",
    "Prices include all applicable taxes.",
    "Subscribe to our newsletter for updates.",
)


def text_graphic(rng: np.random.Generator) -> Image.Image:
    """A screenshot of text: black lines on white, the classic image-of-text false positive."""
    w, h = int(rng.integers(480, 640)), int(rng.integers(320, 440))
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    y = 20
    order = rng.permutation(len(_TEXT_LINES))
    for i in order:
        if y > h - 40:
            break
        d.text((20, y), _TEXT_LINES[int(i)], font=_font(20), fill=(20, 20, 20))
        y += 34
    return img


def html_error_body(title: str) -> bytes:
    """A small HTML document, used for error pages and for HTML served at an image URL."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>The page you requested could not be shown.</p></body></html>\n"
    ).encode()


def decompression_bomb(side: int = 20000) -> bytes:
    """A valid 1-bit greyscale PNG declaring `side`x`side` pixels of zeros, only ~50 KB on disk.

    Decoders that honour a pixel cap (Pillow's `MAX_IMAGE_PIXELS`) refuse it at open; ones that do
    not would allocate hundreds of megabytes.
    """
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    chunks = [comp.compress(row) for _ in range(side)]
    data = b"".join(chunks) + comp.flush()

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def truncate(data: bytes, fraction: float) -> bytes:
    """The first `fraction` of an encoded image: headers intact, scan data cut short."""
    return data[: max(64, int(len(data) * fraction))]
