"""Where candidate pages and pairs come from: WARC archives, saved HTML files, img2dataset URL lists.

Why a `Page` and not raw records: every later step needs the same three things — the page URL
(to resolve relative image URLs), the HTML as text, and the HTTP headers (X-Robots-Tag decides
whether the page may be used at all). Readers normalise those once: header names are lower-cased
and a repeated header is joined with a newline, so each `X-Robots-Tag` line keeps its own
user-agent scope and the dict stays JSON-serialisable for the input shards.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from laitkit.datasets.schema import CaptionSource, Sample, TextCandidate, make_key

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
URL_LIST_COLUMNS = ("url", "caption", "page_url")
_CHARSET_HTTP = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)
_CHARSET_META = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)
_CANONICAL = (
    re.compile(r"<link[^>]+rel=[\"']?canonical[\"']?[^>]*href=[\"']([^\"']+)[\"']", re.I),
    re.compile(r"<link[^>]+href=[\"']([^\"']+)[\"'][^>]*rel=[\"']?canonical", re.I),
    re.compile(r"<meta[^>]+property=[\"']og:url[\"'][^>]*content=[\"']([^\"']+)[\"']", re.I),
)


@dataclass
class Page:
    """One fetched HTML page: its URL, its text and its HTTP headers (lower-case names)."""

    url: str
    html: str
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.headers = normalise_headers(self.headers.items() if isinstance(self.headers, dict) else self.headers)

    def header(self, name: str) -> list[str]:
        """Every value of header `name` (one per original header line)."""
        value = self.headers.get(name.lower(), "")
        return [v for v in value.split("\n") if v.strip()] if value else []


def normalise_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; repeated headers joined by newlines (commas would merge UA scopes)."""
    out: dict[str, str] = {}
    for name, value in items:
        key = str(name).strip().lower()
        out[key] = f"{out[key]}\n{value}" if key in out else str(value)
    return out


def decode_html(body: bytes, content_type: str = "") -> str:
    """Bytes → text: HTTP charset, else a `<meta charset>` in the first 2 KB, else UTF-8.

    Undecodable bytes are replaced, never fatal: one bad byte must not lose a page.
    """
    m = _CHARSET_HTTP.search(content_type or "")
    charset = m.group(1) if m else None
    if charset is None:
        mm = _CHARSET_META.search(body[:2048])
        charset = mm.group(1).decode("ascii", "replace") if mm else "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # unknown charset name
        return body.decode("utf-8", errors="replace")


BAD_RECORD_HEADER = "x-laitkit-bad-record"  # pseudo-header of the Page standing for a corrupt record


def iter_warc(path: str | Path) -> Iterator[Page]:
    """HTML `response` records of a WARC or WARC.gz, with their HTTP headers and target URI.

    Non-2xx responses (error pages) and non-HTML payloads (images stored in the same archive)
    are skipped: they hold no candidate pairs. A corrupt record is skipped and the rest of the
    file read (warc_tolerant.py); it comes out as an empty Page whose `BAD_RECORD_HEADER` says
    what was wrong, so the crawl records a `bad_record` verdict for it instead of losing it.
    """
    from laitkit.pipeline.crawl.warc_tolerant import BadRecord, iter_records_tolerant

    for item in iter_records_tolerant(path):
        if isinstance(item, BadRecord):
            where = item.target_uri or f"warc-record:{Path(path).name}@{item.offset}"
            yield Page(url=where, html="", headers={BAD_RECORD_HEADER: item.detail})
            continue
        record, offset = item
        if record.rec_type != "response" or record.http_headers is None:
            continue
        ctype = record.http_headers.get_header("Content-Type") or ""
        if ctype.split(";", 1)[0].strip().lower() not in HTML_TYPES:
            continue
        status = record.http_headers.get_statuscode() or "0"
        if not status.startswith("2"):
            continue
        url = record.rec_headers.get_header("WARC-Target-URI") or ""
        try:
            body = record.content_stream().read()
        except Exception as exc:  # noqa: BLE001 - a body that fails to inflate: the reader resyncs after it
            detail = f"corrupt WARC record at byte {offset} of {Path(path).name} ({url}): {type(exc).__name__}: {exc}"
            yield Page(url=url or f"warc-record:{Path(path).name}@{offset}", html="",
                       headers={BAD_RECORD_HEADER: detail[:300]})  # fmt: skip
            continue
        yield Page(url=url, html=decode_html(body, ctype), headers=normalise_headers(record.http_headers.headers))


