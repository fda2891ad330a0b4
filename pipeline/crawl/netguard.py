"""Address guard, total deadline and byte cap for every HTTP fetch the crawl makes (SSRF defence).

Why: a crawled page names the URLs we fetch, so a page can point the crawler at
`http://169.254.169.254/latest/meta-data/`, at a router on 192.168.0.1 or at a service on
localhost — in any spelling (`http://2130706433/`, `http://0x7f.1/`, `http://[::ffff:127.0.0.1]/`)
or behind a redirect from an innocent public host. Host names are resolved here, every resolved
address is checked, and only then is a connection made — to the address that was checked.

Rules (`address_refusal`): an address is refused unless it is globally routable (`is_global`:
private, loopback, link-local — the cloud metadata address 169.254.169.254 and `fd00:ec2::254`
included — shared/CGN space (100.64/10, Alibaba's metadata 100.100.100.200), multicast,
reserved, unspecified and documentation ranges are all not global). IPv6 forms that embed an
IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`,
6to4 `2002::/16`) are judged by the embedded IPv4 address as well. `allowed_networks` (CIDRs)
re-allows what an operator names explicitly (the demo and tests: `127.0.0.0/8`). Numeric host
spellings (decimal, hex, octal, short forms) need no special case: the resolver (`getaddrinfo`,
i.e. `inet_aton`) turns them into the address the connection would use, and that is checked.

Pinning and DNS rebinding: `GuardedHTTPConnection.connect` resolves once, checks every address,
and connects to a checked address itself — it never hands the name to a second resolver — so a
DNS answer that changes between check and connect (rebinding) cannot move the connection. For
HTTPS the TLS handshake still names the original host (SNI and certificate checks). Each
redirect hop goes through the same `connect`, so a public page redirecting to 127.0.0.1 is
refused before any byte is sent to it. What this does not cover: the resolver itself may hang
(getaddrinfo has no timeout), and proxies are never used (no `ProxyHandler`: a proxy would do
its own resolution, outside the guard).

Deadline and cap (`FetchLimits`): urllib's `timeout` bounds each socket operation, so a server
dripping one byte per second keeps a fetch alive forever. Here a fetch, including all its
redirect hops, has one total deadline; each read shrinks the socket timeout to the time left
and fails when none is left. The body (plus headers) is capped in bytes while it is read, so an
endless response cannot fill memory.

img2dataset: it fetches with `urllib.request.urlopen` in spawned worker processes; `install`
makes the guarded opener urllib's global opener in the process that calls it (see
`download.GuardedDownloader`, which calls it in each worker).
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

BLOCKED_PREFIX = "blocked_address"  # error messages start with this; download.py maps it to the verdict
DEADLINE_PREFIX = "deadline exceeded"
TOO_LARGE_PREFIX = "response too large"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddress(urllib.error.URLError):
    """The URL's host resolves to an address the guard refuses; no connection was made."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{BLOCKED_PREFIX}: {detail}")


class FetchLimitExceeded(urllib.error.URLError):
    """The total deadline passed, or the response grew past the byte cap, while reading."""


