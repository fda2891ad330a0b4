"""Job input kinds of the crawl: a WAT file through `laitkit run`, and `input.base_url` for HTML folders.

The WAT test is one tiny real job (Ray, img2dataset, every later stage) on a WAT file written
here, whose image links point at JPEGs served on 127.0.0.1; the HTML-folder test stops after
the DOM step (plan → input shard → samples), which is where `input.base_url` acts.
"""

from __future__ import annotations

import io
import json
import threading
from http.server import ThreadingHTTPServer

import pyarrow.parquet as pq
import pytest
from warcio.warcwriter import WARCWriter

from laitkit.datasets.schema import Reason
from laitkit.jobs import cli
from laitkit.jobs.bench_crawl import _jpegs, _Quiet
from laitkit.pipeline import plan
from laitkit.pipeline.crawl import CrawlConfig, page_samples


def _wat_payload(page: str, links: list[dict]) -> bytes:
    meta = {"HTTP-Response-Metadata": {"HTML-Metadata": {"Head": {}, "Links": links}}}
    return json.dumps({"Envelope": {"WARC-Header-Metadata": {"WARC-Target-URI": page},
                                    "Payload-Metadata": meta}}).encode()  # fmt: skip


@pytest.mark.slow
def test_wat_file_as_job_input_through_laitkit_run(tmp_path, capsys) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    server.daemon_threads = True
    server.files = {f"/img/{i}.jpg": b for i, b in enumerate(_jpegs(3, seed=7))}  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    wat = tmp_path / "CC-MAIN-test.warc.wat.gz"
    with wat.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        pages = [
            (f"{base}/harbour.html", [
                {"path": "IMG@/src", "url": "/img/0.jpg", "alt": "A red fishing boat moored in the quiet harbour"},
                {"path": "A@/href", "url": "/next.html", "text": "next"},
                {"path": "IMG@/src", "url": "img/1.jpg"},  # no alt: a no_caption verdict, not a loss
            ]),
            (f"{base}/river.html", [
                {"path": "IMG@/src", "url": f"{base}/img/2.jpg", "alt": "An old wooden bridge over the green river"},
            ]),
        ]  # fmt: skip
        for page, links in pages:
            payload = _wat_payload(page, links)
            writer.write_record(writer.create_warc_record(page, "metadata", payload=io.BytesIO(payload),
                                                          length=len(payload),
                                                          warc_content_type="application/json"))  # fmt: skip
    config = tmp_path / "wat.yaml"
    out = tmp_path / "run"
    config.write_text(
        f"out: {out}\n"
        f"input:\n  kind: wat\n  path: {wat}\n"
        "crawl:\n  timeout: 5\n  allowed_networks: ['127.0.0.0/8']\n"
        "relevance:\n  threshold: -1.0e9\n"  # random noise photos: relevance is not what is tested here
        "pretrain:\n  enabled: false\n"
    )
    try:
        assert cli.main(["run", str(config)]) == 0
    finally:
        server.shutdown()
        server.server_close()
    rejected = _rows(out / "rejected", ["url", "status"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kept"] == 2, rejected
    kept = _rows(out / "shards", ["url", "caption", "caption_source"])
    assert sorted(r["url"] for r in kept) == [f"{base}/img/0.jpg", f"{base}/img/2.jpg"]
    assert {r["caption_source"] for r in kept} == {"wat"}
    assert rejected == [{"url": f"{base}/img/1.jpg", "status": "no_caption"}]  # resolved against the page


def _rows(folder, columns: list[str]) -> list[dict]:
    from laitkit.datasets.shards import list_shard_files  # either layout (split: DIR/parquet/)

    files = list_shard_files(folder, "parquet")
    return [r for f in files for r in pq.read_table(f, columns=columns).to_pylist()]


def _html_folder(tmp_path):
    site = tmp_path / "site"
    (site / "news").mkdir(parents=True)
    (site / "news" / "boat.html").write_text(
        "<html><body><article><h1>Harbour</h1><img src='../media/boat.jpg' width='800' height='600' "
        "alt='A red fishing boat moored in the quiet harbour'></article></body></html>"
    )
    (site / "based.html").write_text(
        "<html><head><base href='http://cdn.example/'></head><body><article><img src='bridge.jpg' width='800' "
        "height='600' alt='An old wooden bridge over the green river'></article></body></html>"
    )
    return site


@pytest.mark.parametrize("base_url", ["http://saved.example/site/", ""])
def test_html_folder_relative_images_resolve_against_input_base_url(tmp_path, base_url) -> None:
    site = _html_folder(tmp_path)
    shards = plan.build_plan("html", str(site), 10, tmp_path / "plan.json", base_url=base_url)
    kind, pages = plan.read_shard(shards[0])
    assert kind == "pages"
    samples = {s.url.rsplit("/", 1)[-1]: s for p in pages for s in page_samples(p, CrawlConfig())}
    assert samples["bridge.jpg"].url == "http://cdn.example/bridge.jpg"  # a <base> wins either way
    assert samples["bridge.jpg"].kept
    boat = samples["boat.jpg"]
    if base_url:
        assert boat.page_url == "http://saved.example/site/news/boat.html"
        assert boat.url == "http://saved.example/site/media/boat.jpg" and boat.kept
    else:  # no base: recorded as rejected with its reason, never dropped
        assert boat.status == Reason.NO_BASE_URL and "base_url" in boat.verdicts[-1].detail
