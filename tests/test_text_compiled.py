"""The compiled text modules: built where a compiler is, never stale, the same graphs as the .py.

`make setup` compiles `extractors/native.py`'s COMPILED modules with Cython from their `.py`
files. These tests check that the test run itself uses that build (CI runs `make test`), that a
build older than its source is refused in favour of the source, and that compiled and pure
Python give identical annotations on FACTUAL dev captions (the pure run is a subprocess with
`LAITKIT_PURE_PYTHON=1`; skipped when ../shared is absent).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from laitkit.extractors import native
from laitkit.extractors.factual import read_factual_csv

ROOT = Path(__file__).resolve().parents[1]
FACTUAL = ROOT / ".." / "shared" / "data" / "factual"


def test_makefile_rebuilds_on_exactly_the_compiled_sources() -> None:
    make = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    m = re.search(r"^COMPILED_SRC := (.*)$", make, re.M)
    assert m, "Makefile has no COMPILED_SRC"
    assert m.group(1).split() == [f"extractors/{n}.py" for n in native.COMPILED]
    assert re.search(r"^\$\(BUILT\): .*\$\(COMPILED_SRC\)", make, re.M), "the build rule must depend on the sources"


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler here")
@pytest.mark.skipif(os.environ.get(native.PURE_ENV, "") not in ("", "0"), reason="pure Python forced")
def test_this_run_uses_the_compiled_build() -> None:
    """With a compiler, `make setup` built every module and this process loaded the build: a stale or
    missing build fails here loudly (run `make setup`) instead of silently running slower code."""
    assert native.status() == {n: "compiled" for n in native.COMPILED}
    import laitkit.extractors.scene_graph as sg
    import laitkit.extractors.scene_graph_proposer as sp

    assert Path(sg.__file__).suffix == ".so" and Path(sp.__file__).suffix == ".so"


def test_a_stale_build_is_refused(tmp_path: Path) -> None:
    """A build whose source changed after it (or with no stamp) loads as its `.py`; so does every
    module under LAITKIT_PURE_PYTHON."""
    suffix = native.importlib.machinery.EXTENSION_SUFFIXES[0]
    for n in native.COMPILED:
        (tmp_path / f"{n}.py").write_text(f"X = {n!r}\n", encoding="utf-8")
        (tmp_path / f"{n}{suffix}").write_bytes(b"not really a build")
    stamp = tmp_path / "_compiled.json"
    stamp.write_text(json.dumps({n: native.source_hash(tmp_path / f"{n}.py") for n in native.COMPILED}))
    assert native.decide(tmp_path, stamp, pure=False) == {n: "compiled" for n in native.COMPILED}
    edited = native.COMPILED[1]
    (tmp_path / f"{edited}.py").write_text("X = 'edited'\n", encoding="utf-8")
    got = native.decide(tmp_path, stamp, pure=False)
    assert "stale" in got[edited] and "make setup" in got[edited]
    assert all(got[n] == "compiled" for n in native.COMPILED if n != edited)
    assert all(s.startswith("pure") for s in native.decide(tmp_path, stamp, pure=True).values())
    stamp.unlink()
    assert all("stale" in s for s in native.decide(tmp_path, stamp, pure=False).values())
    (tmp_path / f"{edited}{suffix}").unlink()
    assert native.decide(tmp_path, stamp, pure=False)[edited] == "pure: not built"
    # the finder that routes a refused module to its source
    spec = native._SourceFirst({"laitkit_fake_mod": tmp_path / f"{edited}.py"}).find_spec("laitkit_fake_mod")
    assert spec is not None and spec.origin == str(tmp_path / f"{edited}.py")
    assert native._SourceFirst({}).find_spec("laitkit_fake_mod") is None


_PURE_RUN = """
import json, sys
from laitkit.extractors import native
assert all(s.startswith("pure") for s in native.status().values()), native.status()
import laitkit.extractors.scene_graph as sg
assert sg.__file__.endswith(".py"), sg.__file__
from laitkit.extractors.text import TextExtractor
caps = json.load(sys.stdin)
json.dump([a.to_dict() for a in TextExtractor().annotate(caps)], sys.stdout)
"""


@pytest.mark.skipif(not (FACTUAL / "dev.csv").exists(), reason="shared FACTUAL data absent")
def test_compiled_and_pure_python_give_identical_annotations() -> None:
    """400 FACTUAL dev captions, whole annotations (graph nodes, tokens, counts) compared exactly."""
    if native.status() != {n: "compiled" for n in native.COMPILED}:
        pytest.skip(f"no complete compiled build to compare: {native.status()}")
    from laitkit.extractors.text import TextExtractor

    caps, _ = read_factual_csv(FACTUAL / "dev.csv")
    caps = caps[:400]
    env = {**os.environ, native.PURE_ENV: "1"}
    res = subprocess.run(
        [sys.executable, "-c", _PURE_RUN], input=json.dumps(caps), capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    pure = json.loads(res.stdout)
    compiled = json.loads(json.dumps([a.to_dict() for a in TextExtractor().annotate(caps)]))
    assert len(pure) == len(compiled) == 400
    assert sum(len(a["graph"]) for a in compiled) > 1000  # real graphs, not empty ones
    assert [i for i, (a, b) in enumerate(zip(compiled, pure, strict=True)) if a != b] == []
