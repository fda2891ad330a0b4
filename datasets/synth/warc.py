"""A deterministic WARC of the synthetic web, for crawl tests that read archives instead of HTTP.

Why not warcio's defaults: warcio stamps each record with the current time and a random UUID, so
two runs would differ. Here WARC-Date counts up from a fixed instant and WARC-Record-ID is a UUIDv5
of (seed, base URL, URI, index). Each record is its own gzip member (the usual .warc.gz layout,
readable by warcio's ArchiveIterator) written with mtime=0 and a fast level: the payloads are
mostly JPEG, which level 9 only makes slower.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from io import BytesIO
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from laitkit.datasets.synth.faults import Fault, Response, respond

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def write_warc(path: Path, records: Iterable[tuple[str, Response]], seed: int, base_url: str) -> int:
    """Write one `response` record per (absolute URI, response); hanging responses are skipped.

    Returns the number of records written.
    """
    n = 0
    with path.open("wb") as fh:
        for uri, resp in records:
            if resp.hang:
                continue  # a timed-out fetch leaves nothing in a real crawl's archive either
            status = f"{resp.status} {HTTPStatus(resp.status).phrase}"
            http_headers = StatusAndHeaders(status, list(resp.headers), protocol="HTTP/1.1")
            date = (_EPOCH + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
            rid = uuid.uuid5(uuid.NAMESPACE_URL, f"laitkit-synth|{seed}|{base_url}|{uri}|{n}")
            buf = BytesIO()
            writer = WARCWriter(buf, gzip=False)
            record = writer.create_warc_record(
                uri,
                "response",
                payload=BytesIO(resp.body),
                length=len(resp.body),
                http_headers=http_headers,
                warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": f"<urn:uuid:{rid}>"},
            )
            writer.write_record(record)
            fh.write(gzip.compress(buf.getvalue(), compresslevel=3, mtime=0))
            n += 1
    return n


def site_responses(
    site: Path, faults: dict[str, Fault], paths: Iterable[str], base_url: str
) -> Iterator[tuple[str, Response]]:
    """(absolute URI, response) for each distinct path, in order, following redirects once each."""
    seen: set[str] = set()
    for start in paths:
        path = start
        while path not in seen:
            seen.add(path)
            resp = respond(site, faults, path)
            yield base_url + path, resp
            path = dict(resp.headers).get("Location", "")
            if not path:
                break
