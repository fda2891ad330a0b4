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

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from laitkit.datasets.schema import CaptionSource, Reason, Sample, TextCandidate, make_key

log = logging.getLogger(__name__)
IMG_PATHS = ("IMG@/src",)


@dataclass
class WatStats:
    records: int = 0
    bad_json: int = 0
    bad_records: int = 0
    links: int = 0
    errors: list[str] = field(default_factory=list)


def is_wat_metadata(record) -> bool:  # a warcio ArcWarcRecord
    """The WAT records that describe a page (the others are warcinfo)."""
    return record.rec_type == "metadata"


def iter_wat_rows(
    path: str | Path, stats: WatStats | None = None, start: int = 0, end: int | None = None
) -> Iterator[dict[str, str]]:
    """Rows {url, caption, page_url, ref, source} of every `<img src>` link of every page in a
    WAT(.gz) file (local or fsspec URI); with `start`/`end`, of the records starting in that byte
    range (the job's plan cuts WAT files like WARCs: readers.index_warc with `is_wat_metadata`).

    A corrupt record (bad gzip member or header) becomes one row with a `bad_record` detail
    (a `bad_record` sample), and reading goes on after it; a record that is not WAT JSON has no
    links to report and is counted in `stats`.
    """
    from laitkit.pipeline.crawl.readers import _warc_records
    from laitkit.pipeline.crawl.warc_tolerant import BadRecord

    stats = stats if stats is not None else WatStats()
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    for offset, record in _warc_records(path, start, end, want=is_wat_metadata):
        ref = f"{name}@{offset}"
        if isinstance(record, BadRecord):
            stats.bad_records += 1
            stats.errors.append(record.detail[:200])
            yield {"url": f"warc-record:{ref}", "caption": "", "page_url": "", "ref": ref, "source": "wat",
                   "bad_record": record.detail}  # fmt: skip
            continue
        stats.records += 1
        try:
            doc = json.loads(record.content_stream().read())
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
            with contextlib.suppress(ValueError):  # a malformed base is ignored, as browsers do
                base = urljoin(page_url, head_base.strip())
        for i, link in enumerate(html_meta.get("Links") or []):
            if not isinstance(link, dict) or link.get("path") not in IMG_PATHS:
                continue
            raw = str(link.get("url") or "").strip()
            try:
                url = urljoin(base, raw)
                if urlsplit(url).scheme.lower() not in ("http", "https"):
                    continue
            except ValueError:  # malformed: kept as a candidate, the download step gives its verdict
                url = raw
                if not raw.lower().startswith(("http://", "https://")):
                    continue
            stats.links += 1
            yield {"url": url, "caption": " ".join(str(link.get("alt") or "").split()), "page_url": page_url,
                   "ref": f"{ref}#{i}", "source": "wat"}  # fmt: skip


def sample_from_wat_row(row: dict[str, str]) -> Sample:
    """A WAT image link as a candidate: its alt (if any) is its only text, source "wat".

    The key includes the link's place (`ref`: file@record#link), so one image linked twice on a
    page, or the same page archived twice, is two samples (dedup then decides), never one key."""
    url, caption, page_url = row["url"], row.get("caption") or "", row.get("page_url") or ""
    key = make_key(url, f"wat\n{caption}\n{page_url}", row.get("ref") or "")
    if row.get("bad_record"):
        s = Sample(key=key, url=url, page_url=page_url)
        s.reject("read", Reason.BAD_RECORD, row["bad_record"])
        return s
    texts = [TextCandidate(CaptionSource.WAT, caption)] if caption.strip() else []
    return Sample(key=key, url=url, page_url=page_url, candidates=texts)


def crawl_wat(path: str | Path, cfg=None, work_dir: str | Path = "crawl_work") -> list[Sample]:
    """Like `crawl_url_rows` for a WAT file: every image link with a verdict (no robots/DOM steps)."""
    from laitkit.pipeline.crawl import CrawlConfig, crawl_samples

    return crawl_samples([sample_from_wat_row(r) for r in iter_wat_rows(path)], cfg or CrawlConfig(), work_dir)
