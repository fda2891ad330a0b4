# laitkit: every target a user needs. `make demo` and `make test` run `setup` first.
# setup is idempotent: a stamp in .venv records that this exact set of pins was installed.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.laitkit-setup
# The text modules setup.py compiles with Cython (extractors/native.py COMPILED names the same
# ones). Rebuilt in place whenever one of them (or setup.py) is newer than the last build, so a
# stale build never shadows an edited .py (native.py also refuses one at import).
COMPILED_SRC := extractors/scene_graph.py extractors/scene_graph_proposer.py extractors/scene_graph_naming.py \
	extractors/scene_graph_filter.py extractors/text.py
BUILT := $(VENV)/.laitkit-compiled
# DETECTRON2=pypi (default): pure-Python v0.6 tree via scripts/install_detectron2.py, no compiler.
# DETECTRON2=git: the official source build (needs network to GitHub and a compiler; clusters).
DETECTRON2 ?= pypi
DEMO_OUT ?= out/demo
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: setup demo test bench lint clean chromium

setup: $(STAMP) $(BUILT)

$(STAMP): pyproject.toml $(CONSTRAINTS) scripts/install_detectron2.py Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24" "setuptools==80.10.2" wheel
	$(PIP) install -q -c $(CONSTRAINTS) cython
	$(PIP) install -q -c $(CONSTRAINTS) torch==2.14.1 torchvision==0.29.1
	LAITKIT_COMPILE_LATER=1 $(PIP) install -q -c $(CONSTRAINTS) --no-build-isolation -e '.[dev]'
ifeq ($(DETECTRON2),git)
	$(PIP) install -q --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'
else
	$(BIN)/python scripts/install_detectron2.py --cache .cache
endif
	$(BIN)/python -c "import laitkit.jobs.cli, detectron2.modeling, spacy, ray, img2dataset, webdataset"
	@$(MAKE) --no-print-directory chromium
	@touch $(STAMP)

# Compiles the text modules in place (never fails: without a compiler they stay pure Python;
# the line "laitkit build: compiled N of M text modules" says what was built).
$(BUILT): $(STAMP) setup.py extractors/native.py $(COMPILED_SRC)
	$(BIN)/python setup.py -q build_ext --inplace --force > $(VENV)/build_ext.log 2>&1 || { cat $(VENV)/build_ext.log; exit 1; }
	@grep '^laitkit build' $(VENV)/build_ext.log || true
	@touch $(BUILT)

# The HTML report's browser test runs headless Chromium (Debian package `chromium`); installed
# once when missing (as root here and on CI; elsewhere through sudo when it is there).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

demo: setup
	$(BIN)/laitkit demo --out $(DEMO_OUT)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/laitkit bench all

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf out .pytest_cache .ruff_cache build extractors/*.so extractors/_compiled.json $(BUILT)
