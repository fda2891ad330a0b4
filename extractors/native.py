"""Which text-stage modules run compiled, and a guard that never lets a stale build run.

Why compiled: the scene-graph walk, the proposer and the taggers are plain Python that runs a few
hundred dict and list operations per caption; compiled by Cython from the very same `.py` files
(pure-Python mode: no `.pyx`, no C types, the `.py` stays the only source) they cost about half
as much CPU (README, text section), which the stage needs to stay near bare `nlp.pipe`.
`setup.py` builds them (`make setup` runs it and rebuilds when a source changes).

Why a guard: an extension module next to its `.py` wins the import, so a `.so` built from an
older version of the file would silently run old code after an edit. `setup.py` records the
SHA-256 of each source it compiled (`BUILD_STAMP`); on import of `laitkit.extractors` a
compiled module whose source no longer has that hash is skipped in favour of its `.py` (one
warning line says which, and how to rebuild), and `status()` says so, which a test checks.
`LAITKIT_PURE_PYTHON=1` forces the `.py` files everywhere (the reference for the tests that
compare the two). Without a build (no compiler, no Cython) the `.py` files run as they are.

This file is never compiled itself (it decides what is loaded) and imports nothing of laitkit.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("laitkit.native")

HERE = Path(__file__).resolve().parent
# Module names under `laitkit.extractors` that setup.py compiles (the one list of them; the
# Makefile's COMPILED_SRC must name the same files, a test checks).
COMPILED = ("scene_graph", "scene_graph_proposer", "scene_graph_naming", "scene_graph_filter", "text")
PACKAGE = "laitkit.extractors"
# module -> SHA-256 of the source it was compiled from; written by setup.py after each build
BUILD_STAMP = HERE / "_compiled.json"
PURE_ENV = "LAITKIT_PURE_PYTHON"

_status: dict[str, str] = {}


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def built_extension(name: str, folder: Path = HERE) -> Path | None:
    """The compiled module file of `name` in `folder` for this interpreter, if there is one."""
    for suf in importlib.machinery.EXTENSION_SUFFIXES:
        p = folder / (name + suf)
        if p.exists():
            return p
    return None


def decide(folder: Path = HERE, stamp: Path | None = None, pure: bool | None = None) -> dict[str, str]:
    """For each compiled module name: "compiled", or why its `.py` runs instead ("pure: ...")."""
    stamp = BUILD_STAMP if stamp is None else stamp
    pure = os.environ.get(PURE_ENV, "") not in ("", "0") if pure is None else pure
    try:
        built = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        built = {}
    out: dict[str, str] = {}
    for name in COMPILED:
        ext = built_extension(name, folder)
        if ext is None:
            out[name] = "pure: not built"
        elif pure:
            out[name] = f"pure: {PURE_ENV} is set"
        elif built.get(name) != source_hash(folder / f"{name}.py"):
            out[name] = f"pure: {ext.name} is stale (its {name}.py changed since the build; run `make setup`)"
        else:
            out[name] = "compiled"
    return out


class _SourceFirst:
    """A meta-path finder that loads the listed modules from their `.py`, past a built `.so`."""

    def __init__(self, names: dict[str, Path]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        src = self.names.get(fullname)
        if src is None:
            return None
        return importlib.util.spec_from_file_location(fullname, src)


def install() -> dict[str, str]:
    """Decide once per process (see module docstring) and route the imports accordingly."""
    if _status:
        return _status
    _status.update(decide())
    pure = {f"{PACKAGE}.{n}": HERE / f"{n}.py" for n, s in _status.items() if s not in ("compiled", "pure: not built")}
    if pure:
        sys.meta_path.insert(0, _SourceFirst(pure))
        stale = sorted(n for n, s in _status.items() if "stale" in s)
        if stale:
            log.warning("laitkit: compiled %s stale, running the .py instead: run `make setup`", ", ".join(stale))
        elif all(s == "pure: not built" for s in _status.values()):
            log.info("laitkit: text modules not compiled (no build), running pure Python")
    return _status


def status() -> dict[str, str]:
    """What `install` decided for this process: module name -> "compiled" or "pure: <why>"."""
    return dict(install())
