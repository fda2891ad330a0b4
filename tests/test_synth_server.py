"""Tests of the synthetic-web server over real HTTP on 127.0.0.1: every fault, headers, quiet logs.

The site is generated for a port picked beforehand, so truth URLs are directly fetchable. Client
timeouts are short and the server's timeout delay is 1 s, so the whole module takes a few seconds.
"""

from __future__ import annotations

import errno
import http.client
import io
import json
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
from PIL import Image, UnidentifiedImageError
from warcio.archiveiterator import ArchiveIterator

from laitkit.datasets.synth import SynthServer, free_port, generate
from laitkit.jobs import cli

DELAY = 1.0


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth-server") / "web"
    generate(out, pages=32, seed=3, base_url=f"http://127.0.0.1:{free_port()}")
    return out


@pytest.fixture(scope="module")
def server(web: Path) -> Iterator[SynthServer]:
    with SynthServer(web, port=None, timeout_delay=DELAY) as srv:
        yield srv


@pytest.fixture(scope="module")
def truth(web: Path) -> list[dict]:
    return pq.read_table(web / "truth.parquet").to_pylist()


def _row(truth: list[dict], noise: str) -> dict:
    rows = [r for r in truth if r["noise"] == noise and r["is_main"]]
    assert rows, f"no {noise} row in the generated site"
    return rows[0]


def _get(url: str, method: str = "GET", timeout: float = 3.0) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""))
    return conn.getresponse()


def test_serves_on_the_generated_port(server: SynthServer, web: Path) -> None:
    assert server.base_url == json.loads((web / "synth.json").read_text())["base_url"]
    assert server.base_url.startswith("http://127.0.0.1:")


def test_clean_image_decodes_at_its_gold_size(server: SynthServer, truth: list[dict], web: Path) -> None:
    r = _row(truth, "clean")
    resp = _get(r["img_url"])
    body = resp.read()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "image/jpeg"
    assert int(resp.getheader("Content-Length")) == len(body)
    assert resp.getheader("X-Robots-Tag") is None
    objects = {o["image_id"]: o for o in pq.read_table(web / "objects.parquet").to_pylist()}
    img = Image.open(io.BytesIO(body))
    img.load()
    assert img.size == (objects[r["image_id"]]["width"], objects[r["image_id"]]["height"])


def test_pages_and_index_are_html(server: SynthServer, truth: list[dict]) -> None:
    for url in (server.base_url + "/", server.base_url + "/index.html", truth[0]["page_url"]):
        resp = _get(url)
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/html")
        assert resp.read().startswith(b"<!DOCTYPE html>")
    head = _get(truth[0]["page_url"], method="HEAD")
    assert head.status == 200 and int(head.getheader("Content-Length")) > 0 and head.read() == b""


def test_query_strings_are_ignored_for_lookup(server: SynthServer, truth: list[dict]) -> None:
    pixel = next(r for r in truth if r["noise"] == "decoy_pixel")
    assert "?" in pixel["img_url"]
    resp = _get(pixel["img_url"])
    assert resp.status == 200 and Image.open(io.BytesIO(resp.read())).size == (1, 1)


@pytest.mark.parametrize(("noise", "status"), [("http_404", 404), ("http_500", 500)])
def test_http_errors(server: SynthServer, truth: list[dict], noise: str, status: int) -> None:
    resp = _get(_row(truth, noise)["img_url"])
    assert resp.status == status
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(_row(truth, noise)["img_url"], timeout=3)
    assert info.value.code == status


def test_timeout_hangs_then_closes(server: SynthServer, truth: list[dict]) -> None:
    url = _row(truth, "timeout")["img_url"]
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(url, timeout=0.3)
    assert time.monotonic() - start < DELAY
    # A patient client gets no response at all: the connection closes after the delay.
    start = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        _get(url, timeout=DELAY + 3)
    assert DELAY * 0.9 <= time.monotonic() - start < DELAY + 3


def test_redirect_loop_is_detected(server: SynthServer, truth: list[dict]) -> None:
    url = _row(truth, "redirect_loop")["img_url"]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=3)
    assert info.value.code == 302
    # Following by hand comes back to a URL already visited.
    seen, path = [], urlsplit(url).path
    while path not in seen:
        seen.append(path)
        resp = _get(server.base_url + path)
        resp.read()
        assert resp.status == 302
        path = resp.getheader("Location")
    assert len(seen) in (1, 2)


