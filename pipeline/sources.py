"""Where a job's input is: a path (local or fsspec URI) and its kind, served first when synthetic.

Why so little: the input is never read here. The driver only names the input; `pipeline/plan.py`
lists and cuts it into input shards by reference, and crawl tasks read their own range. For
`synth`, the synthetic web is generated when missing and served on 127.0.0.1 for the job's
lifetime (its WARC is the input; its images are what the crawl downloads).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from laitkit.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Input:
    """What the plan cuts: `kind` is warc | wat | urls | html, `path` a file, folder, paths file or URI."""

    kind: str
    path: str
    paths_base: str = ""
    base_url: str = ""  # html: the URL of the folder's root (see plan.read_shard)


def check_synth_port(cfg: Any, out: Path) -> None:
    """Fail in one line, before a cluster starts, when the synthetic web's port is taken."""
    import socket

    if cfg.input.kind != "synth":
        return
    web = Path(cfg.input.path) if cfg.input.path else out / "synth-web"
    meta_path = web / "synth.json"
    port = cfg.synth.port
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("pages") == cfg.synth.pages and meta.get("seed") == cfg.synth.seed:
            port = int(str(meta["base_url"]).rsplit(":", 1)[1].rstrip("/"))
    if not port:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the server binds (SO_REUSEADDR): a previous run's connections left in TIME_WAIT do not
        # make the port busy, a listening socket still does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"synth.port {port} is already in use on 127.0.0.1; free it or set synth.port: 0 "
                                "(a free port; for an existing web, regenerate it)") from None  # fmt: skip
            raise


@contextlib.contextmanager
def open_input(cfg: Any, out: Path) -> Iterator[Input]:
    """Name the configured input; for `synth`, generate the web if needed and serve it."""
    kind, path = cfg.input.kind, cfg.input.path
    if kind == "synth":
        from laitkit.datasets.synth import SynthServer, free_port, generate

        web = Path(path) if path else out / "synth-web"
        meta_path = web / "synth.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
        if meta is None or meta.get("pages") != cfg.synth.pages or meta.get("seed") != cfg.synth.seed:
            port = cfg.synth.port or free_port()
            log.info("generating synthetic web (%d pages, seed %d) in %s", cfg.synth.pages, cfg.synth.seed, web)
            meta = generate(web, pages=cfg.synth.pages, seed=cfg.synth.seed, base_url=f"http://127.0.0.1:{port}")
        port = int(meta["base_url"].rsplit(":", 1)[1].rstrip("/"))
        try:
            server_cm = SynthServer(web, port=port, timeout_delay=cfg.synth.timeout_delay)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"synth.port {port} is already in use on 127.0.0.1 (the synthetic web in {web} "
                                "was generated for it); free the port, or remove that folder and set "
                                "synth.port: 0") from None  # fmt: skip
            raise
        with server_cm as server:
            log.info("serving synthetic web at %s", server.base_url)
            yield Input(kind="warc", path=str((web / "pages.warc.gz").resolve()))
        return
    kind = {"urls": "urls", "warc": "warc", "wat": "wat", "html": "html"}[kind]
    local = "://" not in path
    yield Input(kind=kind, path=str(Path(path).resolve()) if local and path else path,
                paths_base=cfg.input.paths_base, base_url=getattr(cfg.input, "base_url", "") or "")  # fmt: skip