def page_url_from_html(html: str) -> str:
    """The page's own absolute http(s) URL if it declares one (canonical link or og:url), else ''."""
    head = html[:20000]
    for pattern in _CANONICAL:
        m = pattern.search(head)
        if m and m.group(1).lower().startswith(("http://", "https://")):
            return m.group(1).strip()
    return ""


def iter_html_files(files: Iterable[tuple[str | Path, str]]) -> Iterator[Page]:
    """Pages from (file, URL) pairs; an empty URL falls back to the page's canonical URL, then file://.

    A file:// page URL is kept for provenance, but images that resolve to file:// are never
    downloaded (only http/https are fetched), so give real URLs when the images should be used.
    """
    for f, url in files:
        p = Path(f)
        html = decode_html(p.read_bytes())
        yield Page(url=url or page_url_from_html(html) or p.resolve().as_uri(), html=html, headers={})


def iter_html_dir(root: str | Path, base_url: str = "") -> Iterator[Page]:
    """Every *.html / *.htm file under `root`, in sorted order.

    With `base_url`, a file's URL is `base_url` + its path relative to `root` (a saved site);
    without it, the page's canonical URL, else its file:// URI.
    """
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".html", ".htm") and p.is_file())
    base = base_url.rstrip("/")
    yield from iter_html_files((p, f"{base}/{p.relative_to(root).as_posix()}" if base else "") for p in files)


def iter_url_rows(path: str | Path) -> Iterator[dict[str, str]]:
    """Rows {url, caption, page_url} of an img2dataset-style URL list (parquet, csv, tsv, jsonl).

    A directory is read file by file in sorted order. Missing caption/page_url columns read as ''.
    """
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.is_file() and _list_format(f)) if p.is_dir() else [p]
    for f in files:
        table = _read_table(f)
        if "url" not in table.column_names:
            raise ValueError(f"{f}: a URL list needs a 'url' column (has {table.column_names})")
        cols = {c: table.column(c).to_pylist() if c in table.column_names else None for c in URL_LIST_COLUMNS}
        for i, url in enumerate(cols["url"]):
            if not url:
                continue
            yield {
                "url": str(url),
                "caption": str((cols["caption"] or [""] * len(cols["url"]))[i] or ""),
                "page_url": str((cols["page_url"] or [""] * len(cols["url"]))[i] or ""),
            }


def sample_from_url_row(row: dict[str, str]) -> Sample:
    """An img2dataset-style row is already a candidate pair: its caption has source "list".

    The key hashes the URL with the caption and page URL, so the same image listed with two
    captions (or on two pages) is two samples.
    """
    url, caption, page_url = row["url"], row.get("caption") or "", row.get("page_url") or ""
    texts = [TextCandidate(CaptionSource.LIST, caption)] if caption.strip() else []
    return Sample(key=make_key(url, f"{caption}\n{page_url}"), url=url, page_url=page_url, candidates=texts)


def _list_format(f: Path) -> str:
    name = f.name.lower()
    for ext in ("parquet", "csv", "tsv", "jsonl", "json"):
        if name.endswith(f".{ext}"):
            return ext
    return ""


def _read_table(f: Path):  # -> pa.Table
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    fmt = _list_format(f)
    if fmt == "parquet":
        return pq.read_table(f)
    if fmt == "csv":
        return pacsv.read_csv(f)
    if fmt == "tsv":
        return pacsv.read_csv(f, parse_options=pacsv.ParseOptions(delimiter="\t"))
    if fmt in ("jsonl", "json"):
        return pajson.read_json(f)
    raise ValueError(f"{f}: unknown URL list format (parquet, csv, tsv or jsonl)")