def test_truncated_jpeg_fails_to_decode(server: SynthServer, truth: list[dict]) -> None:
    resp = _get(_row(truth, "truncated_jpeg")["img_url"])
    body = resp.read()
    assert resp.status == 200 and resp.getheader("Content-Type") == "image/jpeg"
    assert int(resp.getheader("Content-Length")) == len(body)  # complete response, broken payload
    img = Image.open(io.BytesIO(body))
    with pytest.raises(OSError, match="truncated"):
        img.load()


def test_wrong_content_type(server: SynthServer, truth: list[dict]) -> None:
    r = _row(truth, "wrong_content_type")
    assert r["img_url"].endswith(".jpg")
    resp = _get(r["img_url"])
    body = resp.read()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/html")
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(body))


def test_decompression_bomb(server: SynthServer, truth: list[dict]) -> None:
    resp = _get(_row(truth, "decompression_bomb")["img_url"])
    body = resp.read()
    assert resp.status == 200 and resp.getheader("Content-Type") == "image/png"
    assert len(body) < 200_000
    width, height = struct.unpack(">II", body[16:24])  # IHDR
    assert width * height >= 20000 * 20000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(body))


def test_noai_header_on_page_and_images(server: SynthServer, truth: list[dict]) -> None:
    r = _row(truth, "robots_noai")
    for url in (r["page_url"], r["img_url"]):
        resp = _get(url)
        resp.read()
        assert resp.status == 200 and "noai" in resp.getheader("X-Robots-Tag")
    clean = _row(truth, "clean")
    resp = _get(clean["page_url"])
    resp.read()
    if clean["page_url"] != r["page_url"]:
        assert resp.getheader("X-Robots-Tag") is None


def test_nothing_outside_site_is_served(server: SynthServer, web: Path) -> None:
    assert (web / "faults.json").exists()
    for path in ("/../faults.json", "/%2e%2e/faults.json", "/nope.jpg"):
        resp = _get(server.base_url + path)
        resp.read()
        assert resp.status == 404, path


def test_http_matches_warc(server: SynthServer, web: Path) -> None:
    checked = 0
    with (web / "pages.warc.gz").open("rb") as fh:
        for i, rec in enumerate(ArchiveIterator(fh)):
            if i % 7:
                continue
            resp = _get(rec.rec_headers.get_header("WARC-Target-URI"))
            assert resp.status == int(rec.http_headers.get_statuscode())
            assert resp.read() == rec.content_stream().read()
            assert resp.getheader("X-Robots-Tag") == rec.http_headers.get_header("X-Robots-Tag")
            checked += 1
    assert checked > 20


def test_requests_are_not_logged(server: SynthServer, truth: list[dict], capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    for r in truth[:10]:
        _get(r["img_url"]).read()
    _get(server.base_url + "/missing.jpg").read()
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_port_zero_and_rebase(web: Path, truth: list[dict]) -> None:
    with SynthServer(web, port=0, timeout_delay=DELAY) as srv:
        url = srv.rebase(_row(truth, "clean")["img_url"])
        assert url.startswith(srv.base_url) and url != _row(truth, "clean")["img_url"]
        resp = _get(url)
        assert resp.status == 200 and resp.read()[:2] == b"\xff\xd8"


def test_port_in_use_and_non_loopback_are_refused(server: SynthServer, web: Path, capsys) -> None:
    with pytest.raises(OSError) as info:
        SynthServer(web, port=server.port)
    assert info.value.errno == errno.EADDRINUSE
    with pytest.raises(ValueError):
        SynthServer(web, port=0, host="0.0.0.0")
    assert cli.main(["synth", "serve", str(web), "--port", str(server.port)]) == 2
    assert "already in use" in capsys.readouterr().err
    assert cli.main(["synth", "serve", str(web), "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_stop_does_not_wait_for_hanging_requests(web: Path, truth: list[dict]) -> None:
    srv = SynthServer(web, port=0, timeout_delay=30).start()
    parts = urlsplit(srv.rebase(_row(truth, "timeout")["img_url"]))
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    time.sleep(0.1)
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 2
    sock.close()
