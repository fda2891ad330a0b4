"""Page-level opt-outs: `X-Robots-Tag` headers and `<meta name="robots">` tags saying noai.

Why here and in img2dataset both: img2dataset checks the *image* response's X-Robots-Tag when it
downloads; a page can opt out of AI use for everything it shows, and then none of its images
may be used even when the image responses say nothing. The parsing rule is img2dataset's
(`downloader.is_disallowed`): each header line is `[token:] directive, directive...`; a line
applies when it names no user-agent token or names ours; it disallows when any directive is in
the disallowed set. Meta tags named `robots` or our token are read with the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from laitkit.pipeline.crawl.html_images import parse_html
from laitkit.pipeline.crawl.readers import Page

DEFAULT_DISALLOWED = ("noai", "noimageai", "noindex", "noimageindex")  # img2dataset 1.47's default set
_VALUE_DIRECTIVES = frozenset({"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"})


def line_disallows(value: str, token: str, disallowed: Iterable[str], *, ua_prefix: bool = True) -> bool:
    """Whether one X-Robots-Tag line (or meta content) forbids use for user agent `token`.

    Unlike img2dataset, a leading `max-image-preview:large` is read as a directive with a value,
    not as a user-agent token, so it cannot hide a `noai` that follows it.
    """
    ua, rest = None, value
    head, sep, tail = value.partition(":")
    if ua_prefix and sep and "," not in head and head.strip().lower() not in _VALUE_DIRECTIVES:
        ua, rest = head.strip().lower(), tail
    directives = {d.split(":", 1)[0].strip().lower() for d in rest.split(",")}
    wanted = {d.strip().lower() for d in disallowed}
    return (ua is None or ua == token.strip().lower()) and bool(directives & wanted)


def page_opt_out(page: Page, *, token: str = "laitkit", disallowed: Iterable[str] = DEFAULT_DISALLOWED) -> str:
    """'' when the page may be used, else which header or meta tag forbids it (the verdict detail)."""
    disallowed = tuple(disallowed)
    if not disallowed:
        return ""
    for line in page.header("x-robots-tag"):
        if line_disallows(line, token, disallowed):
            return f"X-Robots-Tag: {line.strip()}"
    if "robots" not in page.html[:50000].lower() and token.lower() not in page.html[:50000].lower():
        return ""  # no meta tag can match: skip parsing
    doc = parse_html(page.html)
    if doc is None:
        return ""
    for meta in doc.iter("meta"):
        name = (meta.get("name") or "").strip().lower()
        if name in ("robots", token.strip().lower()):
            content = meta.get("content") or ""
            if line_disallows(content, token, disallowed, ua_prefix=False):
                return f'<meta name="{name}" content="{content.strip()}">'
    return ""
