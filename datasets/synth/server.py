"""Serve a generated synthetic web over HTTP on loopback, misbehaving exactly as `faults.json` says.

Why a real server: download errors (404, 500, timeouts, redirect loops) and header-borne opt-outs
(X-Robots-Tag) only exist over HTTP, so crawl tests must meet them on a socket. The server binds to
loopback only, answers from the same `respond()` the WARC writer uses, logs nothing per request,
and hangs on "timeout" paths on an Event so shutdown never waits for the sleepers.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from laitkit.datasets.synth import DEFAULT_TIMEOUT_DELAY
from laitkit.datasets.synth.faults import Fault, load_faults, respond

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for generating with a matching base URL first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], site: Path, faults: dict[str, Fault], timeout_delay: float) -> None:
        self.site, self.faults, self.timeout_delay = site, faults, timeout_delay
        self.stopping = threading.Event()
        super().__init__(addr, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "laitkit-synth/1"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        resp = respond(self.server.site, self.server.faults, self.path)
        if resp.hang:
            # Accept, say nothing, then drop the connection: the client sees a read timeout.
            self.server.stopping.wait(self.server.timeout_delay)
            self.close_connection = True
            return
        self.send_response(resp.status)
        for name, value in resp.headers:
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            try:
                self.wfile.write(resp.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        log.debug("%s %s", self.address_string(), format % args)


class SynthServer:
    """A synthetic-web server in a background thread; use as a context manager.

    `port=0` picks a free port; `port=None` uses the port of the generation's `base_url` (so the
    absolute URLs in truth.parquet are right). Pages only use relative URLs, so a site also works
    on any other port: `rebase(url)` maps a truth URL onto this server.
    """

    def __init__(
        self,
        root: Path,
        port: int | None = 0,
        host: str = "127.0.0.1",
        timeout_delay: float = DEFAULT_TIMEOUT_DELAY,
    ) -> None:
        self.root = Path(root)
        site = self.root / "site"
        if not site.is_dir():
            raise FileNotFoundError(f"{self.root} has no site/ folder: run `laitkit synth --out {self.root}` first")
        if not is_loopback(host):
            raise ValueError(f"the synthetic web only listens on loopback, not {host!r}")
        meta = self.root / "synth.json"
        self.generated_base = json.loads(meta.read_text())["base_url"] if meta.exists() else ""
        if port is None:
            port = int(self.generated_base.rsplit(":", 1)[1]) if self.generated_base.count(":") == 2 else 0
        self._server = _Server((host, port), site, load_faults(self.root / "faults.json"), timeout_delay)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    def rebase(self, url: str) -> str:
        """A truth/WARC URL (made with the generation's base URL) as served by this server."""
        if self.generated_base and url.startswith(self.generated_base):
            return self.base_url + url[len(self.generated_base) :]
        return url

    def start(self) -> SynthServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="synth-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI's mode)."""
        try:
            self._server.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SynthServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    root: Path, port: int = 8377, host: str = "127.0.0.1", timeout_delay: float = DEFAULT_TIMEOUT_DELAY
) -> SynthServer:
    """Start serving `root` in a background thread and return the running server (call `.stop()`).

    Raises OSError with errno EADDRINUSE when the port is taken.
    """
    try:
        return SynthServer(root, port=port, host=host, timeout_delay=timeout_delay).start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OSError(errno.EADDRINUSE, f"port {port} on {host} is already in use") from exc
        raise
