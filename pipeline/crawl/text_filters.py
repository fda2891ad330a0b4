"""NSFW keyword filter on the caption and the image URL.

Why keywords: at crawl time the image is not downloaded yet, and the cheapest useful signal is
the words around it; an explicit caption or URL ("xxx", "porn") is a strong indicator and costs
nothing to check. Matching is on whole tokens (so "Sussex" and "Essex" are not "sex"), over the
caption and the URL's path and query. The score is 1 - 0.5^hits: 0 for no hit, 0.5 for one,
0.75 for two...; a sample is rejected when it reaches the threshold (default 0.5: one hit).
Image-based NSFW classification can be layered on later; this filter never sees pixels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

DEFAULT_NSFW_WORDS = (
    "porn", "porno", "pornographic", "pornography", "xxx", "nsfw", "nude", "nudes", "nudity", "naked",
    "hentai", "erotic", "erotica", "fetish", "milf", "sex", "sexual", "topless", "boobs", "tits", "camgirl",
    "onlyfans", "bdsm", "upskirt", "stripper", "orgy", "blowjob", "hardcore", "xvideos", "pornhub",
)  # fmt: skip
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def url_text(url: str) -> str:
    """The human-chosen parts of a URL (path and query, percent-decoded); the host is left out."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed URL (download gives it its verdict): all of it is text then
        return unquote(url)
    return unquote(f"{parts.path} {parts.query}")


def nsfw_hits(caption: str, url: str = "", words: Iterable[str] = DEFAULT_NSFW_WORDS) -> list[str]:
    """The listed words found as whole tokens in the caption and the URL (repeats counted once per place)."""
    vocab = {w.lower() for w in words}
    hits = sorted(set(tokens(caption)) & vocab)
    hits += [f"url:{w}" for w in sorted(set(tokens(url_text(url))) & vocab)] if url else []
    return hits


def nsfw_score(hits: list[str]) -> float:
    return 1.0 - 0.5 ** len(hits)
