"""What the synthetic web answers for a path: `faults.json` and the one function that applies it.

Why one function: the live server and the WARC writer must agree byte for byte on what a URL
returns (status, headers, body), or crawling the server and reading the WARC would disagree. Both
call `respond()`. Content types come from a fixed table, not `mimetypes`, which reads the host's
/etc/mime.types and would make the WARC differ between machines.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from laitkit.datasets.synth.graphics import html_error_body

FAULTS_VERSION = 1
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Fault:
    """How the server misbehaves for one path.

    `status` replaces 200 (404, 500, 302); `location` is the redirect target; `hang` means: accept
    the request, send nothing for `timeout_delay` seconds, then close; `content_type` overrides
    the extension's type; `headers` are added to the normal response (X-Robots-Tag).
    """

    kind: str
    status: int = 200
    location: str = ""
    hang: bool = False
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    hang: bool = False


def dump_faults(faults: dict[str, Fault], path: Path) -> None:
    doc = {
        "version": FAULTS_VERSION,
        "paths": {
            p: {k: v for k, v in asdict(f).items() if v not in ("", {}, False)} for p, f in sorted(faults.items())
        },
    }
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def load_faults(path: Path) -> dict[str, Fault]:
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    if doc.get("version") != FAULTS_VERSION:
        raise ValueError(f"{path}: faults version {doc.get('version')!r}, expected {FAULTS_VERSION}")
    return {p: Fault(**spec) for p, spec in doc["paths"].items()}


def url_path(url: str) -> str:
    """The normalised path of a URL or request target, without query or fragment."""
    raw = unquote(urlsplit(url).path)
    return posixpath.normpath("/" + raw.lstrip("/"))


def respond(site: Path, faults: dict[str, Fault], target: str) -> Response:
    """The response for request target `target` (path plus optional query) under `site`."""
    path = url_path(target)
    fault = faults.get(path)
    if fault is not None and fault.hang:
        return Response(0, [], b"", hang=True)
    if fault is not None and fault.status in (301, 302, 303, 307, 308):
        body = html_error_body("Moved")
        return Response(fault.status, _headers("text/html; charset=utf-8", body, {"Location": fault.location}), body)
    if fault is not None and fault.status >= 400:
        title = "Not Found" if fault.status == 404 else "Internal Server Error"
        body = html_error_body(title)
        return Response(fault.status, _headers("text/html; charset=utf-8", body, {}), body)
    file = _resolve(site, path)
    if file is None:
        body = html_error_body("Not Found")
        return Response(404, _headers("text/html; charset=utf-8", body, {}), body)
    body = file.read_bytes()
    ctype = CONTENT_TYPES.get(file.suffix.lower(), "application/octet-stream")
    if fault is not None and fault.content_type:
        ctype = fault.content_type
    return Response(200, _headers(ctype, body, fault.headers if fault is not None else {}), body)


def _headers(ctype: str, body: bytes, extra: dict[str, str]) -> list[tuple[str, str]]:
    return [("Content-Type", ctype), ("Content-Length", str(len(body)))] + sorted(extra.items())


def _resolve(site: Path, path: str) -> Path | None:
    """The file for `path`, or None; directories serve their index.html; never escapes `site`."""
    root = site.resolve()
    candidate = (root / path.lstrip("/")).resolve()
    if candidate != root and root not in candidate.parents:
        return None
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None
