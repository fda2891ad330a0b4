"""Image measurements taken inside img2dataset's worker processes, as extra columns of its parquet.

Why here: measuring the stored image (decode, unnatural heuristic, phash) in the parent after
img2dataset returned was the crawl's largest cost over img2dataset alone (~40 ms per image in
parent threads, after the workers had finished: 2,000 images added ~75 s to a 37 s download).
img2dataset's workers already hold each stored image in memory when they hand it to their sample
writer, so the writer is the seam: `MeasuringWriter` wraps img2dataset's own writer class, appends
the `COLUMNS` to its schema and fills them for every row it writes. The measurement then runs in
the worker processes, interleaved with the downloads of the other threads, and the parent only
reads the numbers back (`measured_from_row`).

What is measured: the pixels img2dataset encoded into the stored image (encode_tap.py), when the
writer is handed exactly those bytes — no second decode; otherwise (a tap that did not fire, an
array that is not 8-bit) the stored bytes are decoded as `decode_for_measuring` does. Against
the decoded stored JPEG (issue 11, the synthetic web's 689 stored images): photographs' unnatural
score moved by -0.016..+0.01 (quality-95 rounding is far below their sensor noise); graphics'
rose by up to 0.53 (32 px icons) and 0.05-0.15 for banners, logos and charts, since the encoder's
ringing no longer breaks their flat fills — away from the 0.6 threshold, so no verdict changed
(the two icons that crossed it are TOO_SMALL first). The pHash, now a thumbnail of the
subsampled pixels (image_filters.phash_hex), moved by 0.5 bits on average, at most 6, on the
652 images under the threshold. Cost: ~1 ms per 800x600 image instead of ~4 ms, and ~0.4 ms
with the smaller analysis size (image_filters.ANALYSIS_MAX_SIDE says what that changed).

Only the default heuristics run here; a configured classifier (image_filters.load_classifier)
still runs in the parent on the stored bytes, because a TorchScript model or a user callable is
not something to load in every spawned worker implicitly.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from laitkit.pipeline.crawl import encode_tap, image_filters

#: Bump when the measurement changes: the version is part of img2dataset's output folder name, so
#: an output measured by older code is never read back as if it had today's numbers.
VERSION = 5
COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("laitkit_decode_error", pa.string()),
    ("laitkit_flat", pa.float64()),
    ("laitkit_dominant", pa.float64()),
    ("laitkit_low_entropy", pa.float64()),
    ("laitkit_phash", pa.string()),
    # what was measured: "encoded_pixels" (encode_tap: the array the stored image encodes) or
    # "stored_bytes" (decoded again); kept so that a tap that stopped firing shows in the output
    ("laitkit_measured_on", pa.string()),
)
NAMES = tuple(name for name, _ in COLUMNS)

#: what image_filters.analyse returns: (decode error, unnatural score, detail, NSFW image score, phash)
Measured = tuple[str, float, str, float, str]


def measure(image: bytes | None, pixels: np.ndarray | None = None) -> dict[str, Any]:
    """The `COLUMNS` of one stored image (all None when img2dataset stored none). `pixels`, when
    given, is the 8-bit array `image` is the encoding of (encode_tap.take): measured instead of
    decoding `image` again."""
    if image is None:
        return dict.fromkeys(NAMES)
    img, measured_on = (pixels, "encoded_pixels") if _is_grey_or_bgr8(pixels) else (None, "stored_bytes")
    if img is None:
        try:
            img = image_filters.decode_for_measuring(image)
        except Exception as exc:  # noqa: BLE001 - any decoder error means "undecodable"
            return {**dict.fromkeys(NAMES), "laitkit_decode_error": f"stored image does not decode: {exc}",
                    "laitkit_measured_on": "stored_bytes"}
    img = image_filters.analysis_pixels(img)  # once: the measurements below then take it as it is
    parts = image_filters.unnatural_parts(img)
    return {"laitkit_decode_error": "", "laitkit_flat": parts.flat, "laitkit_dominant": parts.dominant,
            "laitkit_low_entropy": parts.low_entropy, "laitkit_phash": image_filters.phash_hex(img),
            "laitkit_measured_on": measured_on}  # fmt: skip


def _is_grey_or_bgr8(a: np.ndarray | None) -> bool:
    """An array the measurements take as it is: 8-bit, grey or 3 channels, not empty."""
    if a is None or a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        return False
    return min(a.shape[:2]) > 0


def measured_from_row(row: dict[str, Any]) -> Measured | None:
    """The `analyse`-shaped result of a row written by `MeasuringWriter`, None if it has none."""
    error = row.get("laitkit_decode_error")
    if error is None:
        return None
    if error:
        return error, float("nan"), "", float("nan"), ""
    parts = image_filters.UnnaturalParts(row["laitkit_flat"], row["laitkit_dominant"], row["laitkit_low_entropy"])
    return "", parts.score, str(parts), float("nan"), row["laitkit_phash"] or ""


class MeasuringWriter:
    """img2dataset's sample writer (`inner`, e.g. ParquetSampleWriter) plus the `COLUMNS`.

    img2dataset builds writers as `cls(shard_id, output_folder, save_caption, oom_shard_count,
    schema, encode_format)`; `functools.partial(MeasuringWriter, inner)` is such a class.

    Why measuring happens in `MEASURE_THREADS` threads of the writer, not in `write` itself:
    img2dataset calls the resizer and the writer from one thread per worker (its download
    threads only fetch), so a measurement made in `write` held up the next image's resize; the
    decode and OpenCV calls release the GIL, so in a thread they overlap with it (issue 11). Rows
    reach `inner` in the order `write` was called, with the same numbers; at most
    `MAX_PENDING` images wait to be measured.
    """

    MEASURE_THREADS = 2
    MAX_PENDING = 64

    def __init__(self, inner: Any, shard_id: int, output_folder: str, save_caption: bool, oom_shard_count: int,
                 schema: pa.Schema, encode_format: str) -> None:  # fmt: skip
        for name, type_ in COLUMNS:
            schema = schema.append(pa.field(name, type_))
        self.inner = inner(shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format)
        self._pool = ThreadPoolExecutor(self.MEASURE_THREADS, thread_name_prefix="laitkit-measure")
        self._pending: deque[tuple[Future, bytes | None, str, Any, dict[str, Any]]] = deque()

    def write(self, img_str: bytes | None, key: str, caption: Any, meta: dict[str, Any]) -> None:
        pixels = encode_tap.take(img_str)  # the resizer ran just before, in this thread
        self._pending.append((self._pool.submit(measure, img_str, pixels), img_str, key, caption, meta))
        while self._pending and (self._pending[0][0].done() or len(self._pending) > self.MAX_PENDING):
            self._flush_one()

    def _flush_one(self) -> None:
        future, img_str, key, caption, meta = self._pending.popleft()
        self.inner.write(img_str, key, caption, {**meta, **future.result()})

    def close(self) -> None:
        try:
            while self._pending:
                self._flush_one()
        finally:
            self._pool.shutdown(wait=True)
        self.inner.close()
