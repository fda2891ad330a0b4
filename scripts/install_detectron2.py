"""Install detectron2 into the running interpreter: one idempotent step, no compiler needed.

Why this exists: PyPI has no detectron2 wheel for Python 3.11. `pb1-detectron2==0.6` carries the
official v0.6 Python tree, but its sdist lacks the C++ sources, declares a direct-URL extra that
pip refuses, and predates Pillow 10 (`Image.LINEAR`) and setuptools 81 (`pkg_resources`). Faster
R-CNN (C4 and FPN) needs none of the compiled ops, so this script:

1. does nothing if `detectron2.modeling` already imports (e.g. the official source build,
   `pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'`,
   which is what `make setup DETECTRON2=git` runs on a user's cluster);
2. otherwise fetches the sdist from the package index by name, checks its sha256 against the
   index, patches the two incompatibilities, adds a `detectron2/_C.py` stand-in whose every
   attribute raises a clear error (rotated boxes, deformable conv and fast COCO eval need the
   real compiled ops), and pip-installs the result as distribution `detectron2`.

Usage: python scripts/install_detectron2.py [--cache DIR] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

DIST = "pb1-detectron2"
VERSION = "0.6"
SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
INDEX = os.environ.get("LAITKIT_PYPI_SIMPLE", "https://pypi.org/simple")

STUB = '''"""Stand-in for detectron2's compiled ops, installed by laitkit's installer.

This detectron2 was installed from its Python sources without a C++/CUDA build. Faster R-CNN
(C4 and FPN) never calls into here. Rotated boxes, deformable convolution and the fast COCO
evaluator do; they raise this error instead of an obscure ImportError.
"""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise RuntimeError(
        f"detectron2._C.{name} is a compiled op and this detectron2 was installed without them "
        "(laitkit's pure-Python install). Rotated boxes, deformable conv and fast COCO eval need "
        "the official build: pip install --no-build-isolation "
        "'git+https://github.com/facebookresearch/detectron2.git'"
    )


def get_compiler_version():
    return "none (laitkit pure-Python install)"


def get_cuda_version():
    return "none (laitkit pure-Python install)"
'''

PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "detectron2"
version = "0.6+laitkit"
description = "detectron2 v0.6 Python tree (from pb1-detectron2) without compiled ops, for laitkit"
requires-python = ">=3.8"

[tool.setuptools.packages.find]
include = ["detectron2*"]

[tool.setuptools.package-data]
"*" = ["*.yaml", "*.py", "*.json"]
"""


def already_installed() -> bool:
    """True if detectron2's modeling package imports (any install, ours or the official one)."""
    if importlib.util.find_spec("detectron2") is None:
        return False
    probe = (
        "import PIL.Image as I\n"
        "I.LINEAR = getattr(I, 'LINEAR', I.BILINEAR)\n"
        "import detectron2.modeling, detectron2.config, detectron2.structures\n"
    )
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def fetch_sdist(cache: Path) -> Path:
    """Download the sdist once into `cache`, verified against the pinned sha256."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{DIST}-{VERSION}.tar.gz"
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == SHA256:
        return target
    req = urllib.request.Request(f"{INDEX}/{DIST}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        files = json.load(resp)["files"]
    name = f"{DIST}-{VERSION}.tar.gz"
    entry = next((f for f in files if f["filename"] == name), None)
    if entry is None:
        raise SystemExit(f"install_detectron2: {name} not found on {INDEX}")
    with urllib.request.urlopen(entry["url"], timeout=300) as resp:
        data = resp.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"install_detectron2: sha256 mismatch for {name}: {digest}")
    from laitkit.atomic import atomic_write_bytes  # installed by the step before (`pip install -e .`)

    atomic_write_bytes(target, data)  # a killed download never leaves a cached file that looks whole
    return target


def patch_tree(pkg: Path) -> None:
    """Fix the two incompatibilities with today's Pillow and setuptools, add the `_C` stand-in."""
    transform = pkg / "data" / "transforms" / "transform.py"
    transform.write_text(transform.read_text().replace("Image.LINEAR", "Image.BILINEAR"))
    zoo = pkg / "model_zoo" / "model_zoo.py"
    text = zoo.read_text()
    text = text.replace("import pkg_resources\n", "import importlib.resources\n")
    text = text.replace(
        'pkg_resources.resource_filename(\n        "detectron2.model_zoo", os.path.join("configs", config_path)\n    )',
        'str(importlib.resources.files("detectron2.model_zoo") / "configs" / config_path)',
    )
    if "pkg_resources" in text:
        raise SystemExit("install_detectron2: could not patch model_zoo.py (unexpected source)")
    zoo.write_text(text)
    (pkg / "_C.py").write_text(STUB)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(".cache"))
    ap.add_argument("--force", action="store_true", help="reinstall even if detectron2 imports")
    args = ap.parse_args()
    if not args.force and already_installed():
        print("install_detectron2: detectron2 already importable, nothing to do")
        return 0
    sdist = fetch_sdist(args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(sdist) as tf:
            tf.extractall(tmp, filter="data")
        src = Path(tmp) / f"{DIST}-{VERSION}" / "detectron2"
        build = Path(tmp) / "build"
        shutil.copytree(src, build / "detectron2")
        patch_tree(build / "detectron2")
        (build / "pyproject.toml").write_text(PYPROJECT)
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--force-reinstall", "-q"]
        subprocess.run([*cmd, str(build)], check=True)
    if not already_installed():
        raise SystemExit("install_detectron2: installed, but detectron2.modeling still fails to import")
    print("install_detectron2: detectron2 0.6 (pure Python) installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
