"""The pixels img2dataset's resizer encodes, handed to the measurements so the stored image is not decoded again.

Why: in img2dataset's workers each image was decoded twice — once by img2dataset's resizer (the
downloaded bytes, before it resizes and re-encodes them) and once more by us, to measure the
stored JPEG (measure_writer.py). That second decode was ~2.4 of the ~4 ms the measurements cost
per 800x600 image (issue 11; DCT-scaled decoding does not help much: at quality 95 the entropy
decoding, which no scaling skips, is most of it). The resizer already holds the final array when
it calls `cv2.imencode`; the stored image is exactly that array, JPEG-encoded at quality
`encode_quality` (95 by default).

How: `install()` (called in each worker by download.GuardedDownloader) replaces the `cv2` global
of `img2dataset.resizer` by `_Cv2WithTap`, which forwards everything to OpenCV and remembers, per
thread, the last array it encoded and the encoded buffer. img2dataset calls its resizer and then
its sample writer for the same image in one thread, so the writer (measure_writer.MeasuringWriter)
asks `take(img_str)` right after: it returns the array when `img_str` is byte for byte what that
encode produced, else None — and then the stored bytes are decoded as before. Nothing is guessed:
an array is only used for the exact bytes it encodes to.

What changes in the numbers: the measurements see the pixels before the JPEG encoder's rounding
instead of after it. On graphics the encoder's ringing made a few flat pixels non-flat, so their
unnatural score rises slightly (away from the threshold); photographs' sensor noise is far larger
than quality-95 rounding. Measured in tests/test_crawl_image.py and in the module doc of
measure_writer.py.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

_last = threading.local()


class _Cv2WithTap:
    """OpenCV, except that `imencode` remembers (per thread) what it encoded."""

    def __init__(self, cv2: Any) -> None:
        self._cv2 = cv2

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cv2, name)

    def imencode(self, ext: str, img: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        ok, buf = self._cv2.imencode(ext, img, *args, **kwargs)
        _last.value = (img, buf) if ok else None
        return ok, buf


def install() -> None:
    """Tap img2dataset's resizer in this process (idempotent; only workers need it)."""
    import cv2
    import img2dataset.resizer as resizer

    if not isinstance(resizer.cv2, _Cv2WithTap):
        resizer.cv2 = _Cv2WithTap(cv2)


def take(img_str: bytes | None) -> np.ndarray | None:
    """The array this thread last encoded, if `img_str` is exactly its encoding; forgets it either way."""
    last = getattr(_last, "value", None)
    _last.value = None
    if last is None or img_str is None:
        return None
    array, buf = last
    if buf.size != len(img_str) or buf.tobytes() != img_str:  # ~25 us for 500 KB (memoryview's == is 20x slower)
        return None
    return array
