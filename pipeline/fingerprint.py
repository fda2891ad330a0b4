"""Fingerprints: what a step's output was made from, so a rerun redoes exactly what changed.

Why per step and per shard: a job is crawl (per input shard) → dedup (global) → featurise and
write (per output shard) → pretraining. Each output is valid exactly as long as the config
sections its step reads (`JobConfig.stage_hash`) and its inputs are unchanged. Inputs are named
by size and modification time for big files (WARCs, URL lists: hashing a 1 GB WARC on every
rerun would cost more than the check saves) and by content hash for HTML pages (small, and an
edited page must be recrawled even when a copy kept its mtime). The driver keeps the record in
`work/fingerprints.json` and writes it after each step, so a crash only costs the step it hit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from laitkit.atomic import atomic_write_json
from laitkit.pipeline import storage

RECORD = "fingerprints.json"


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def file_stamp(uri: str, content: bool = False) -> list[Any]:
    """[name, size, mtime or content hash] of one input file, local or fsspec."""
    if not storage.is_remote(uri):
        p = Path(uri.removeprefix("file://"))
        st = p.stat()
        if content:
            return [str(p), st.st_size, hashlib.sha256(p.read_bytes()).hexdigest()]
        return [str(p), st.st_size, st.st_mtime_ns]
    fs, path = storage.url_to_fs(uri)
    info = fs.info(path)
    version = info.get("ETag") or info.get("LastModified") or info.get("mtime") or info.get("created")
    return [uri, info.get("size"), str(version)]


def listing_stamp(files: list[str]) -> str:
    """Fingerprint of the input listing (which files, how big, when written): the plan's key."""
    return digest([file_stamp(f) for f in files])


def input_shard_stamp(shard: Any) -> str:
    """Fingerprint of one input shard: its reference plus its files' stamps (HTML: by content)."""
    if shard.kind == "html":
        return digest(shard.to_dict(), [file_stamp(f, content=True) for f in shard.files])
    return digest(shard.to_dict(), file_stamp(shard.path))


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:20] if path.exists() else ""


# The weights shipped in the package: the featurising step's defaults (lexicon, naming tagger,
# proposer, relevance model, tiny detector) when the config names no file of its own.
PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "extractors" / "weights"
MODEL_SECTIONS = ("relevance", "regions", "text")


def models_stamp(sections: dict[str, Any], weights_dir: Path = PACKAGE_WEIGHTS) -> str:
    """Fingerprint of the models the featurising step reads, by content.

    Why: the config names a model by path ("regions.weights", "text.lexicon") or not at all (the
    shipped default), so `JobConfig.stage_hash` stays the same when a weights file is retrained in
    place or a newer laitkit ships new defaults; a rerun would then keep shards annotated by the
    old models next to shards annotated by the new ones. Hashed: every file shipped in
    `weights_dir` (~10 MB, a few ms), every string in the `MODEL_SECTIONS` of the config
    (`sections`: `JobConfig.to_dict()`) that names an existing local file (content) or a remote
    one (size and version), and the installed version of the spaCy model package.
    """
    parts: list[Any] = []
    if weights_dir.is_dir():
        parts += [[p.name, file_hash(p)] for p in sorted(weights_dir.iterdir()) if p.is_file()]
    for name in MODEL_SECTIONS:
        for key, val in sorted((sections.get(name) or {}).items()):
            if not isinstance(val, str) or not val:
                continue
            if storage.is_remote(val):
                parts.append([name, key, file_stamp(val)])
            elif Path(val).is_file():
                parts.append([name, key, file_stamp(val, content=True)])
    model = (sections.get("text") or {}).get("model")
    if isinstance(model, str) and model:
        parts.append(["spacy model", model, _package_version(model)])
    return digest(parts)


def _package_version(name: str) -> str:
    """The installed version of a pip package ("" when it is not one, e.g. a model folder)."""
    from importlib import metadata

    for dist in (name, name.replace("_", "-")):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return ""


class Record:
    """`work/fingerprints.json`: {"crawl": {shard: fp}, "dedup": fp, "shards": {shard: fp}, "pretrain": fp}."""

    def __init__(self, work: Path) -> None:
        self.path = work / RECORD
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.crawl: dict[str, str] = dict(data.get("crawl") or {})
        self.dedup: str = data.get("dedup") or ""
        self.shards: dict[str, str] = dict(data.get("shards") or {})
        self.pretrain: str = data.get("pretrain") or ""

    def save(self) -> None:
        os.makedirs(self.path.parent, exist_ok=True)
        atomic_write_json(self.path, {"crawl": self.crawl, "dedup": self.dedup, "shards": self.shards,
                                      "pretrain": self.pretrain})  # fmt: skip
