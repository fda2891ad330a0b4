"""The walking skeleton end to end: synthetic web on 127.0.0.1 → Ray → shards → pretrain → report.

One small job (a few pages) through every real component, then the checks a user would make:
plain webdataset and polars read the shards, every truth pair got a verdict, a rerun resumes
without redoing or duplicating anything, and the report exists.
"""

from __future__ import annotations

import json

import polars as pl
import pyarrow.dataset
import pytest
import webdataset as wds

from laitkit.datasets.manifest import load_manifest, validate
from laitkit.datasets.shards import list_shard_files, shard_paths, webdataset_urls
from laitkit.jobs.config import load_config
from laitkit.pipeline.report import build_report, write_report
from laitkit.pipeline.runner import run_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "run"
    cfg = load_config(
        None,
        {
            "out": str(out),
            "synth.pages": 16,
            "synth.timeout_delay": 4.0,
            "input.pages_per_shard": 8,
            "pretrain.steps": 4,
            "pretrain.batch_size": 4,
        },
    )
    summary = run_job(cfg)
    return cfg, out, summary


def test_kept_shards_read_by_plain_webdataset_and_polars(job) -> None:
    _, out, summary = job
    tars = list_shard_files(out / "shards", "tar")
    assert len(tars) == summary["input_shards"] >= 2
    assert {p.parent.name for p in tars} == {"tar"}  # a new run writes the split layout
    assert load_manifest(out / "shards")["layout"] == "split"
    samples = list(wds.WebDataset(webdataset_urls(out / "shards"), shardshuffle=False))  # brace notation
    assert samples, "no sample was kept"
    for s in samples:
        meta = json.loads(s["json"])
        assert meta["status"] == "keep"
        assert meta["regions"]["num_boxes"] >= 1
        assert s["txt"].decode() == meta["caption"]
        assert meta["text"]["tokens"]
    df = pl.scan_parquet(str(out / "shards" / "parquet" / "*.parquet")).collect()
    assert df.height == len(samples)
    assert pyarrow.dataset.dataset(out / "shards" / "parquet").count_rows() == len(samples)  # the folder alone
    assert set(df["key"].to_list()) == {s["__key__"] for s in samples}
    assert validate(out / "shards") == []
    assert validate(out / "rejected") == []


def test_every_truth_pair_has_a_verdict(job) -> None:
    _, out, _ = job
    report = build_report(out)
    truth = report["truth"]
    assert truth["pairs"] > 0
    missing = sum(d["got"].get("missing", 0) for d in truth["per_expected"].values())
    assert missing == 0, truth
    assert report["rejected"] > 0 and report["kept"] > 0


def test_pretraining_ran_and_report_written(job) -> None:
    _, out, summary = job
    assert summary["pretrain"]["steps"] == 4
    assert (out / "pretrain" / "model.pt").exists()
    md = write_report(out)
    assert "Rejections by reason" in md.read_text()


def test_rerun_resumes_without_redoing_or_duplicating(job) -> None:
    cfg, out, _ = job
    before = {p.name: p.stat().st_mtime_ns for p in list_shard_files(out / "shards", "tar")}
    summary = run_job(cfg)
    assert summary["shards_written_now"] == 0
    after = {p.name: p.stat().st_mtime_ns for p in list_shard_files(out / "shards", "tar")}
    assert before == after and before
    keys = pl.scan_parquet(str(out / "shards" / "parquet" / "*.parquet")).select("key").collect()["key"]
    assert keys.n_unique() == len(keys)


def test_crash_mid_write_resumes_only_the_missing_shard(job) -> None:
    """A job killed while writing shard 1 left its tar but not its stats marker: the rerun
    cleans the leftover, redoes exactly that shard, and the corpus has no duplicate."""
    cfg, out, _ = job
    kept_keys = pl.scan_parquet(str(out / "shards" / "parquet" / "*.parquet")).select("key")
    before = sorted(kept_keys.collect()["key"].to_list())
    (out / "shards" / "00001_stats.json").unlink()
    shard_paths(out / "shards", 1, "parquet").unlink()
    summary = run_job(cfg)
    assert summary["shards_written_now"] == 1
    after = sorted(kept_keys.collect()["key"].to_list())
    assert after == before
    assert validate(out / "shards") == []


def test_url_list_input_runs_through_img2dataset(job, tmp_path) -> None:
    """An img2dataset-style URL list (the synthetic web's urls.parquet) as the job's input, with
    its first rows listed twice: exact duplicate rows are verdicts (dup_url), not a crash."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from laitkit.datasets.synth import SynthServer

    _, out, _ = job
    web = out / "synth-web"
    urls = pq.read_table(web / "urls.parquet")
    listed = tmp_path / "urls-with-dups.parquet"
    pq.write_table(pa.concat_tables([urls, urls.slice(0, 12)]), listed)
    with SynthServer(web, port=None, timeout_delay=2.0):
        cfg = load_config(
            None,
            {
                "out": str(tmp_path / "urls-run"),
                "input": {"kind": "urls", "path": str(listed), "pages_per_shard": 50},
                "pretrain.enabled": False,
            },
        )
        run_job(cfg)
    report = build_report(tmp_path / "urls-run")
    assert report["kept"] > 0
    assert "download_error" in report["rejected_by_reason"]
    run = tmp_path / "urls-run"
    cols = ["key", "url", "status"]
    samples = pl.concat([pl.scan_parquet(str(run / d / "parquet" / "*.parquet")).select(cols).collect()
                         for d in ("shards", "rejected")])  # fmt: skip
    assert samples.height == urls.num_rows + 12 and samples["key"].n_unique() == samples.height
    kept = pl.scan_parquet(str(run / "shards" / "parquet" / "*.parquet")).collect()
    assert set(kept["caption_source"].to_list()) == {"list"}
    first = urls.slice(0, 12).to_pylist()
    pairs = samples.filter(pl.col("url").is_in([r["url"] for r in first]))
    dup = pairs.filter(pl.col("status") == "dup_url")
    assert dup.height >= 1, pairs.select("url", "status")
