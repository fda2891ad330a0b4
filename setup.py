"""Build step of laitkit: compile the text stage's hot modules with Cython, when it can.

Why a setup.py next to pyproject.toml: every piece of metadata stays in pyproject.toml; this
file only adds the optional extension modules, built from the very `.py` files that run
uncompiled (Cython's pure-Python mode; the list is `extractors/native.py`'s COMPILED).

Nothing here may make an install fail: without Cython, or without a C compiler, or when one
module does not compile, that module stays pure Python (one line on stderr says so) and a
stale build of it is removed. After a build the SHA-256 of each compiled source is written to
`extractors/_compiled.json` beside the built files; `native.install()` loads a compiled module
only while its source still has that hash.

`make setup` runs `python setup.py build_ext --inplace` again whenever a compiled source is
newer than the last build (the Makefile rule depends on those files).
"""

from __future__ import annotations

import hashlib
import json
import runpy
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
NATIVE = runpy.run_path(str(ROOT / "extractors" / "native.py"))  # stdlib only; nothing of laitkit
COMPILED: tuple[str, ...] = NATIVE["COMPILED"]
PACKAGE: str = NATIVE["PACKAGE"]
STAMP_NAME: str = NATIVE["BUILD_STAMP"].name

# Python semantics kept exactly: annotations are not read as C types (Cython 3 would otherwise
# make `x: float` a C double and reject a tuple passed where `list[str]` is annotated).
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}


def _say(msg: str) -> None:
    print(f"laitkit build: {msg}", file=sys.stderr, flush=True)


class BuildCompiled(build_ext):
    """`build_ext` that cythonizes at build time, never fails, and writes the source-hash stamp."""

    def finalize_options(self) -> None:
        exts = self.distribution.ext_modules or []
        # hashes first: the stamp names the source exactly as Cython read it
        self._hashes = {e.name: hashlib.sha256((ROOT / e.sources[0]).read_bytes()).hexdigest() for e in exts}
        self._built: dict[str, bool] = {}
        self._all = list(exts)
        if exts and exts[0].sources[0].endswith(".py"):
            try:
                from Cython.Build import cythonize

                exts = cythonize(exts, build_dir="build/cython", compiler_directives=DIRECTIVES, quiet=True)
            except Exception as exc:  # noqa: BLE001 - no Cython / a Cython error must not fail the install
                _say(f"no Cython build ({type(exc).__name__}: {exc}); the text modules stay pure Python")
                exts = []
            self.distribution.ext_modules = exts
        super().finalize_options()

    def run(self) -> None:
        super().run()  # builds, then (inplace, editable) copies what was built
        self.extensions = [e for e in self.extensions if self._built.get(e.name)]
        for name in self._hashes:  # a module not built now must not leave an older build behind
            if not self._built.get(name):
                self._remove(name)
        self._write_stamp()

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
            self._built[ext.name] = True
        except Exception as exc:  # noqa: BLE001 - no compiler / a compile error: stay pure Python
            self._built[ext.name] = False
            _say(f"{ext.name} not compiled ({type(exc).__name__}: {exc}); it stays pure Python")

    def copy_extensions_to_source(self) -> None:
        every = self.extensions
        self.extensions = [e for e in every if self._built.get(e.name)]
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = every

    def _target(self, name: str) -> Path:
        return Path(self.get_ext_fullpath(name))

    def _remove(self, name: str) -> None:
        p = self._target(name)
        if p.exists():
            p.unlink()

    def _write_stamp(self) -> None:
        folder = self._target(f"{PACKAGE}.{COMPILED[0]}").parent
        stamp = {n.rsplit(".", 1)[-1]: h for n, h in self._hashes.items() if self._built.get(n)}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STAMP_NAME).write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _say(f"compiled {len(stamp)} of {len(self._hashes)} text modules with Cython")


setup(
    ext_modules=[Extension(f"{PACKAGE}.{n}", [f"extractors/{n}.py"]) for n in COMPILED],
    cmdclass={"build_ext": BuildCompiled},
)
