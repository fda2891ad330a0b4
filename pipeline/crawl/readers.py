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
    ref: str = ""  # where the page sits in the input ("file@offset"): part of its samples' keys

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


def _html_response(record) -> bool:  # a warcio ArcWarcRecord
    if record.rec_type != "response" or record.http_headers is None:
        return False
    ctype = record.http_headers.get_header("Content-Type") or ""
    if ctype.split(";", 1)[0].strip().lower() not in HTML_TYPES:
        return False
    return (record.http_headers.get_statuscode() or "0").startswith("2")


BAD_RECORD_HEADER = "x-laitkit-bad-record"  # pseudo-header of the Page standing for a corrupt record


def _warc_records(path: str | Path, start: int = 0, end: int | None = None, want=_html_response):
    """(absolute offset, record) of the records `want`ed (default: HTML 2xx responses) that start
    in [start, end), and (offset, BadRecord) for each corrupt stretch, after which reading resumes
    at the next record start (warc_tolerant.py: one bad gzip member must not lose the rest of the
    file). WAT files are WARC files too (`want` picks their metadata records, see wat.py)."""
    from warcio.archiveiterator import ArchiveIterator

    from laitkit.pipeline import storage
    from laitkit.pipeline.crawl.warc_tolerant import BadRecord, next_record_start

    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    with storage.open_binary(str(path)) as fh:
        pos = start
        while True:
            fh.seek(pos)  # a record boundary (each record is its own gzip member in a .warc.gz)
            gz = fh.read(2) == b"\x1f\x8b"
            fh.seek(pos)
            it = ArchiveIterator(fh)
            last = pos - 1
            try:
                for record in it:
                    # `it.offset` is where the current record starts (absolute: the iterator starts at
                    # fh.tell()); `get_record_offset()` would read the record to its end first.
                    offset = it.offset
                    offset = offset + pos if offset < pos else offset
                    if end is not None and offset >= end:
                        return
                    last = offset
                    if want(record):
                        yield offset, record
                return
            except Exception as exc:  # noqa: BLE001 - warcio/zlib raise many types; each means "bad bytes here"
                failed = max(int(getattr(it, "offset", pos) or pos), last + 1, pos)
                if end is not None and failed >= end:
                    return
                nxt = next_record_start(fh, failed, gz)
                text = "".join(c if c.isprintable() and ord(c) < 0x7F else "?" for c in " ".join(str(exc).split()))
                skipped = (nxt if nxt >= 0 else fh.seek(0, 2)) - failed
                yield failed, BadRecord(name, failed, skipped, f"{type(exc).__name__}: {text[:120]}")
                if nxt < 0:
                    return
                pos = nxt


def iter_warc(path: str | Path, start: int = 0, end: int | None = None) -> Iterator[Page]:
    """HTML `response` records of a WARC or WARC.gz (local or any fsspec URI), with their HTTP
    headers and target URI; with `start`/`end`, only records starting in that byte range.

    Non-2xx responses (error pages) and non-HTML payloads (images stored in the same archive)
    are skipped: they hold no candidate pairs. Each page's `ref` is "file name@record offset".
    A corrupt record comes out as an empty Page whose `BAD_RECORD_HEADER` says what was wrong
    (the crawl gives it the `bad_record` verdict), and reading goes on after it.
    """
    from laitkit.pipeline.crawl.warc_tolerant import BadRecord

    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    for offset, record in _warc_records(path, start, end):
        ref = f"{name}@{offset}"
        if isinstance(record, BadRecord):
            yield Page(url=f"warc-record:{ref}", html="", headers={BAD_RECORD_HEADER: record.detail}, ref=ref)
            continue
        ctype = record.http_headers.get_header("Content-Type") or ""
        url = record.rec_headers.get_header("WARC-Target-URI") or ""
        try:
            body = record.content_stream().read()
        except Exception as exc:  # noqa: BLE001 - a body that fails to inflate; the reader resyncs after it
            detail = f"corrupt WARC record at byte {offset} of {name} ({url}): {type(exc).__name__}"
            yield Page(url=url or f"warc-record:{ref}", html="", headers={BAD_RECORD_HEADER: detail}, ref=ref)
            continue
        headers = normalise_headers(record.http_headers.headers)
        yield Page(url=url, html=decode_html(body, ctype), headers=headers, ref=ref)


def index_warc(path: str | Path, per_shard: int, want=_html_response) -> list[tuple[int, int | None, int]]:
    """Cut one WARC into ranges of `per_shard` HTML pages (or other `want`ed records, such as a
    WAT file's metadata records): [(start, end or None for EOF, count)].

    Why ranges and not pages: the job's plan then holds a few integers per shard, and each Ray
    task seeks to its own range and reads only that (Common Crawl's WARCs are ~1 GB each).
    """
    firsts: list[int] = []
    counts: list[int] = []
    for offset, _ in _warc_records(path, want=want):
        if not counts or counts[-1] == per_shard:
            firsts.append(offset)
            counts.append(0)
        counts[-1] += 1
    return [(firsts[i], firsts[i + 1] if i + 1 < len(firsts) else None, counts[i]) for i in range(len(firsts))]


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
        page_url = url or page_url_from_html(html) or p.resolve().as_uri()
        yield Page(url=page_url, html=html, headers={}, ref=p.name)


