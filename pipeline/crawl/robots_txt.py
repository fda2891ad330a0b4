"""robots.txt for the image fetches: one fetch per host (through the address guard), `protego` rules.

Why before img2dataset and not inside it: img2dataset fetches each URL blindly; asking the
host's robots.txt first means a disallowed image is never requested and gets its own verdict
(`robots_txt`, detail naming the rule's host). Hosts are looked up once each (cached for the
whole call), in parallel threads, under the same `FetchLimits` as the images.

What a robots.txt answer means (RFC 9309, section 2.3.1): 2xx → its rules; 4xx (404 most
often) → no rules, everything allowed; 5xx, a network error or a timeout → the host is treated
as disallowing everything ("unreachable"), as the RFC asks crawlers to assume complete
disallow. Redirects are followed (up to the guard's limit). The rules are matched with the
configured user-agent token; a body larger than 500 KiB is cut there (the RFC's minimum limit).

Pages: laitkit does not fetch pages itself (they come from WARC archives, saved HTML or URL
lists); a page fetched by someone else cannot be un-fetched, so a page's robots.txt is not asked
here. Pages are still subject to X-Robots-Tag and `<meta name="robots">` (robots.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from laitkit.pipeline.crawl.netguard import FetchLimits, fetch

MAX_ROBOTS_BYTES = 500 * 1024


@dataclass(frozen=True)
class HostRules:
    """A host's robots.txt outcome: the parser (None = allow all / disallow all, see `allow_all`)."""

    origin: str
    parser: object | None
    allow_all: bool
    note: str  # how the rules were obtained, for verdict details

    def allowed(self, url: str, token: str) -> bool:
        if self.parser is None:
            return self.allow_all
        return bool(self.parser.can_fetch(url, token))  # type: ignore[attr-defined]


def origin_of(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme.lower()}://{p.netloc.lower()}"


def load_rules(origin: str, limits: FetchLimits, token: str) -> HostRules:
    """Fetch and parse `origin`/robots.txt (never raises; see the module doc for each outcome)."""
    from protego import Protego

    r = fetch(f"{origin}/robots.txt", limits, user_agent=f"Mozilla/5.0 (compatible; {token})")
    if 200 <= r.status < 300:
        text = r.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        return HostRules(origin, Protego.parse(text), True, "robots.txt")
    if 400 <= r.status < 500:
        return HostRules(origin, None, True, f"robots.txt {r.status}: allow all")
    why = f"HTTP {r.status}" if r.status else (r.error or "no answer")
    return HostRules(origin, None, False, f"robots.txt unreachable ({why[:120]}): disallow all")


class RobotsCache:
    """robots.txt rules per origin, fetched at most once each (thread-safe)."""

    def __init__(self, limits: FetchLimits, token: str = "laitkit", threads: int = 16) -> None:
        self.limits, self.token, self.threads = limits, token, threads
        self._rules: dict[str, HostRules] = {}
        self._lock = threading.Lock()

    def prefetch(self, urls: Iterable[str]) -> None:
        """Load the rules of every origin among `urls` not cached yet, in parallel."""
        with self._lock:
            todo = sorted({origin_of(u) for u in urls} - set(self._rules))
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.threads, len(todo)))) as pool:
            for rules in pool.map(lambda o: load_rules(o, self.limits, self.token), todo):
                with self._lock:
                    self._rules[rules.origin] = rules

    def rules(self, url: str) -> HostRules:
        origin = origin_of(url)
        if origin not in self._rules:
            self.prefetch([url])
        return self._rules[origin]

    def refusal(self, url: str) -> str:
        """'' when `url` may be fetched, else the verdict detail."""
        rules = self.rules(url)
        if rules.allowed(url, self.token):
            return ""
        return f"{rules.origin}: {rules.note} disallows {urlsplit(url).path or '/'} for {self.token}"
