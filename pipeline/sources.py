"""Inputs of a job, cut into numbered input shards that fix what each output shard holds.

Why cut first: resuming without duplicates needs a deterministic unit. Like img2dataset's
reader, the input (WARC records, HTML files, URL-list rows) is split once into
`work/pages/{i:05d}.parquet`; crawl shard i and output shard i derive only from it. The split is
written atomically and reused on rerun, so a resumed job sees exactly the same shards.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from laitkit.errors import UserError

log = logging.getLogger(__name__)
URL_COLUMNS = ("url", "caption", "page_url")


@dataclass
class Input:
    """Where the candidates come from: `pages` yields Page objects, `url_rows` img2dataset rows."""

    kind: str
    pages: Iterable[Any] | None = None
    url_rows: Iterable[dict[str, str]] | None = None


@contextlib.contextmanager
def open_input(cfg: Any, out: Path) -> Iterator[Input]:
    """Open the configured input; for `synth`, generate the web if needed and serve it."""
    from laitkit.pipeline.crawl import readers

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
            yield Input(kind="pages", pages=readers.iter_warc(web / "pages.warc.gz"))
        return
    p = Path(path)
    if not p.exists():
        raise UserError(f"input.path does not exist: {p}")
    if kind == "warc":
        files = sorted(p.glob("*.warc*")) if p.is_dir() else [p]
        yield Input(kind="pages", pages=(page for f in files for page in readers.iter_warc(f)))
    elif kind == "html":
        yield Input(kind="pages", pages=readers.iter_html_dir(p, getattr(cfg.input, "base_url", "")))
    else:
        yield Input(kind="urls", url_rows=readers.iter_url_rows(p))


def _chunks(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for item in items:
        buf.append(item)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf


def write_input_shards(inp: Input, pages_dir: Path, per_shard: int) -> list[Path]:
    """Split the input once; on rerun reuse the split recorded in `pages_dir/index.json`."""
    index = pages_dir / "index.json"
    if index.exists():
        return [pages_dir / name for name in json.loads(index.read_text())["shards"]]
    paths: list[Path] = []
    if inp.kind == "pages":
        assert inp.pages is not None
        for i, chunk in enumerate(_chunks(inp.pages, per_shard)):
            table = pa.table(
                {
                    "kind": ["page"] * len(chunk),
                    "url": [p.url for p in chunk],
                    "html": [p.html for p in chunk],
                    "headers": [json.dumps(dict(p.headers)) for p in chunk],
                }
            )
            paths.append(_write(pages_dir / f"{i:05d}.parquet", table))
    else:
        assert inp.url_rows is not None
        for i, chunk in enumerate(_chunks(inp.url_rows, per_shard)):
            table = pa.table(
                {
                    "kind": ["url"] * len(chunk),
                    "url": [r["url"] for r in chunk],
                    "caption": [r.get("caption") or "" for r in chunk],
                    "page_url": [r.get("page_url") or "" for r in chunk],
                }
            )
            paths.append(_write(pages_dir / f"{i:05d}.parquet", table))
    if not paths:
        raise UserError("the input holds no page or URL to crawl")
    tmp = index.with_name(".index.json.tmp")
    tmp.write_text(json.dumps({"shards": [p.name for p in paths]}))
    tmp.replace(index)
    return paths


def _write(path: Path, table: pa.Table) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def read_input_shard(path: Path) -> tuple[str, list[Any]]:
    """('pages', [Page]) or ('urls', [row dict]) for one input shard."""
    from laitkit.pipeline.crawl.readers import Page

    rows = pq.read_table(path).to_pylist()
    if rows and rows[0]["kind"] == "url":
        return "urls", [{k: r[k] for k in URL_COLUMNS} for r in rows]
    return "pages", [Page(url=r["url"], html=r["html"], headers=json.loads(r["headers"])) for r in rows]
