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

Pages: laitkit does not fetch pages itself (they come from WARC archives, saved HTML, WAT
records or URL lists with a page_url column), but the page's site still has a say in whether our
agent may use it: a site that disallows `laitkit` (or `*`) for a page path objects to its use,
whoever archived it (Common Crawl's CCBot obeyed CCBot's rules, not ours). So the page's
robots.txt is asked too (`page_refusal`), with one difference: only an explicit rule refuses.
A page host that no longer resolves, answers 5xx or has no robots.txt gives no page verdict —
the page was fetched already, and a dead host in a years-old archive must not erase its images.
The image itself is still fetched only under its own host's rules, strictly as above. Pages are
also subject to X-Robots-Tag and `<meta name="robots">` (robots.py).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
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
    text: str | None = None  # the robots.txt body when rules were parsed (kept for the on-disk cache)

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
        return HostRules(origin, Protego.parse(text), True, "robots.txt", text)
    if 400 <= r.status < 500:
        return HostRules(origin, None, True, f"robots.txt {r.status}: allow all")
    why = f"HTTP {r.status}" if r.status else (r.error or "no answer")
    return HostRules(origin, None, False, f"robots.txt unreachable ({why[:120]}): disallow all")


class RobotsCache:
    """robots.txt rules per origin, fetched at most once each (thread-safe).

    With `cache_dir`, each origin's answer is also kept on disk, so a resumed or repeated job
    decides with the same rules it used the first time and asks no host again.
    """

    def __init__(
        self, limits: FetchLimits, token: str = "laitkit", threads: int = 16, cache_dir: str | Path | None = None
    ) -> None:
        self.limits, self.token, self.threads = limits, token, threads
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._rules: dict[str, HostRules] = {}
        self._lock = threading.Lock()

    def _path(self, origin: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / (hashlib.sha256(origin.encode()).hexdigest()[:24] + ".json")

    def _load_or_fetch(self, origin: str) -> HostRules:
        from protego import Protego

        path = self._path(origin)
        if path is not None and path.is_file():
            d = json.loads(path.read_text(encoding="utf-8"))
            parser = Protego.parse(d["text"]) if d["text"] is not None else None
            return HostRules(origin, parser, d["allow_all"], d["note"] + " (cached)", d["text"])
        rules = load_rules(origin, self.limits, self.token)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"origin": origin, "allow_all": rules.allow_all, "note": rules.note,
                                       "text": rules.text}), encoding="utf-8")  # fmt: skip
            tmp.replace(path)
        return rules

    def prefetch(self, urls: Iterable[str]) -> None:
        """Load the rules of every origin among `urls` not cached yet, in parallel."""
        with self._lock:
            todo = sorted({origin_of(u) for u in urls} - set(self._rules))
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.threads, len(todo)))) as pool:
            for rules in pool.map(self._load_or_fetch, todo):
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

    def page_refusal(self, page_url: str) -> str:
        """'' unless the page's robots.txt has a rule disallowing it for our token (module doc:
        pages were fetched by someone else, so only an explicit rule refuses), else the detail."""
        rules = self.rules(page_url)
        if rules.parser is None or rules.allowed(page_url, self.token):
            return ""
        return f"page {page_url[:120]}: {rules.origin}: {rules.note} disallows {urlsplit(page_url).path or '/'} " \
            f"for {self.token}"  # fmt: skip