@dataclass(frozen=True)
class FetchLimits:
    """What one fetch may cost: total seconds (all redirect hops) and bytes read from the socket."""

    deadline_s: float = 10.0
    max_bytes: int = 64 * 1024 * 1024
    allowed_networks: tuple[str, ...] = ()
    max_redirects: int = 5

    def networks(self) -> tuple[Network, ...]:
        return parse_networks(self.allowed_networks)


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings → networks; raises ValueError naming the bad entry."""
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(str(c).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"allowed_networks: not a CIDR: {c!r} ({exc})") from None
    return tuple(out)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), else None."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIXTOFOUR:
        return ip.sixtofour
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d (not :: or ::1)
        return ipaddress.IPv4Address(int(ip))
    return None


def address_refusal(ip: IPAddress, allowed: Sequence[Network] = ()) -> str:
    """'' when `ip` may be connected to, else why not (the verdict detail)."""
    if any(ip.version == n.version and ip in n for n in allowed):
        return ""
    inner = embedded_ipv4(ip)
    if inner is not None and any(inner in n for n in allowed if n.version == 4):
        return ""
    for candidate in (ip, inner):
        if candidate is None:
            continue
        if not candidate.is_global or candidate.is_multicast:
            kinds = [
                k for k in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private")
                if getattr(candidate, f"is_{k}")
            ]  # fmt: skip
            kind = kinds[0].replace("_", "-") if kinds else "not globally routable"
            if candidate in METADATA_ADDRESSES:
                kind += " (cloud metadata)"
            via = f" (embedded in {ip})" if candidate is not ip else ""
            return f"{candidate} is {kind}{via}"
    return ""


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (TCP); raises OSError when it does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


def vet_host(host: str, port: int, allowed: Sequence[Network] = ()) -> tuple[list[IPAddress], str]:
    """(addresses to connect to, '') or ([], refusal). A host with ANY refused address is refused:
    picking the public one of a mixed answer would let the next resolution pick the other."""
    if not host:
        return [], f"{BLOCKED_PREFIX}: URL has no host"
    try:
        ips = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        return [], f"host {host!r} does not resolve: {exc}"
    if not ips:
        return [], f"host {host!r} has no IP address"
    for ip in ips:
        why = address_refusal(ip, allowed)
        if why:
            return [], f"{BLOCKED_PREFIX}: {host} -> {why}"
    return ips, ""


def url_refusal(url: str, allowed: Sequence[Network] = ()) -> str:
    """'' when the URL's host passes the guard, else the refusal (starts with BLOCKED_PREFIX when
    the address is refused; other texts mean it does not resolve). No connection is made."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return f"{BLOCKED_PREFIX}: bad port in {url[:80]}"
    return vet_host(parts.hostname or "", port, allowed)[1]


# -- the deadline: one per fetch, shared by its redirect hops (urllib follows them on one thread)
_local = threading.local()


def _deadline() -> float:
    return getattr(_local, "deadline", None) or (time.monotonic() + 3600.0)


class _LimitedReader(io.RawIOBase):
    """Raw reader over a socket that enforces the fetch's deadline and byte cap on every read."""

    def __init__(self, owner: _GuardedSocket, sock: socket.socket, max_bytes: int) -> None:
        self._owner, self._sock, self._max, self._count = owner, sock, max_bytes, 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._owner._reader_closed()

    def readinto(self, b) -> int:  # type: ignore[override]
        left = _deadline() - time.monotonic()
        if left <= 0:
            raise FetchLimitExceeded(f"{DEADLINE_PREFIX} while reading")
        self._sock.settimeout(left)
        try:
            n = self._sock.recv_into(b)
        except TimeoutError:
            raise FetchLimitExceeded(f"{DEADLINE_PREFIX} while reading") from None
        self._count += n
        if self._count > self._max:
            raise FetchLimitExceeded(f"{TOO_LARGE_PREFIX}: more than {self._max} bytes")
        return n


class _GuardedSocket:
    """The connected socket, except that `makefile` returns a deadline- and cap-enforcing reader.

    Like a real socket, it stays open while a reader made by `makefile` is open, even after
    `close()` (urllib closes the connection's socket as soon as the response headers are read).
    """

    def __init__(self, sock: socket.socket, max_bytes: int) -> None:
        self._sock, self._max = sock, max_bytes
        self._readers, self._close_wanted = 0, False

    def makefile(self, mode: str = "rb", *args, **kwargs):  # noqa: ARG002 - http.client asks for "rb" only
        self._readers += 1
        return io.BufferedReader(_LimitedReader(self, self._sock, self._max))

    def _reader_closed(self) -> None:
        self._readers -= 1
        if self._close_wanted and self._readers <= 0:
            self._sock.close()

    def close(self) -> None:
        self._close_wanted = True
        if self._readers <= 0:
            self._sock.close()

    def sendall(self, data: bytes) -> None:
        left = _deadline() - time.monotonic()
        if left <= 0:
            raise FetchLimitExceeded(f"{DEADLINE_PREFIX} while sending")
        self._sock.settimeout(left)
        self._sock.sendall(data)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _connect_checked(host: str, port: int, limits: FetchLimits) -> socket.socket:
    ips, why = vet_host(host, port, limits.networks())
    if why:
        raise BlockedAddress(why.removeprefix(f"{BLOCKED_PREFIX}: ")) if why.startswith(BLOCKED_PREFIX) \
            else urllib.error.URLError(why)  # fmt: skip
    err: Exception | None = None
    for ip in ips:
        left = _deadline() - time.monotonic()
        if left <= 0:
            raise FetchLimitExceeded(f"{DEADLINE_PREFIX} while connecting")
        try:
            return socket.create_connection((str(ip), port), timeout=left)
        except OSError as exc:
            err = exc
    raise urllib.error.URLError(err or "no address")


class GuardedHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection that connects only to vetted addresses (see module doc)."""

    limits = FetchLimits()

    def connect(self) -> None:
        self.sock = _GuardedSocket(_connect_checked(self.host, self.port, self.limits), self.limits.max_bytes)


class GuardedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS over a vetted address; SNI and certificate checks still use the URL's host name."""

    limits = FetchLimits()

    def connect(self) -> None:
        raw = _connect_checked(self.host, self.port, self.limits)
        tls = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]
        self.sock = _GuardedSocket(tls, self.limits.max_bytes)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, conn_class: type[http.client.HTTPConnection]) -> None:
        super().__init__()
        self._conn = conn_class

    def http_open(self, req):
        return self.do_open(self._conn, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, conn_class: type[http.client.HTTPSConnection]) -> None:
        super().__init__(context=ssl.create_default_context())
        self._conn = conn_class

    def https_open(self, req):
        return self.do_open(self._conn, req, context=self._context)  # type: ignore[attr-defined]


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    max_redirections = 5


class GuardedOpener(urllib.request.OpenerDirector):
    """http(s) only (no file:, ftp:, data: or proxies); one deadline per top-level `open`."""

    def __init__(self, limits: FetchLimits) -> None:
        super().__init__()
        http_conn = type("LimitedHTTPConnection", (GuardedHTTPConnection,), {"limits": limits})
        https_conn = type("LimitedHTTPSConnection", (GuardedHTTPSConnection,), {"limits": limits})
        redirect = _RedirectHandler()
        redirect.max_redirections = limits.max_redirects
        for handler in (
            _HTTPHandler(http_conn),
            _HTTPSHandler(https_conn),
            redirect,
            urllib.request.HTTPDefaultErrorHandler(),
            urllib.request.HTTPErrorProcessor(),
        ):
            self.add_handler(handler)
        self.limits = limits

    def open(self, fullurl, data=None, timeout=socket._GLOBAL_DEFAULT_TIMEOUT):  # type: ignore[override]
        outer = getattr(_local, "deadline", None) is None
        if outer:
            total = self.limits.deadline_s
            if isinstance(timeout, (int, float)):
                total = min(total, float(timeout)) if total else float(timeout)
            _local.deadline = time.monotonic() + total
        try:
            resp = super().open(fullurl, data, timeout)
            if outer:
                resp = _DeadlineResponse(resp, _local.deadline)
            return resp
        finally:
            if outer:
                _local.deadline = None


class _DeadlineResponse:
    """The response, with the fetch's deadline re-armed for reads done after `open` returned."""

    def __init__(self, resp, deadline: float) -> None:
        self._resp, self._deadline = resp, deadline

    def read(self, *args):
        _local.deadline = self._deadline
        try:
            return self._resp.read(*args)
        except (http.client.IncompleteRead, ConnectionError) as exc:
            raise urllib.error.URLError(f"incomplete response: {exc}") from None
        finally:
            _local.deadline = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._resp.close()

    def __getattr__(self, name: str):
        return getattr(self._resp, name)


def build_opener(limits: FetchLimits) -> GuardedOpener:
    return GuardedOpener(limits)


def install(limits: FetchLimits) -> None:
    """Make the guarded opener `urllib.request.urlopen`'s opener in this process."""
    urllib.request.install_opener(build_opener(limits))


@dataclass(frozen=True)
class FetchResult:
    """Outcome of `fetch`: status 0 and an error when no HTTP answer was read."""

    url: str
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    error: str = ""


def fetch(url: str, limits: FetchLimits, user_agent: str = "laitkit") -> FetchResult:
    """GET `url` through the guard; never raises (HTTP errors come back with their status)."""
    opener = build_opener(limits)
    req = urllib.request.Request(url, headers={"User-Agent": user_agent})
    try:
        with opener.open(req) as resp:
            body = resp.read()
            return FetchResult(url, int(resp.status), body, tuple(resp.headers.items()))
    except urllib.error.HTTPError as exc:
        return FetchResult(url, int(exc.code), b"", tuple(exc.headers.items()) if exc.headers else (), str(exc))
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return FetchResult(url, 0, b"", (), str(reason))
