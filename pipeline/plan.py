"""The input plan: which input shards a job has, each a reference to a range of an input file.

Why references, not copies: the driver must not read the corpus. It lists the input files
(a WARC file, a folder of them, a `warc.paths` file as Common Crawl ships it, URL lists, HTML
folders; local paths or any fsspec URI such as `s3://…`), one Ray task per file cuts that file
into ranges of `pages_per_shard` pages (WARC: byte offsets of records; URL lists: row ranges;
HTML folders: runs of files), and the driver stores the small descriptors in `work/plan.json`.
Crawl task i later opens exactly its range. The plan is written atomically and reused on rerun,
so a resumed job sees the same shards, and input shard i always becomes output shard i; an
added, removed or rewritten input file changes the listing and the plan is cut again.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from laitkit.atomic import atomic_write_json
from laitkit.errors import UserError
from laitkit.pipeline import storage

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
WAT_SUFFIXES = (".wat", ".wat.gz")  # Common Crawl names them *.warc.wat.gz
PATHS_SUFFIXES = (".paths", ".paths.gz", ".txt")
URL_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".json")


@dataclass(frozen=True)
class InputShard:
    """One input shard by reference. WARC: records starting in bytes [start, end) (end None: EOF);
    URL list: rows [start, end); HTML: the listed `files`. `count` is pages or rows in it."""

    kind: str  # warc | wat | urls | html
    path: str = ""
    start: int = 0
    end: int | None = None
    count: int = 0
    files: tuple[str, ...] = field(default_factory=tuple)
    base_url: str = ""  # html: the URL of folder `path`; a page's URL is base_url + its relative path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputShard:
        return cls(**{**d, "files": tuple(d.get("files") or ())})


def _read_paths_file(uri: str, base: str) -> list[str]:
    """Lines of a `warc.paths` file (optionally gzipped); relative lines are joined to `base`."""
    with storage.open_binary(uri) as fh:
        data = fh.read()
    if uri.endswith(".gz"):
        data = gzip.decompress(data)
    out = []
    for line in io.StringIO(data.decode("utf-8")):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line if ("://" in line or line.startswith("/")) else storage.join(base, line))
    return out


def list_input_files(kind: str, path: str, paths_base: str = "") -> list[str]:
    """The input files of a job, in a fixed (sorted or listed) order."""
    if not storage.exists(path):
        raise UserError(f"input.path does not exist: {path}")
    if kind in ("warc", "wat"):
        suffixes = WARC_SUFFIXES if kind == "warc" else WAT_SUFFIXES
        if storage.isdir(path):
            files = [f for f in storage.list_files(path) if f.lower().endswith(suffixes)]
        elif path.lower().endswith(PATHS_SUFFIXES):
            files = _read_paths_file(path, paths_base or storage.dirname(path))
        else:
            files = [path]
    elif kind == "urls":
        listed = storage.list_files(path) if storage.isdir(path) else [path]
        files = [f for f in listed if f.lower().endswith(URL_SUFFIXES)] if storage.isdir(path) else listed
    elif kind == "html":
        if not storage.isdir(path):
            raise UserError(f"input.kind html needs a folder, got {path}")
        files = [f for f in storage.list_files(path) if f.lower().endswith((".html", ".htm"))]
    else:
        raise UserError(f"unknown input kind {kind!r}")
    if not files:
        raise UserError(f"the input {path} holds no {kind} file")
    return files


def cut_file(kind: str, uri: str, per_shard: int) -> list[dict[str, Any]]:
    """Ray task body: the input shards of one file (WARC records or URL-list rows)."""
    try:
        return _cut_file(kind, uri, per_shard)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure on this file is the file's fault: say which
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read the {kind} input {uri}: {first}") from None


def _cut_file(kind: str, uri: str, per_shard: int) -> list[dict[str, Any]]:
    from laitkit.pipeline.crawl import readers

    if kind == "warc":
        return [InputShard("warc", uri, s, e, n).to_dict() for s, e, n in readers.index_warc(uri, per_shard)]
    if kind == "wat":  # WAT files are WARC files of metadata records: cut the same way
        from laitkit.pipeline.crawl.wat import is_wat_metadata

        cuts = readers.index_warc(uri, per_shard, want=is_wat_metadata)
        return [InputShard("wat", uri, s, e, n).to_dict() for s, e, n in cuts]
    next(readers.iter_url_rows(uri, 0, 1), None)  # a list without a `url` column fails here, by name
    rows = readers.count_url_rows(uri)
    return [
        InputShard("urls", uri, s, min(s + per_shard, rows), min(per_shard, rows - s)).to_dict()
        for s in range(0, rows, per_shard)
    ]


def build_plan(
    kind: str, path: str, per_shard: int, plan_path: Path, paths_base: str = "", base_url: str = ""
) -> list[InputShard]:
    """List and cut the input (Ray tasks, one per file); reuse `plan_path` while the listing
    (file names, sizes, modification times) and `per_shard` are what it was cut from."""
    from laitkit.pipeline.fingerprint import digest, listing_stamp

    files = list_input_files(kind, path, paths_base)
    stamp = digest(kind, per_shard, base_url, listing_stamp(files))
    if plan_path.exists():
        saved = json.loads(plan_path.read_text())
        if saved.get("listing") == stamp:
            return [InputShard.from_dict(d) for d in saved["shards"]]
    if kind == "html":
        shards = [InputShard("html", path, count=len(c), files=tuple(c), base_url=base_url)
                  for c in _chunks(files, per_shard)]  # fmt: skip
    else:
        import ray

        task = ray.remote(num_cpus=0.5)(cut_file)
        shards = [InputShard.from_dict(d) for part in ray.get([task.remote(kind, f, per_shard) for f in files])
                  for d in part]  # fmt: skip
    if not shards:
        raise UserError("the input holds no page or URL to crawl")
    saved = {"input": path, "kind": kind, "listing": stamp, "shards": [s.to_dict() for s in shards]}
    atomic_write_json(plan_path, saved, indent=None)
    return shards


def _chunks(items: list[str], n: int) -> list[list[str]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def read_shard(shard: InputShard) -> tuple[str, list[Any]]:
    """('pages', [Page]) or ('urls', [row dict]) of one input shard: the crawl task's input."""
    from laitkit.pipeline.crawl import readers

    if shard.kind == "warc":
        return "pages", list(readers.iter_warc(shard.path, shard.start, shard.end))
    if shard.kind == "urls":
        return "urls", list(readers.iter_url_rows(shard.path, shard.start, shard.end))
    if shard.kind == "wat":  # image links with their alt: rows like a URL list's, marked source "wat"
        from laitkit.pipeline.crawl.wat import iter_wat_rows

        return "urls", list(iter_wat_rows(shard.path, None, shard.start, shard.end))
    return "pages", list(readers.iter_html_files((f, html_page_url(shard, f)) for f in shard.files))


def html_page_url(shard: InputShard, file: str) -> str:
    """The URL of a saved page: `base_url` + its path below the input folder; '' without a
    base_url (the reader then uses the page's canonical URL, else file://, and relative images
    of such a page get the `no_base_url` verdict)."""
    if not shard.base_url:
        return ""
    root = shard.path.rstrip("/") + "/"
    rel = file[len(root):] if file.startswith(root) else file.rstrip("/").rsplit("/", 1)[-1]
    return f"{shard.base_url.rstrip('/')}/{rel.lstrip('/')}"
