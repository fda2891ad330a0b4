"""Choose one caption per image from its candidate texts, LAIT-style: alt text first.

Why alt first and a fallback chain: ImageBERT's LAIT pairs an image with its alt text; where a
page has none, the figcaption, the `title` attribute and finally the nearest paragraph are the
next best descriptions. A text is skipped when it cannot describe anything: camera file names
(IMG_2041.jpg, DSC00123), generic words ("image", "photo"), numbers, URLs, fewer than 3 or more
than 80 words (in Chinese or Japanese, two characters count as a word). The verdict separates
"no text at all" (NO_CAPTION) from "only useless text" (USELESS_CAPTION), because the two point
at different crawler problems.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from laitkit.datasets.schema import CaptionSource, Reason, TextCandidate

DEFAULT_ORDER = ("alt", "figcaption", "title", "surrounding", "list", "wat")
GENERIC_WORDS = frozenset(
    {
        "image", "images", "img", "photo", "photos", "picture", "pictures", "pic", "pics", "photograph",
        "untitled", "thumbnail", "thumb", "logo", "icon", "banner", "placeholder", "spacer", "blank", "default",
        "null", "none", "undefined", "alt", "screenshot", "graphic", "figure", "fig", "jpg", "jpeg", "png", "gif",
        "webp", "click", "here", "enlarge", "zoom", "view", "larger", "full", "size", "the", "a", "an", "of",
        "and", "to", "this", "my", "our", "your", "image1", "photo1",
    }
)  # fmt: skip
_FILE_EXT = r"(?:jpe?g|png|gif|webp|bmp|tiff?|svg|heic|avif)"
_FILE_NAME = re.compile(rf"^[\w\-.() ]*\.{_FILE_EXT}$", re.I)
_CAMERA_NAME = re.compile(rf"^[a-z]{{0,10}}[_\-]?\d{{2,}}(?:[_\-]\d+)*(?:\.{_FILE_EXT})?$", re.I)
_URL_LIKE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)|^[\w-]+(?:\.[\w-]+)+/\S*$", re.I)
_HAS_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"\S+")
#: scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar)
_NO_SPACE_SCRIPT = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f]"
)


def word_count(text: str) -> int:
    """Words of `text`; in a script written without spaces, every two characters count as one
    word (Chinese words average 1.5-2 characters), so a Chinese sentence is not "1 word"."""
    n = 0
    for tok in _WORD.findall(text):
        dense = len(_NO_SPACE_SCRIPT.findall(tok))
        n += max(1, -(-dense // 2)) if dense else 1
    return n


@dataclass(frozen=True)
class CaptionChoice:
    """The chosen caption and its source, or the reason none was usable (caption '' then)."""

    caption: str
    source: str
    reason: Reason
    detail: str


def useless_reason(text: str, *, min_words: int = 3, max_words: int = 80) -> str:
    """Why `text` cannot be a caption ('' when it can). Cheap string rules, no model."""
    t = " ".join(text.split())
    if not t:
        return "empty"
    if not _HAS_LETTER.search(t):
        return "no letters"
    if _FILE_NAME.match(t) or _CAMERA_NAME.match(t):
        return "file name"
    if _URL_LIKE.match(t):
        return "URL"
    words = _WORD.findall(t)
    if all(re.sub(r"[^\w]", "", w).lower() in GENERIC_WORDS or not _HAS_LETTER.search(w) for w in words):
        return "generic words"
    n = word_count(t)
    if n < min_words:
        return f"{n} words < {min_words}"
    if n > max_words:
        return f"{n} words > {max_words}"
    return ""


def choose_caption(
    candidates: Sequence[TextCandidate],
    *,
    order: Sequence[str] = DEFAULT_ORDER,
    min_words: int = 3,
    max_words: int = 80,
) -> CaptionChoice:
    """The first usable text in source `order` (within a source, in page order).

    Sources not in `order` (e.g. og) are kept on the sample but never chosen.
    """
    skipped: list[str] = []
    for source in order:
        for cand in candidates:
            if str(cand.source) != source:
                continue
            why = useless_reason(cand.text, min_words=min_words, max_words=max_words)
            if not why:
                return CaptionChoice(" ".join(cand.text.split()), source, Reason.KEEP, f"from {source}")
            skipped.append(f"{source}: {why} ({cand.text[:40]!r})")
    if any(c.text.strip() for c in candidates):
        return CaptionChoice("", "", Reason.USELESS_CAPTION, "; ".join(skipped) or "no text in an allowed source")
    return CaptionChoice("", "", Reason.NO_CAPTION, "no alt, figcaption, title or surrounding text")


__all__ = ["CaptionChoice", "CaptionSource", "DEFAULT_ORDER", "choose_caption", "useless_reason"]
