"""Common Crawl WAT input: image links with their alt text, for corpora that need no DOM context.

Why: a WAT file holds, per crawled page, the JSON metadata Common Crawl extracted from it —
including every link with its tag path and attributes — at a fraction of the WARC's size.
cc2dataset builds image-text sets from exactly this: the `Links` entries whose `path` is
`IMG@/src` (the `src` of an `<img>`) with a non-empty `alt`. There is no DOM here, so no main
vs decoy judgement: every image link becomes a candidate whose only text is that alt, with
caption source "wat" so that later analysis can tell these pairs from DOM-chosen ones.

Record layout (JSON payload of a WARC `metadata` record):
`Envelope.WARC-Header-Metadata.WARC-Target-URI` is the page; `Envelope.Payload-Metadata.
HTTP-Response-Metadata.HTML-Metadata.Links[]` holds `{path, url, alt?, title?}`, and
`...HTML-Metadata.Head.Base` (optional) the `<base href>`; relative URLs are resolved against it.
A record that is not valid JSON is counted and skipped, never fatal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from laitkit.datasets.schema import CaptionSource, Sample, TextCandidate, make_key

log = logging.getLogger(__name__)
IMG_PATHS = ("IMG@/src",)


@dataclass
class WatStats:
    records: int = 0
    bad_json: int = 0
    links: int = 0
    errors: list[str] = field(default_factory=list)


def iter_wat_rows(path: str | Path, stats: WatStats | None = None) -> Iterator[dict[str, str]]:
    """Rows {url, caption, page_url} of every `<img src>` link of every page in a WAT(.gz) file."""
    from warcio.archiveiterator import ArchiveIterator

    stats = stats if stats is not None else WatStats()
    with open(path, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type != "metadata":
                continue
            stats.records += 1
            raw = record.content_stream().read()
            try:
                doc = json.loads(raw)
                envelope = doc["Envelope"]
            except (ValueError, KeyError, TypeError) as exc:
                stats.bad_json += 1
                stats.errors.append(f"record {stats.records}: not WAT JSON ({exc})"[:200])
                continue
            page_url = str((envelope.get("WARC-Header-Metadata") or {}).get("WARC-Target-URI") or "")
            html_meta = ((envelope.get("Payload-Metadata") or {}).get("HTTP-Response-Metadata") or {}).get(
                "HTML-Metadata"
            ) or {}
            base = page_url
            head_base = (html_meta.get("Head") or {}).get("Base")
            if isinstance(head_base, str) and head_base.strip():
                base = urljoin(page_url, head_base.strip())
            for link in html_meta.get("Links") or []:
                if not isinstance(link, dict) or link.get("path") not in IMG_PATHS:
                    continue
                url = urljoin(base, str(link.get("url") or "").strip())
                if urlsplit(url).scheme.lower() not in ("http", "https"):
                    continue
                stats.links += 1
                yield {"url": url, "caption": " ".join(str(link.get("alt") or "").split()), "page_url": page_url}


def sample_from_wat_row(row: dict[str, str]) -> Sample:
    """A WAT image link as a candidate: its alt (if any) is its only text, source "wat"."""
    url, caption, page_url = row["url"], row.get("caption") or "", row.get("page_url") or ""
    texts = [TextCandidate(CaptionSource.WAT, caption)] if caption.strip() else []
    return Sample(key=make_key(url, f"wat\n{caption}\n{page_url}"), url=url, page_url=page_url, candidates=texts)


def crawl_wat(path: str | Path, cfg=None, work_dir: str | Path = "crawl_work") -> list[Sample]:
    """Like `crawl_url_rows` for a WAT file: every image link with a verdict (no robots/DOM steps)."""
    from laitkit.pipeline.crawl import CrawlConfig, crawl_samples

    return crawl_samples([sample_from_wat_row(r) for r in iter_wat_rows(path)], cfg or CrawlConfig(), work_dir)