def iter_html_dir(root: str | Path, base_url: str = "") -> Iterator[Page]:
    """Every *.html / *.htm file under `root`, in sorted order.

    With `base_url`, a file's URL is `base_url` + its path relative to `root` (a saved site);
    without it, the page's canonical URL, else its file:// URI.
    """
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".html", ".htm") and p.is_file())
    base = base_url.rstrip("/")
    yield from iter_html_files((p, f"{base}/{p.relative_to(root).as_posix()}" if base else "") for p in files)


def iter_url_rows(path: str | Path, start: int = 0, end: int | None = None) -> Iterator[dict[str, str]]:
    """Rows {url, caption, page_url, ref} of an img2dataset-style URL list (parquet, csv, tsv, jsonl).

    A directory is read file by file in sorted order. Missing caption/page_url columns read as ''.
    With `start`/`end` (one file only), rows [start, end) of it. `ref` is "file name#row".
    """
    from laitkit.pipeline import storage

    p = str(path)
    files = [f for f in storage.list_files(p) if _list_format(Path(f))] if storage.isdir(p) else [p]
    for f in files:
        table = _read_table(f, start, end)
        if "url" not in table.column_names:
            raise ValueError(f"{f}: a URL list needs a 'url' column (has {table.column_names})")
        cols = {c: table.column(c).to_pylist() if c in table.column_names else None for c in URL_LIST_COLUMNS}
        name = storage.basename(f)
        for i, url in enumerate(cols["url"]):
            if not url:
                continue
            yield {
                "url": str(url),
                "caption": str((cols["caption"] or [""] * len(cols["url"]))[i] or ""),
                "page_url": str((cols["page_url"] or [""] * len(cols["url"]))[i] or ""),
                "ref": f"{name}#{start + i}",
            }


def count_url_rows(path: str) -> int:
    """Rows in one URL-list file (a parquet footer read; other formats are read whole)."""
    import pyarrow.parquet as pq

    from laitkit.pipeline import storage

    if _list_format(Path(path)) == "parquet":
        with storage.open_binary(path) as fh:
            return pq.ParquetFile(fh).metadata.num_rows
    return _read_table(path).num_rows


def sample_from_url_row(row: dict[str, str]) -> Sample:
    """An img2dataset-style row is already a candidate pair: its caption has source "list".

    The key hashes the URL with the caption, the page URL and the row's place in the input
    (`ref`, "file#row"), so the same image listed with two captions (or on two pages) is two
    samples, and an exact duplicate row is a second sample that dedup rejects as DUP_URL.
    """
    if row.get("source") == "wat":  # a WAT image link travels as a row too (wat.iter_wat_rows)
        from laitkit.pipeline.crawl.wat import sample_from_wat_row

        return sample_from_wat_row(row)
    url, caption, page_url = row["url"], row.get("caption") or "", row.get("page_url") or ""
    texts = [TextCandidate(CaptionSource.LIST, caption)] if caption.strip() else []
    key = make_key(url, caption, page_url, row.get("ref") or "")
    return Sample(key=key, url=url, page_url=page_url, candidates=texts)


def _list_format(f: Path) -> str:
    name = f.name.lower()
    for ext in ("parquet", "csv", "tsv", "jsonl", "json"):
        if name.endswith(f".{ext}"):
            return ext
    return ""


def _read_table(f: str | Path, start: int = 0, end: int | None = None):  # -> pa.Table
    """One URL-list file, or rows [start, end) of it (parquet: only the row groups that overlap)."""
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    from laitkit.pipeline import storage

    fmt = _list_format(Path(str(f)))
    with storage.open_binary(str(f)) as fh:
        if fmt == "parquet":
            pf = pq.ParquetFile(fh)
            meta = pf.metadata
            stop = meta.num_rows if end is None else min(end, meta.num_rows)
            groups, first, row = [], None, 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if row + n > start and row < stop:
                    groups.append(g)
                    first = row if first is None else first
                row += n
            if not groups:
                return pf.schema_arrow.empty_table()
            table = pf.read_row_groups(groups)
            return table.slice(start - first, stop - start)
        if fmt == "csv":
            table = pacsv.read_csv(fh)
        elif fmt == "tsv":
            table = pacsv.read_csv(fh, parse_options=pacsv.ParseOptions(delimiter="\t"))
        elif fmt in ("jsonl", "json"):
            table = pajson.read_json(fh)
        else:
            raise ValueError(f"{f}: unknown URL list format (parquet, csv, tsv or jsonl)")
    stop = table.num_rows if end is None else min(end, table.num_rows)
    return table.slice(start, max(stop - start, 0))
