"""Read every good record of a WARC even when some are corrupt: skip the bad one, say so, go on.

Why: warcio stops at the first corrupt gzip member or malformed record with an exception, so one
bad byte in a 1 GB Common Crawl file would lose every page after it (or crash the job). A
`.warc.gz` is a sequence of independent gzip members, one per record: after a failure the reader
scans forward from the failing offset for the next gzip member header (`1f 8b 08`) — or, in an
uncompressed WARC, the next line starting `WARC/1.` — and resumes there. Each skipped stretch is
reported as a `BadRecord` (file offset, how many bytes were skipped, the error), so the caller
can give it a verdict instead of losing it silently.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_MAGIC = b"\nWARC/1."
MAX_RESYNCS = 10_000


@dataclass(frozen=True)
class BadRecord:
    """A stretch of the file that could not be read as WARC records."""

    path: str
    offset: int
    skipped: int
    error: str
    target_uri: str = ""  # when the record's WARC headers were readable

    @property
    def detail(self) -> str:
        where = f" ({self.target_uri})" if self.target_uri else ""
        return f"corrupt WARC record at byte {self.offset} of {Path(self.path).name}{where}: {self.error}; " \
            f"skipped {self.skipped} bytes"  # fmt: skip


def next_record_start(fh, after: int, gz: bool, chunk: int = 1 << 20) -> int:
    """Offset of the next record start strictly after `after` in a seekable binary file, or -1.

    Streams in 1 MiB chunks (with an overlap for a magic split across chunks): a 1 GB WARC is
    never read whole.
    """
    magic = _GZIP_MAGIC if gz else _WARC_MAGIC
    pos = after + 1
    fh.seek(pos)
    tail = b""
    while True:
        block = fh.read(chunk)
        if not block:
            return -1
        data = tail + block
        i = data.find(magic)
        if i >= 0:
            found = pos - len(tail) + i
            return found if gz else found + 1
        tail = data[-(len(magic) - 1) :]
        pos += len(block)


def _next_start(data: bytes, after: int, gz: bool) -> int:
    """Offset of the next record start strictly after `after`, or -1."""
    if gz:
        return data.find(_GZIP_MAGIC, after + 1)
    i = data.find(_WARC_MAGIC, after)
    return -1 if i < 0 else i + 1


def iter_records_tolerant(path: str | Path) -> Iterator[tuple[object, int] | BadRecord]:
    """(warcio record, its offset) for every readable record, and a `BadRecord` for each stretch skipped.

    Each record's content must be consumed by the caller before the next item is requested (as with
    warcio itself).
    """
    from warcio.archiveiterator import ArchiveIterator

    data = Path(path).read_bytes()
    gz = data[:2] == b"\x1f\x8b"
    start, resyncs = 0, 0
    while start < len(data) and resyncs <= MAX_RESYNCS:
        stream = io.BytesIO(data)
        stream.seek(start)
        it = ArchiveIterator(stream)
        last, uri = start - 1, ""
        try:
            for record in it:
                last = int(it.offset)  # the record's start (get_record_offset() would consume the record)
                uri = record.rec_headers.get_header("WARC-Target-URI") or ""
                yield record, last
                uri = ""
            return
        except Exception as exc:  # noqa: BLE001 - warcio/zlib raise many types; each means "bad bytes here"
            failed_at = min(len(data) - 1, max(int(getattr(it, "offset", start) or start), last + 1, start))
            nxt = _next_start(data, failed_at, gz)
            end = nxt if nxt > 0 else len(data)
            text = "".join(c if c.isprintable() and ord(c) < 0x7F else "?" for c in " ".join(str(exc).split()))
            err = f"{type(exc).__name__}: {text[:120]}"
            log.warning("%s: skipping %d bytes at %d: %s", path, end - failed_at, failed_at, err)
            yield BadRecord(str(path), failed_at, end - failed_at, err, uri)
            if nxt < 0:
                return
            start, resyncs = nxt, resyncs + 1
