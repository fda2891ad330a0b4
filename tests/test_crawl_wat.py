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
