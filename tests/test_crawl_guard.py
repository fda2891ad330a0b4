"""The network guard on real loopback sockets: refused addresses, redirects, robots.txt, deadlines, images.

Every server here counts the requests it receives, so "refused before any connection" is checked
by the count staying zero, not by trusting an error message.
"""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from laitkit.datasets.schema import Reason, Sample
from laitkit.pipeline.crawl import CrawlConfig, netguard
from laitkit.pipeline.crawl.download import download_samples
from laitkit.pipeline.crawl.image_normalise import normalise

pytestmark = pytest.mark.timeout(180)


def _jpeg(w: int, h: int, exif_orientation: int = 0, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    a[: h // 4] = (255, 0, 0)  # a red band on top of the *stored* image, to see the rotation
    img = Image.fromarray(a)
    out = io.BytesIO()
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(out, "JPEG", quality=90, exif=exif)
    else:
        img.save(out, "JPEG", quality=90)
    return out.getvalue()


def _png16_grey(w: int = 400, h: int = 400) -> bytes:
    a = np.tile(np.linspace(0, 65535, w, dtype=np.uint16), (h, 1))
    out = io.BytesIO()
    Image.fromarray(a).save(out, "PNG")  # mode I;16: a 16-bit grey PNG
    return out.getvalue()


def _png_palette(w: int = 400, h: int = 400) -> bytes:
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).quantize(64)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler(routes: dict) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.server.requests.append(self.path)  # type: ignore[attr-defined]
            route = routes.get(self.path)
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if callable(route):
                route(self)
                return
            status, headers, body = route
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _start(host: str, routes: dict, server_class: type[_Server] = _Server) -> tuple[_Server, str]:
    server = server_class((host, 0), _handler(routes))
    server.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def _drip(handler: BaseHTTPRequestHandler) -> None:
    """Headers at once, then one byte per second for a minute: only a total deadline stops it."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Content-Length", "60")
    handler.end_headers()
    try:
        for _ in range(60):
            handler.wfile.write(b"\xff")
            handler.wfile.flush()
            time.sleep(1.0)
    except OSError:
        pass


def _endless(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.end_headers()
    chunk = b"\0" * 65536
    try:
        for _ in range(2000):  # 128 MB unless the client hangs up
            handler.wfile.write(chunk)
    except OSError:
        pass


@pytest.fixture(scope="module")
def servers():
    hidden, hidden_base = _start("127.0.0.2", {"/secret.jpg": (200, {"Content-Type": "image/jpeg"}, _jpeg(400, 400))})
    hidden_port = hidden.server_address[1]
    routes = {
        "/robots.txt": (200, {"Content-Type": "text/plain"}, b"User-agent: laitkit\nDisallow: /private/\n"),
        "/img/ok.jpg": (200, {"Content-Type": "image/jpeg"}, _jpeg(640, 480)),
        "/private/a.jpg": (200, {"Content-Type": "image/jpeg"}, _jpeg(640, 480, seed=2)),
        "/img/exif6.jpg": (200, {"Content-Type": "image/jpeg"}, _jpeg(480, 640, exif_orientation=6)),
        "/img/grey16.png": (200, {"Content-Type": "image/png"}, _png16_grey()),
        "/img/palette.png": (200, {"Content-Type": "image/png"}, _png_palette()),
        "/img/to-hidden.jpg": (302, {"Location": f"{hidden_base}/secret.jpg"}, b""),
        "/img/to-metadata.jpg": (302, {"Location": "http://169.254.169.254/latest/meta-data/iam/"}, b""),
        "/img/to-hidden-decimal.jpg": (301, {"Location": f"http://2130706434:{hidden_port}/secret.jpg"}, b""),
        "/img/to-hidden-mapped.jpg": (307, {"Location": f"http://[::ffff:127.0.0.2]:{hidden_port}/secret.jpg"}, b""),
        "/img/to-hidden-hex.jpg": (302, {"Location": f"http://0x7f000002:{hidden_port}/secret.jpg"}, b""),
        "/img/on-private-page.jpg": (200, {"Content-Type": "image/jpeg"}, _jpeg(640, 480, seed=3)),
        "/img/on-unreachable-page.jpg": (200, {"Content-Type": "image/jpeg"}, _jpeg(640, 480, seed=4)),
        "/img/drip.jpg": _drip,
        "/img/endless.jpg": _endless,
    }
    public, base = _start("127.0.0.1", routes)
    yield {"public": public, "base": base, "hidden": hidden, "hidden_base": hidden_base}
    for s in (public, hidden):
        s.shutdown()
        s.server_close()


ADDRESS_FORMS = (
    "127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "localhost",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]",
)  # fmt: skip
OTHER_REFUSED = ("169.254.169.254", "[fd00:ec2::254]", "10.1.2.3", "192.168.0.1", "172.16.0.1", "100.100.100.200",
                 "0.0.0.0", "224.0.0.1", "240.0.0.1", "[::1]", "[fe80::1]", "[ff02::1]", "255.255.255.255")  # fmt: skip


def test_every_form_of_loopback_refused_without_a_connection(servers) -> None:
    port = servers["public"].server_address[1]
    before = len(servers["public"].requests)
    for host in ADDRESS_FORMS:
        r = netguard.fetch(f"http://{host}:{port}/img/ok.jpg", netguard.FetchLimits(deadline_s=2))
        assert r.status == 0 and netguard.BLOCKED_PREFIX in r.error, (host, r)
    assert len(servers["public"].requests) == before  # not one request reached the server
    for host in OTHER_REFUSED:
        assert netguard.url_refusal(f"http://{host}/x.jpg").startswith(netguard.BLOCKED_PREFIX), host
    assert netguard.url_refusal("http://169.254.169.254/").endswith("(cloud metadata)")
    assert netguard.url_refusal("http://8.8.8.8/x.jpg") == ""  # a public address passes (no connection made)
    allowed = netguard.parse_networks(["127.0.0.0/8"])
    assert netguard.url_refusal(f"http://2130706433:{port}/", allowed) == ""
    assert netguard.url_refusal("http://10.1.2.3/", allowed).startswith(netguard.BLOCKED_PREFIX)
    with pytest.raises(ValueError, match="not a CIDR"):
        CrawlConfig(allowed_networks=("127.0.0.0/33",))


def test_download_refuses_blocked_hosts_by_default_and_never_runs_img2dataset(servers, tmp_path) -> None:
    port = servers["public"].server_address[1]
    samples = [Sample(key=str(i), url=f"http://{h}:{port}/img/ok.jpg") for i, h in enumerate(ADDRESS_FORMS)]
    samples.append(Sample(key="meta", url="http://169.254.169.254/latest/meta-data/iam"))
    before = len(servers["public"].requests)
    download_samples(samples, CrawlConfig(), tmp_path)  # default config: no allowed networks
    assert [s.status for s in samples] == [Reason.BLOCKED_ADDRESS] * len(samples)
    assert "cloud metadata" in samples[-1].verdicts[-1].detail
    assert len(servers["public"].requests) == before
    assert not (tmp_path / "img2dataset").exists()


def test_ipv6_loopback_refused_without_a_connection_unless_allowed() -> None:
    import socket

    class Server6(_Server):
        address_family = socket.AF_INET6

    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    body = _jpeg(64, 64)
    server, _ = _start("::1", {"/a.jpg": (200, {"Content-Type": "image/jpeg"}, body)}, Server6)
    try:
        url = f"http://[::1]:{server.server_address[1]}/a.jpg"
        r = netguard.fetch(url, netguard.FetchLimits(deadline_s=3))
        assert r.status == 0 and netguard.BLOCKED_PREFIX in r.error and "::1 is loopback" in r.error, r
        assert server.requests == []  # type: ignore[attr-defined]
        ok = netguard.fetch(url, netguard.FetchLimits(deadline_s=3, allowed_networks=("::1/128",)))
        assert ok.status == 200 and ok.body == body  # the server answers when the network is allowed
        assert server.requests == ["/a.jpg"]  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_redirect_to_a_refused_address_is_not_followed(servers) -> None:
    limits = netguard.FetchLimits(deadline_s=3, allowed_networks=("127.0.0.1/32",))
    r = netguard.fetch(servers["base"] + "/img/to-hidden.jpg", limits)
    assert r.status == 0 and netguard.BLOCKED_PREFIX in r.error and "127.0.0.2" in r.error
    # every spelling of the refused address, and the metadata service, on any redirect hop
    hops = {"/img/to-metadata.jpg": "cloud metadata", "/img/to-hidden-decimal.jpg": "127.0.0.2",
            "/img/to-hidden-mapped.jpg": "127.0.0.2", "/img/to-hidden-hex.jpg": "127.0.0.2"}  # fmt: skip
    for path, needle in hops.items():
        r = netguard.fetch(servers["base"] + path, limits)
        assert r.status == 0 and netguard.BLOCKED_PREFIX in r.error and needle in r.error, (path, r)
    assert servers["hidden"].requests == []
    ok = netguard.fetch(servers["base"] + "/img/ok.jpg", limits)
    assert ok.status == 200 and ok.body[:2] == b"\xff\xd8"


def test_slow_drip_cannot_hold_a_fetch_past_the_deadline(servers) -> None:
    t0 = time.monotonic()
    loop = ("127.0.0.0/8",)
    r = netguard.fetch(servers["base"] + "/img/drip.jpg", netguard.FetchLimits(deadline_s=2, allowed_networks=loop))
    took = time.monotonic() - t0
    assert r.status == 0 and netguard.DEADLINE_PREFIX in r.error, r
    assert took < 4.0, took  # 60 s of dripping; urllib's per-read timeout alone would wait them all
    capped = netguard.FetchLimits(deadline_s=10, max_bytes=1_000_000, allowed_networks=loop)
    big = netguard.fetch(servers["base"] + "/img/endless.jpg", capped)
    assert big.status == 0 and netguard.TOO_LARGE_PREFIX in big.error, big


def test_normalise_fixes_orientation_16bit_and_palette() -> None:
    assert normalise(_jpeg(64, 48)) is None  # the common case: bytes go to img2dataset untouched
    rot = Image.open(io.BytesIO(normalise(_jpeg(48, 64, exif_orientation=6))))
    assert rot.size == (64, 48)
    grey = np.asarray(Image.open(io.BytesIO(normalise(_png16_grey(256, 8)))).convert("L"))
    assert grey[0, 0] < 3 and grey[0, -1] > 252 and 110 < grey[0, 128] < 145  # a ramp, not all white
    # a palette PNG with a transparent index, and a grey+alpha one: colours kept, transparency on white
    pal = Image.new("P", (8, 4))
    pal.putpalette([200, 30, 40, 0, 0, 0] + [0] * 762)
    pal.putdata([0] * 16 + [1] * 16)  # top half red, bottom half index 1 (transparent)
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=1)
    rgb = np.asarray(Image.open(io.BytesIO(normalise(buf.getvalue()))).convert("RGB")).astype(int)
    assert (rgb[0, 0] == (200, 30, 40)).all() and (rgb[-1, -1] == (255, 255, 255)).all()
    la = Image.fromarray(np.dstack([np.full((4, 8), 60, np.uint8), np.tile([0, 255], (4, 4)).astype(np.uint8)]), "LA")
    buf = io.BytesIO()
    la.save(buf, "PNG")
    g = np.asarray(Image.open(io.BytesIO(normalise(buf.getvalue()))).convert("L")).astype(int)
    assert g[0, 0] == 255 and g[0, 1] == 60  # transparent -> white, opaque grey stays grey


@pytest.fixture(scope="module")
def downloaded(servers, tmp_path_factory):
    base = servers["base"]
    names = ["img/ok.jpg", "private/a.jpg", "img/exif6.jpg", "img/grey16.png", "img/palette.png",
             "img/to-hidden.jpg", "img/drip.jpg", "img/endless.jpg"]  # fmt: skip
    samples = {n: Sample(key=n, url=f"{base}/{n}") for n in names}
    # pages: one its site's robots.txt disallows for laitkit, one on a host the guard refuses
    samples["img/on-private-page.jpg"] = Sample(key="pp", url=f"{base}/img/on-private-page.jpg",
                                                page_url=f"{base}/private/story.html")  # fmt: skip
    samples["img/on-unreachable-page.jpg"] = Sample(key="up", url=f"{base}/img/on-unreachable-page.jpg",
                                                    page_url=f"{servers['hidden_base']}/story.html")  # fmt: skip
    cfg = CrawlConfig(timeout=2.0, thread_count=8, max_download_bytes=2_000_000, allowed_networks=("127.0.0.1/32",))
    t0 = time.monotonic()
    download_samples(list(samples.values()), cfg, tmp_path_factory.mktemp("guard"))
    return samples, time.monotonic() - t0


def test_img2dataset_fetches_go_through_the_guard(downloaded, servers) -> None:
    samples, _ = downloaded
    assert samples["img/ok.jpg"].status == Reason.KEEP
    # robots.txt: asked once, and the disallowed image was never requested
    assert samples["private/a.jpg"].status == Reason.ROBOTS_TXT
    assert "/private/a.jpg" not in servers["public"].requests
    assert servers["public"].requests.count("/robots.txt") == 1
    # the page's robots.txt: an explicit rule for our token refuses its images (never requested);
    # a page host with no answer (here: refused by the guard, so not even asked) gives no page verdict
    pp = samples["img/on-private-page.jpg"]
    assert pp.status == Reason.ROBOTS_TXT and "page " in pp.verdicts[-1].detail, pp.verdicts
    assert "/img/on-private-page.jpg" not in servers["public"].requests
    assert samples["img/on-unreachable-page.jpg"].status == Reason.KEEP
    # a redirect inside img2dataset's worker to a refused address: refused before connecting
    assert samples["img/to-hidden.jpg"].status == Reason.BLOCKED_ADDRESS, samples["img/to-hidden.jpg"].verdicts
    assert servers["hidden"].requests == []
    # total deadline and byte cap in the workers
    assert samples["img/drip.jpg"].status == Reason.DOWNLOAD_ERROR
    assert netguard.DEADLINE_PREFIX in samples["img/drip.jpg"].verdicts[-1].detail
    assert netguard.TOO_LARGE_PREFIX in samples["img/endless.jpg"].verdicts[-1].detail
    # (no wall-clock bound here: spawned workers importing torch take 10-60 s on a loaded machine;
    # the deadline's timing is checked in-process by test_slow_drip_cannot_hold_a_fetch_past_the_deadline)


def test_img2dataset_images_come_out_upright_and_8bit(downloaded) -> None:
    samples, _ = downloaded
    rot = samples["img/exif6.jpg"]
    assert rot.status == Reason.KEEP and (rot.orig_width, rot.orig_height) == (640, 480)
    img = np.asarray(Image.open(io.BytesIO(rot.image)).convert("RGB")).astype(int)
    # the stored top band is red; orientation 6 turns it into the right-hand band
    right, left = img[:, -40:].mean(axis=(0, 1)), img[:, :40].mean(axis=(0, 1))
    assert right[0] > 200 and right[1] < 60 and not (left[0] > 200 and left[1] < 60)
    grey = samples["img/grey16.png"]
    assert grey.status == Reason.KEEP
    g = np.asarray(Image.open(io.BytesIO(grey.image)).convert("L")).astype(int)
    assert g[:, :20].mean() < 20 and g[:, -20:].mean() > 235 and 100 < g[:, 190:210].mean() < 155
    pal = samples["img/palette.png"]
    assert pal.status == Reason.KEEP and (pal.orig_width, pal.orig_height) == (400, 400)


def test_robots_rules_are_matched_with_the_configured_token(servers, tmp_path) -> None:
    from laitkit.pipeline.crawl.robots_txt import RobotsCache

    limits = netguard.FetchLimits(deadline_s=3, allowed_networks=("127.0.0.1/32",))
    private = servers["base"] + "/private/a.jpg"
    ours = RobotsCache(limits, token="laitkit")
    assert "disallows /private/a.jpg for laitkit" in ours.refusal(private)
    assert ours.refusal(servers["base"] + "/img/ok.jpg") == ""
    assert RobotsCache(limits, token="otherbot").refusal(private) == ""  # the rule names laitkit only
    # unreachable robots.txt (the guard refuses 127.0.0.2): images disallowed, pages not judged
    hidden = RobotsCache(limits, token="laitkit")
    assert "unreachable" in hidden.refusal(servers["hidden_base"] + "/secret.jpg")
    assert hidden.page_refusal(servers["hidden_base"] + "/story.html") == ""
    assert servers["hidden"].requests == []
    # the on-disk cache: a second cache over the same folder decides the same without asking
    before = servers["public"].requests.count("/robots.txt")
    RobotsCache(limits, token="laitkit", cache_dir=tmp_path).prefetch([private])
    cached = RobotsCache(limits, token="laitkit", cache_dir=tmp_path)
    assert "(cached)" in cached.refusal(private)
    assert servers["public"].requests.count("/robots.txt") == before + 1
