"""End to end: a small site on 127.0.0.1, its pages read from a WARC, `crawl_pages` with img2dataset for
real. Every candidate must come back with the expected verdict, and a rerun must reuse the download.

One img2dataset run serves all assertions (module-scoped fixture): its spawned workers import torch
and albumentations, which dominates the test's ~15-25 s.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from laitkit.datasets.schema import Reason
from laitkit.pipeline.crawl import CrawlConfig, crawl_pages, readers
from laitkit.pipeline.crawl.image_filters import decode_image

STOCK = "Click on the image to see it in full size"


def photo(seed: int, w: int = 480, h: int = 360) -> Image.Image:
    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.integers(30, 226, (8, 8, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    a = np.asarray(low, dtype=np.float64) + rng.normal(0, 7, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def chart() -> bytes:
    img = Image.new("RGB", (520, 400), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for i, v in enumerate((120, 260, 180)):
        d.rectangle(
            (60 + i * 140, 360 - v, 160 + i * 140, 360), fill=[(31, 119, 180), (255, 127, 14), (44, 160, 44)][i]
        )
    d.line((50, 360, 500, 360), fill=(0, 0, 0), width=2)
    return encode(img, "PNG")


# path -> (status, extra headers, body); "hang" sleeps past the client timeout
def build_site() -> dict[str, tuple[int, dict[str, str], bytes] | str]:
    ok1 = encode(photo(1, 640, 480))
    site: dict[str, tuple[int, dict[str, str], bytes] | str] = {
        "/img/ok1.jpg": (200, {}, ok1),
        "/img/ok2.jpg": (200, {}, encode(photo(2, 700, 500))),
        "/img/big.jpg": (200, {}, encode(photo(3, 1600, 1200))),
        "/img/copy.jpg": (200, {}, ok1),
        "/img/near.jpg": (200, {}, encode(photo(1, 640, 480).resize((512, 384), Image.Resampling.LANCZOS), quality=65)),
        "/img/trunc.jpg": (200, {}, encode(photo(4))[:5000]),
        "/img/noai.jpg": (200, {"X-Robots-Tag": "noai"}, encode(photo(5))),
        "/img/bomb.png": (200, {}, encode(Image.new("1", (3000, 3000)), "PNG")),
        "/img/small.jpg": (200, {}, encode(photo(6, 280, 200))),
        "/img/wide.jpg": (200, {}, encode(photo(7, 1500, 400))),
        "/img/chart.png": (200, {"Content-Type": "image/png"}, chart()),
        "/img/wrong-type.jpg": (200, {"Content-Type": "text/html"}, b"<html><body>Image not available</body></html>"),
        "/img/error.jpg": (500, {}, b"oops"),
        "/img/loop-a.jpg": (302, {"Location": "/img/loop-b.jpg"}, b""),
        "/img/loop-b.jpg": (302, {"Location": "/img/loop-a.jpg"}, b""),
        "/img/hang.jpg": "hang",
        "/static/logo.png": (200, {}, encode(Image.new("RGB", (180, 48), (200, 30, 30)), "PNG")),
        "/img/fr.jpg": (200, {}, encode(photo(8))),
        "/img/nsfw.jpg": (200, {}, encode(photo(9))),
        "/img/p3.jpg": (200, {}, encode(photo(10))),
    }
    for i in range(6):
        site[f"/img/stock{i}.jpg"] = (200, {}, encode(photo(20 + i)))
    return site


def fig(src: str, alt: str | None) -> str:
    alt_attr = "" if alt is None else f' alt="{alt}"'
    return f'<figure><img src="{src}"{alt_attr}></figure>\n'


PAGES = {
    "/p/1.html": (
        {},
        '<html><head><base href="/img/"></head><body><header><img class="site-logo" src="/static/logo.png" '
        'alt="Kite Blog" width="180" height="48"></header><article>\n'
        + fig("ok1.jpg", "A red kite flying high over the sand dunes")
        + '<figure><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" data-src="big.jpg" '
        'alt="A long sandy beach with kites in the sky"></figure>\n'
        + fig("missing.jpg", "A blue kite resting on the grass")
        + fig("trunc.jpg", "Three kites tied to a wooden fence")
        + fig("noai.jpg", "A kite festival with many colourful kites")
        + fig("bomb.png", "An empty grey field under a cloudy sky")
        + fig("small.jpg", "A tiny kite held by a small child")
        + fig("wide.jpg", "A panorama of the whole kite festival beach")
        + fig("chart.png", "A bar chart of kite sales this year")
        + fig("wrong-type.jpg", "A yellow kite against a clear blue sky")
        + fig("error.jpg", "A kite stuck high up in a tree")
        + fig("loop-a.jpg", "A kite maker at work in his shop")
        + fig("hang.jpg", "Kites flying over the harbour at sunrise")
        + fig("fr.jpg", "Un cerf-volant rouge au-dessus des dunes de sable")
        + fig("nsfw.jpg", "porn gallery: a kite on the beach")
        + '<section class="gallery"><div class="photo"><img src="ok2.jpg?useless" alt="IMG_2041.jpg"></div>'
        '<div class="photo"><img src="ok2.jpg?noalt"></div></section>\n'
        + "".join(fig(f"stock{i}.jpg", STOCK) for i in range(3))
        + "</article></body></html>",
    ),
    "/p/2.html": (
        {},
        "<html><body><article>\n"
        + fig("/img/ok1.jpg", "The same red kite, seen from another angle")
        + fig("/img/copy.jpg", "A copy of the red kite picture on another path")
        + fig("/img/near.jpg", "A smaller version of the red kite picture")
        + fig("/img/ok2.jpg", "Two kites crossing lines above the water")
        + "".join(fig(f"/img/stock{i}.jpg", STOCK) for i in range(3, 6))
        + "</article></body></html>",
    ),
    "/p/3.html": (
        {"X-Robots-Tag": "noai, noimageai"},
        '<html><body><header><img class="site-logo" src="/static/logo.png" alt="Kite Blog" width="180" height="48">'
        "</header><article>" + fig("/img/p3.jpg", "A green kite over a quiet lake") + "</article></body></html>",
    ),
}

EXPECTED = {
    ("/p/1.html", "/static/logo.png"): Reason.DECOY,
    ("/p/1.html", "/img/ok1.jpg"): Reason.KEEP,
    ("/p/1.html", "/img/big.jpg"): Reason.KEEP,
    ("/p/1.html", "/img/missing.jpg"): Reason.DOWNLOAD_ERROR,
    ("/p/1.html", "/img/trunc.jpg"): Reason.DECODE_ERROR,
    ("/p/1.html", "/img/noai.jpg"): Reason.ROBOTS_NOAI,
    ("/p/1.html", "/img/bomb.png"): Reason.DECODE_ERROR,
    ("/p/1.html", "/img/small.jpg"): Reason.TOO_SMALL,
    ("/p/1.html", "/img/wide.jpg"): Reason.BAD_ASPECT,
    ("/p/1.html", "/img/chart.png"): Reason.UNNATURAL,
    ("/p/1.html", "/img/wrong-type.jpg"): Reason.DECODE_ERROR,
    ("/p/1.html", "/img/error.jpg"): Reason.DOWNLOAD_ERROR,
    ("/p/1.html", "/img/loop-a.jpg"): Reason.DOWNLOAD_ERROR,
    ("/p/1.html", "/img/hang.jpg"): Reason.DOWNLOAD_ERROR,
    ("/p/1.html", "/img/fr.jpg"): Reason.NOT_ENGLISH,
    ("/p/1.html", "/img/nsfw.jpg"): Reason.NSFW,
    ("/p/1.html", "/img/ok2.jpg?useless"): Reason.USELESS_CAPTION,
    ("/p/1.html", "/img/ok2.jpg?noalt"): Reason.NO_CAPTION,
    **{("/p/1.html", f"/img/stock{i}.jpg"): Reason.DUP_CAPTION for i in range(3)},
    ("/p/2.html", "/img/ok1.jpg"): Reason.DUP_URL,
    ("/p/2.html", "/img/copy.jpg"): Reason.DUP_SHA256,
    ("/p/2.html", "/img/near.jpg"): Reason.DUP_PHASH,
    ("/p/2.html", "/img/ok2.jpg"): Reason.KEEP,
    **{("/p/2.html", f"/img/stock{i}.jpg"): Reason.DUP_CAPTION for i in range(3, 6)},
    ("/p/3.html", "/static/logo.png"): Reason.ROBOTS_NOAI,
    ("/p/3.html", "/img/p3.jpg"): Reason.ROBOTS_NOAI,
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        route = self.server.site.get(self.path)  # type: ignore[attr-defined]
        if route == "hang":
            time.sleep(3.5)
            return
        status, headers, body = route if route is not None else (404, {}, b"not found")
        self.send_response(status)
        if "Content-Type" not in headers:
            self.send_header("Content-Type", "image/jpeg" if status == 200 else "text/plain")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client refused the body (noai)
            pass

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops connections from 8 parallel fetchers

    def handle_error(self, request, client_address) -> None:  # a client that timed out is not an error
        pass


def write_warc(path: Path, base: str) -> None:
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for p, (headers, html) in PAGES.items():
            body = html.encode()
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"), *headers.items()],
                                    protocol="HTTP/1.1")  # fmt: skip
            writer.write_record(writer.create_warc_record(base + p, "response", payload=io.BytesIO(body),
                                                          length=len(body), http_headers=http))  # fmt: skip


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    server = _Server(("127.0.0.1", 0), _Handler)
    server.site, server.requests = build_site(), []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mp = pytest.MonkeyPatch()
    mp.setenv("no_proxy", "127.0.0.1,localhost")  # urllib must not send 127.0.0.1 to a proxy
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    tmp = tmp_path_factory.mktemp("crawl")
    write_warc(tmp / "pages.warc.gz", base)
    cfg = CrawlConfig(timeout=2.0, thread_count=8, max_image_pixels=4_000_000, allowed_networks=("127.0.0.0/8",))
    before = (signal.getsignal(signal.SIGINT), os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS"))
    t0 = time.perf_counter()
    samples = crawl_pages(readers.iter_warc(tmp / "pages.warc.gz"), cfg, tmp / "work")
    first = time.perf_counter() - t0
    after = (signal.getsignal(signal.SIGINT), os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS"))
    yield {"samples": samples, "base": base, "server": server, "cfg": cfg, "tmp": tmp, "seconds": first,
           "process_state": (before, after)}  # fmt: skip
    mp.undo()
    server.shutdown()
    server.server_close()


def by_place(samples, base):
    return {(s.page_url[len(base) :], s.url[len(base) :]): s for s in samples}


def test_every_candidate_gets_its_expected_verdict(crawled):
    got = by_place(crawled["samples"], crawled["base"])
    assert len(got) == len(crawled["samples"])  # one sample per (page, image), nothing merged or lost
    assert {k: v.status for k, v in got.items()} == {k: str(v) for k, v in EXPECTED.items()}


def test_failure_details_come_from_img2dataset(crawled):
    got = by_place(crawled["samples"], crawled["base"])
    detail = {k: s.verdicts[-1].detail for k, s in got.items()}
    assert "404" in detail[("/p/1.html", "/img/missing.jpg")]
    assert "500" in detail[("/p/1.html", "/img/error.jpg")]
    assert "X-Robots-Tag" in detail[("/p/1.html", "/img/noai.jpg")]
    assert "deadline exceeded" in detail[("/p/1.html", "/img/hang.jpg")]  # the total deadline, not a read timeout
    assert "failed_to_resize" in detail[("/p/1.html", "/img/trunc.jpg")]
    # the bomb is refused by OpenCV's pixel cap from the header, before any allocation
    assert "CV_IO_MAX_IMAGE_PIXELS" in detail[("/p/1.html", "/img/bomb.png")]
    assert got[("/p/3.html", "/img/p3.jpg")].verdicts[0].detail == "X-Robots-Tag: noai, noimageai"


def test_kept_samples_carry_image_sizes_hashes_and_scores(crawled):
    got = by_place(crawled["samples"], crawled["base"])
    site = crawled["server"].site
    for place in [("/p/1.html", "/img/ok1.jpg"), ("/p/1.html", "/img/big.jpg"), ("/p/2.html", "/img/ok2.jpg")]:
        s = got[place]
        img = decode_image(s.image)
        assert img.size == (s.width, s.height)
        assert s.sha256 == hashlib.sha256(site[place[1]][2]).hexdigest()  # hash of the original bytes
        assert len(s.phash) == 16 and s.lang == "en" and s.lang_score >= 0.25
        assert s.nsfw_score == 0.0 and s.unnatural_score < 0.45
        assert s.relevance_score != s.relevance_score  # NaN: relevance is a later stage
        assert [v.stage for v in s.verdicts] == ["dom", "caption", "lang", "nsfw", "download", "image", "dedup"]
    big = got[("/p/1.html", "/img/big.jpg")]
    assert (big.orig_width, big.orig_height) == (1600, 1200) and (big.width, big.height) == (853, 640)
    ok1 = got[("/p/1.html", "/img/ok1.jpg")]
    assert (ok1.width, ok1.height) == (640, 480)  # never upscaled or re-sized when small enough
    small = got[("/p/1.html", "/img/small.jpg")]
    assert (small.orig_width, small.orig_height) == (280, 200) and small.image  # rejected, but kept whole
    assert got[("/p/1.html", "/img/ok2.jpg?noalt")].candidates == []


def test_workers_measure_the_pixels_they_encoded_without_decoding_again(crawled):
    """In img2dataset's workers the tap fires (encode_tap.py): every stored image was measured on
    the array it encodes, none was decoded a second time; failures carry no measurement."""
    import pyarrow.parquet as pq

    rows = [r for f in sorted((crawled["tmp"] / "work").glob("img2dataset/*/out/*.parquet"))
            for r in pq.read_table(f, columns=["status", "laitkit_measured_on"]).to_pylist()]  # fmt: skip
    ok = [r["laitkit_measured_on"] for r in rows if r["status"] == "success"]
    assert len(ok) >= 5 and set(ok) == {"encoded_pixels"}
    assert all(r["laitkit_measured_on"] is None for r in rows if r["status"] != "success")


def test_rejected_text_candidates_are_not_downloaded_and_urls_are_fetched_once(crawled):
    requests = crawled["server"].requests
    for path in ("/img/fr.jpg", "/img/nsfw.jpg", "/img/ok2.jpg?useless", "/img/p3.jpg", "/static/logo.png"):
        assert path not in requests, path
    assert requests.count("/img/ok1.jpg") == 1  # on two pages, downloaded once
    assert "/img/big.jpg" in requests  # the lazy data-src, not the data: placeholder


def test_img2dataset_leaves_our_sigint_handler_and_environment_alone(crawled):
    before, after = crawled["process_state"]
    assert after == before


def test_rerun_reuses_the_img2dataset_output(crawled):
    server = crawled["server"]
    n = len(server.requests)
    t0 = time.perf_counter()
    again = crawl_pages(readers.iter_warc(crawled["tmp"] / "pages.warc.gz"), crawled["cfg"], crawled["tmp"] / "work")
    assert time.perf_counter() - t0 < 5.0 < crawled["seconds"] + 5.0
    assert len(server.requests) == n  # nothing fetched again
    assert [(s.key, s.status, s.sha256) for s in again] == [(s.key, s.status, s.sha256) for s in crawled["samples"]]
