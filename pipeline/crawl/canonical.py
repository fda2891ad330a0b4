"""One spelling per URL for dedup: the same image linked as `HTTP://Cdn.Example:80/a.jpg?utm_source=x&b=1`
and `http://cdn.example/a.jpg?b=1` is one image, fetched and kept once.

Why w3lib: `canonicalize_url` is Scrapy's maintained implementation of the fiddly parts —
percent-encoding normalised (`%7e` → `~`, unsafe bytes quoted once), query arguments sorted,
fragments dropped, IDNA hosts. On top of it: scheme and host lower-cased, default ports removed,
and tracking parameters removed (`utm_*`, click ids such as `gclid`/`fbclid`, mailing-list ids),
which change per campaign but never the image. Parameters that do select content (`?id=`,
`?width=`) are kept: dedup must never merge two different images.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from w3lib.url import canonicalize_url as _w3lib_canonicalize

TRACKING_PARAMS = frozenset(
    {
        "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "yclid", "igshid", "twclid",
        "ttclid", "li_fat_id", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "hsctatracking", "mkt_tok",
        "oly_anon_id", "oly_enc_id", "rb_clickid", "s_cid", "vero_id", "wickedid", "ref_src", "ref_url", "spm",
        "scid", "cmpid", "icid", "ncid", "ocid",
    }
)  # fmt: skip
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "oly_", "at_")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_tracking(name: str) -> bool:
    n = name.strip().lower()
    return n in TRACKING_PARAMS or n.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """The dedup key of `url` (see the module doc); a URL w3lib cannot parse is returned unchanged."""
    try:
        parts = urlsplit(url.strip())
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking(k)])
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
        netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
        if parts.username or parts.password:
            netloc = f"{parts.username or ''}{':' + parts.password if parts.password else ''}@{netloc}"
        if ":" in host and not host.startswith("["):
            netloc = f"[{host}]" + netloc[len(host):]
        cleaned = urlunsplit((scheme, netloc, parts.path or "/", query, ""))
        return re.sub(r"\?$", "", _w3lib_canonicalize(cleaned))
    except ValueError:
        return url
