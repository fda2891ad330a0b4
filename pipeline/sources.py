"""Where a job's input is: a path (local or fsspec URI) and its kind, served first when synthetic.

Why so little: the input is never read here. The driver only names the input; `pipeline/plan.py`
lists and cuts it into input shards by reference, and crawl tasks read their own range. For
`synth`, the synthetic web is generated when missing and served on 127.0.0.1 for the job's
lifetime (its WARC is the input; its images are what the crawl downloads).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Input:
    """What the plan cuts: `kind` is warc | wat | urls | html, `path` a file, folder, paths file or URI."""

    kind: str
    path: str
    paths_base: str = ""
    base_url: str = ""  # html: the URL of the folder's root (see plan.read_shard)


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
        with SynthServer(web, port=port, timeout_delay=cfg.synth.timeout_delay) as server:
            log.info("serving synthetic web at %s", server.base_url)
            yield Input(kind="warc", path=str((web / "pages.warc.gz").resolve()))
        return
    kind = {"urls": "urls", "warc": "warc", "wat": "wat", "html": "html"}[kind]
    local = "://" not in path
    yield Input(kind=kind, path=str(Path(path).resolve()) if local and path else path,
                paths_base=cfg.input.paths_base, base_url=getattr(cfg.input, "base_url", "") or "")  # fmt: skip
