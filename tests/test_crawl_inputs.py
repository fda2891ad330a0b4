"""WAT input (Common Crawl metadata records) and tolerant reading of hostile archives."""

from __future__ import annotations

import io
import json

from warcio.warcwriter import WARCWriter

from laitkit.datasets.schema import Reason
from laitkit.pipeline.crawl import CrawlConfig, caption_step, lang_step
from laitkit.pipeline.crawl.wat import WatStats, iter_wat_rows, sample_from_wat_row


def _wat_record(page: str, links: list[dict], base: str | None = None) -> bytes:
    head = {"Base": base} if base else {}
    return json.dumps({
        "Container": {"Filename": "CC-MAIN-x.warc.gz"},
        "Envelope": {
            "WARC-Header-Metadata": {"WARC-Target-URI": page, "WARC-Type": "response"},
            "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {"Head": head, "Links": links}}},
        },
    }).encode()  # fmt: skip


def write_wat(path, records: list[bytes]) -> None:
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for i, payload in enumerate(records):
            writer.write_record(writer.create_warc_record(f"http://example.org/{i}", "metadata",
                                                          payload=io.BytesIO(payload), length=len(payload),
                                                          warc_content_type="application/json"))  # fmt: skip


def test_wat_image_links_become_candidates_with_source_wat(tmp_path) -> None:
    wat = tmp_path / "part.warc.wat.gz"
    write_wat(wat, [
        _wat_record("http://news.example/a.html", [
            {"path": "IMG@/src", "url": "/img/boat.jpg", "alt": "A red fishing boat in the harbour"},
            {"path": "A@/href", "url": "/other.html", "text": "next"},
            {"path": "IMG@/src", "url": "pixel.gif"},
            {"path": "IMG@/src", "url": "javascript:void(0)", "alt": "x"},
        ], base="http://cdn.news.example/"),
        b"{not json",
        _wat_record("http://blog.example/b.html", [{"path": "IMG@/src", "url": "http://blog.example/cat.jpg",
                                                   "alt": "IMG_2041.jpg"}]),
    ])  # fmt: skip
    stats = WatStats()
    rows = list(iter_wat_rows(wat, stats))
    assert [r["url"] for r in rows] == ["http://cdn.news.example/img/boat.jpg", "http://cdn.news.example/pixel.gif",
                                        "http://blog.example/cat.jpg"]  # fmt: skip
    assert stats.records == 3 and stats.bad_json == 1 and stats.links == 3
    samples = [sample_from_wat_row(r) for r in rows]
    cfg = CrawlConfig()
    caption_step(samples, cfg)
    lang_step(samples, cfg)
    assert [s.status for s in samples] == [Reason.KEEP, Reason.NO_CAPTION, Reason.USELESS_CAPTION]
    assert samples[0].caption_source == "wat" and samples[0].page_url == "http://news.example/a.html"


def test_canonical_url_drops_tracking_and_spelling_only() -> None:
    from laitkit.pipeline.crawl.canonical import canonical_url

    same = ["HTTP://Cdn.Example:80/a.jpg?utm_source=news&b=1&fbclid=xyz", "http://cdn.example/a.jpg?b=1#top",
            "http://cdn.example/a.jpg?b=1&gclid=1&utm_campaign=spring"]  # fmt: skip
    assert {canonical_url(u) for u in same} == {"http://cdn.example/a.jpg?b=1"}
    assert canonical_url("https://x.org:443/p/%7efoo.jpg") == "https://x.org/p/~foo.jpg"
    assert canonical_url("http://x.org/img?width=300&id=3") == "http://x.org/img?id=3&width=300"
    assert canonical_url("http://x.org/img?id=3") != canonical_url("http://x.org/img?id=4")  # content params stay
    assert canonical_url("http://x.org:8080/a") == "http://x.org:8080/a"


def _warc_bytes(pages: int, gz: bool) -> tuple[bytearray, list[int]]:
    from warcio.statusandheaders import StatusAndHeaders

    buf, offsets = io.BytesIO(), []
    writer = WARCWriter(buf, gzip=gz)
    for i in range(pages):
        offsets.append(buf.tell())
        body = f"<html><body><article><img src='/{i}.jpg' alt='A red boat number {i} in the harbour'></article>" \
            "</body></html>"  # fmt: skip
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(f"http://e.org/{i}.html", "response", payload=io.BytesIO(
            body.encode()), length=len(body.encode()), http_headers=http))  # fmt: skip
    return bytearray(buf.getvalue()), offsets


def test_tolerant_reader_skips_a_corrupt_record_and_reads_the_rest(tmp_path) -> None:
    from laitkit.pipeline.crawl.warc_tolerant import BadRecord, iter_records_tolerant

    for gz in (True, False):
        data, offsets = _warc_bytes(4, gz)
        at = offsets[1] + (30 if gz else 2)
        data[at : at + 20] = b"\0" * 20  # one bad gzip member / one mangled WARC header
        path = tmp_path / f"bad{int(gz)}.warc"
        path.write_bytes(bytes(data))
        got = []
        for item in iter_records_tolerant(path):
            if isinstance(item, BadRecord):
                got.append(("bad", item.offset))
            else:
                record, offset = item
                record.content_stream().read()
                got.append((record.rec_headers.get_header("WARC-Target-URI"), offset))
        assert got == [("http://e.org/0.html", 0), ("bad", offsets[1]), ("http://e.org/2.html", offsets[2]),
                       ("http://e.org/3.html", offsets[3])], (gz, got)  # fmt: skip


def test_corrupt_warc_record_gets_a_verdict_and_the_rest_is_crawled(tmp_path) -> None:
    from laitkit.pipeline.crawl import page_samples, readers

    data, offsets = _warc_bytes(4, True)
    data[offsets[1] + 30 : offsets[1] + 50] = b"\0" * 20  # one bad gzip member
    path = tmp_path / "pages.warc.gz"
    path.write_bytes(bytes(data))
    samples = [s for page in readers.iter_warc(path) for s in page_samples(page, CrawlConfig())]
    assert [str(s.status) for s in samples] == ["keep", "bad_record", "keep", "keep"]
    assert samples[1].verdicts[0].stage == "read" and f"byte {offsets[1]}" in samples[1].verdicts[0].detail
    assert [s.url for s in samples if s.kept] == ["http://e.org/0.jpg", "http://e.org/2.jpg", "http://e.org/3.jpg"]


def test_dedup_treats_tracking_and_case_variants_as_one_url() -> None:
    from laitkit.datasets.schema import Sample
    from laitkit.pipeline.crawl import dedup_step

    a = Sample(key="a", url="http://cdn.example/a.jpg?b=1", page_url="http://p/1")
    b = Sample(key="b", url="HTTP://CDN.example:80/a.jpg?utm_source=mail&b=1", page_url="http://p/2")
    for s in (a, b):
        s.accept("test")
    dedup_step([a, b], CrawlConfig())
    assert a.status == Reason.KEEP and b.status == Reason.DUP_URL
