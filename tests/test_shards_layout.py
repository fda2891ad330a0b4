"""The split shard layout (tars in `tar/`, Parquet in `parquet/`) next to the flat one, read by each
ecosystem's own folder reader; old flat shards keep reading; the manifest says where files are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as pads

from laitkit.datasets.manifest import load_manifest, validate, write_manifest
from laitkit.datasets.schema import Reason, Regions, Sample
from laitkit.datasets.shards import (
    clean_partial,
    completed_shards,
    iter_parquet,
    iter_tar,
    list_shard_files,
    shard_paths,
    webdataset_urls,
    write_shard,
)


def _samples(shard: int, n: int = 4) -> list[Sample]:
    rng = np.random.default_rng(shard)
    out = []
    for i in range(n):
        s = Sample(key=f"k{shard}-{i}", url=f"http://x/{shard}/{i}.jpg", caption=f"c {i}", image=b"\xff\xd8x")
        m = int(rng.integers(1, 4))
        s.regions = Regions(detector="t", image_h=10, image_w=10, boxes=np.ones((m, 4)),
                            features=np.zeros((m, 8), np.float16), obj_ids=np.zeros(m), obj_conf=np.ones(m),
                            attr_ids=np.zeros(m), attr_conf=np.ones(m))
        out.append(s)
    return out


def test_split_layout_is_read_by_folder_readers(tmp_path: Path) -> None:
    import webdataset as wds

    for shard in range(3):
        write_shard(tmp_path, shard, _samples(shard), config_hash="h", feature_dim=8, layout="split")
    assert sorted(p.name for p in (tmp_path / "tar").iterdir()) == ["00000.tar", "00001.tar", "00002.tar"]
    assert not list(tmp_path.glob("*.tar")) and not list(tmp_path.glob("*.parquet"))
    keys = [s.key for shard in range(3) for s in _samples(shard)]
    # pyarrow's folder reader sees only Parquet files
    assert pads.dataset(str(tmp_path / "parquet"), format="parquet").to_table(columns=["key"])["key"].to_pylist() \
        == keys
    # webdataset wants brace notation: the helper gives it
    url = webdataset_urls(tmp_path)
    assert url == str(tmp_path / "tar" / "{00000..00002}.tar")
    assert [s["__key__"] for s in wds.WebDataset(url, shardshuffle=False)] == keys
    assert [s.key for s in iter_tar(tmp_path)] == keys == [s.key for s in iter_parquet(tmp_path)]
    man = write_manifest(tmp_path, "h")
    assert man["layout"] == "split" and man["tar_dirs"] == ["tar"] and man["parquet_dirs"] == ["parquet"]
    assert [s["tar"] for s in load_manifest(tmp_path)["shards"]] == ["tar/00000.tar", "tar/00001.tar", "tar/00002.tar"]
    assert validate(tmp_path) == []


def test_old_flat_shards_still_read_next_to_split_ones(tmp_path: Path) -> None:
    write_shard(tmp_path, 0, _samples(0), config_hash="h", feature_dim=8, layout="flat")  # an old run
    write_shard(tmp_path, 1, _samples(1), config_hash="h", feature_dim=8, layout="split")  # resumed after the switch
    assert completed_shards(tmp_path) == {0, 1}
    assert list_shard_files(tmp_path, "tar") == [tmp_path / "00000.tar", tmp_path / "tar" / "00001.tar"]
    assert [s.key for s in iter_parquet(tmp_path)] == [s.key for s in _samples(0) + _samples(1)]
    assert write_manifest(tmp_path, "h")["layout"] == "mixed"
    assert validate(tmp_path) == []
    assert webdataset_urls(tmp_path) == [str(tmp_path / "00000.tar"), str(tmp_path / "tar" / "00001.tar")]
    # Rewriting shard 0 in the split layout leaves no second copy behind.
    write_shard(tmp_path, 0, _samples(0), config_hash="h", feature_dim=8, layout="split")
    assert not (tmp_path / "00000.tar").exists() and not (tmp_path / "00000.parquet").exists()
    assert shard_paths(tmp_path, 0, "tar", "auto") == tmp_path / "tar" / "00000.tar"
    assert [s.key for s in iter_tar(tmp_path)] == [s.key for s in _samples(0) + _samples(1)]


def test_crash_leftovers_in_subfolders_are_found_and_cleaned(tmp_path: Path) -> None:
    write_shard(tmp_path, 0, _samples(0), config_hash="h", feature_dim=8, layout="split")
    write_manifest(tmp_path, "h")
    orphan = tmp_path / "tar" / "00001.tar"
    orphan.write_bytes(b"partial")
    temp = tmp_path / "parquet" / ".00001.parquet.tmp-1-abcd"
    temp.write_bytes(b"partial")
    problems = validate(tmp_path)
    assert any("00001_stats.json" in p for p in problems) and any("temp file" in p for p in problems)
    assert sorted(clean_partial(tmp_path)) == sorted([orphan, temp])
    assert validate(tmp_path) == [] and completed_shards(tmp_path) == {0}


def test_optional_region_columns_round_trip_and_legacy_tables_still_read() -> None:
    """box_conf and the top-k class distribution survive Parquet (nulls, empty images, sliced batches);
    a table in the schema before those columns existed still reads, with them as None."""
    from laitkit.datasets.arrow_codec import samples_to_table, table_to_samples
    from laitkit.datasets.schema import arrow_schema

    rng = np.random.default_rng(0)
    samples = []
    for i in range(40):
        s = Sample(key=f"k{i}", url="u")
        n = int(rng.integers(0, 6))
        if i % 7 != 3:
            s.regions = Regions(
                detector="d", image_h=5, image_w=5, boxes=rng.random((n, 4)), features=rng.random((n, 8)),
                obj_ids=np.zeros(n), obj_conf=np.ones(n), attr_ids=np.zeros(n), attr_conf=np.ones(n),
                box_conf=None if i % 5 == 0 else rng.random(n),
                soft_ids=None if i % 4 == 0 else rng.integers(0, 100, (n, 5)),
                soft_probs=None if i % 4 == 0 else rng.random((n, 5)))
        samples.append(s)
    table = samples_to_table(samples, 8)
    assert table.schema.equals(arrow_schema(8))
    for part, ref in ((table, samples), (table.slice(9, 20), samples[9:29])):
        for a, b in zip(ref, table_to_samples(part), strict=True):
            assert (a.regions is None) == (b.regions is None)
            if a.regions is None:
                continue
            for f in ("box_conf", "soft_ids", "soft_probs"):
                x, y = getattr(a.regions, f), getattr(b.regions, f)
                assert (x is None) == (y is None)
                if x is not None and len(x):
                    assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
                elif x is not None:  # an image with no box: no width to keep, still empty
                    assert y.dtype == x.dtype and len(y) == 0
    legacy = table.select([f.name for f in arrow_schema(8, legacy=True)])
    assert legacy.schema.equals(arrow_schema(8, legacy=True))
    old = table_to_samples(legacy)
    assert all(s.regions is None or s.regions.soft_ids is None for s in old)
    assert [s.key for s in old] == [s.key for s in samples]


HF_READ = r"""
import json, sys
from datasets import load_dataset
root, cache = sys.argv[1], sys.argv[2]
pq = load_dataset("parquet", data_dir=root + "/parquet", cache_dir=cache, split="train")
wds = load_dataset("webdataset", data_dir=root + "/tar", cache_dir=cache, split="train")
print(json.dumps({"parquet": list(pq["key"]), "wds": list(wds["__key__"]), "wds_txt": [str(t) for t in wds["txt"]]}))
"""


def test_hugging_face_load_dataset_reads_each_folder_offline(tmp_path: Path) -> None:
    """`datasets.load_dataset("parquet" | "webdataset", data_dir=...)` on the two folders of a split
    shard directory, with the network off. In a subprocess from a neutral folder: `python -m pytest`
    puts the repository root on sys.path, where `datasets/` is laitkit's, not Hugging Face's."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "shards"
    for shard in range(2):
        write_shard(out, shard, _samples(shard), config_hash="h", feature_dim=8)  # the default layout
    write_manifest(out, "h")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": ""}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", HF_READ, str(out), str(tmp_path / "hf-cache")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    keys = [s.key for shard in range(2) for s in _samples(shard)]
    assert sorted(got["parquet"]) == sorted(keys) and len(got["parquet"]) == len(keys)
    assert sorted(got["wds"]) == sorted(keys) and len(got["wds"]) == len(keys)
    assert sorted(got["wds_txt"]) == sorted(s.caption for shard in range(2) for s in _samples(shard))


def test_readers_of_a_flat_run_folder_written_before_the_split_layout(tmp_path: Path) -> None:
    """A run folder of the old layout (`shards/00000.tar` beside its Parquet): the report, the
    relevance report, the relevance model's pair reader and pretraining's shard finder read it."""
    from laitkit.extractors.vse_data import pairs_from_shards
    from laitkit.pipeline.pretrain.data import find_shards
    from laitkit.pipeline.relevance_report import run_scores
    from laitkit.pipeline.report import truth_agreement

    out = tmp_path / "run"
    kept, rejected = _samples(0), _samples(1)
    for i, s in enumerate(kept):
        s.page_url, s.relevance_score = "http://p/0", 0.5 + i / 10
        s.accept("test")
    for s in rejected:
        s.page_url, s.relevance_score = "http://p/1", -0.25
        s.reject("relevance", Reason.LOW_RELEVANCE)
    write_shard(out / "shards", 0, kept, config_hash="h", feature_dim=8, layout="flat")
    write_shard(out / "rejected", 0, rejected, config_hash="h", feature_dim=8, layout="flat")
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["00000.parquet", "00000.tar", "00000_stats.json"]
    assert sorted(run_scores(out)) == sorted([-0.25] * 4 + [0.5, 0.6, 0.7, 0.8])
    assert [p.key for p in pairs_from_shards(out / "shards")] == [s.key for s in kept]
    assert find_shards(out / "shards") == [out / "shards" / "00000.tar"]
    truth = tmp_path / "truth.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"page_url": s.page_url, "img_url": s.url, "expected": s.status} for s in kept + rejected]
    pq.write_table(pa.Table.from_pylist(rows), truth)
    agreement = truth_agreement(out, truth)
    assert agreement is not None and agreement["pairs"] == 8
    assert all(d["got"].get("missing", 0) == 0 for d in agreement["per_expected"].values()), agreement


def test_shards_layout_config_key_defaults_to_split_and_reaches_the_writer(tmp_path: Path) -> None:
    """`shards.layout` is validated, does not change the config hash (an old flat run resumes
    under a new laitkit), and the write stage puts files where it says."""
    import pytest

    from laitkit.errors import UserError
    from laitkit.jobs.config import load_config
    from laitkit.pipeline.write_stage import write_output_shard

    split, flat = load_config(None), load_config(None, {"shards.layout": "flat"})
    assert split.shards.layout == "split" and flat.shards.layout == "flat"
    assert split.config_hash() == flat.config_hash()
    with pytest.raises(UserError, match="shards.layout: Input should be 'split' or 'flat'"):
        load_config(None, {"shards.layout": "tars"})
    samples = _samples(0)
    samples[0].reject("nsfw", Reason.NSFW)
    for s in samples[1:]:
        s.accept("test")
    for layout in ("flat", "split"):
        out = tmp_path / layout
        assert write_output_shard(out, 3, samples, "h", True, 8, layout)[:2] == (3, 1)
        for sub in ("shards", "rejected"):
            assert shard_paths(out / sub, 3, "tar", "auto") == shard_paths(out / sub, 3, "tar", layout)
            assert shard_paths(out / sub, 3, "parquet", layout).is_file() and validate(out / sub) == [
                "manifest.json missing (run write_manifest)"]


def test_remote_dest_gets_the_same_layout_and_a_manifest(tmp_path: Path, monkeypatch) -> None:
    """`shards.dest: s3://...` on a real S3-compatible server (moto on 127.0.0.1): the write stage's
    upload keeps the local layout, the stats object comes last, and the job's manifest is written
    there too; a flat remote folder of an older run is still recognised."""
    import json

    import s3fs
    from moto.server import ThreadedMotoServer

    from laitkit.jobs.ray_cluster import free_port
    from laitkit.pipeline.write_stage import remote_completed, write_remote_manifest, write_remote_shard

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for k, v in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
                     "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
            monkeypatch.setenv(k, v)
        # moto's backends are global to the process: another test's bucket "corpus" may still exist
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"))
        fs = s3fs.S3FileSystem(key="test", secret="test", endpoint_url=f"http://127.0.0.1:{port}")
        fs.invalidate_cache()
        fs.mkdir("corpus")
        staging = tmp_path / "out" / "work" / "staging"
        for shard, layout in ((0, "split"), (1, "split"), (2, "flat")):
            samples = _samples(shard)
            samples[0].reject("nsfw", Reason.NSFW)
            for s in samples[1:]:
                s.accept("test")
            write_remote_shard(staging, "s3://corpus/out", shard, samples, "h", True, 8, layout)
        files = sorted(p.split("corpus/out/", 1)[1] for p in fs.find("corpus/out"))
        assert "shards/tar/00000.tar" in files and "rejected/parquet/00001.parquet" in files
        assert "shards/00002.tar" in files and "shards/00002_stats.json" in files
        assert set(remote_completed("s3://corpus/out")) == {0, 1, 2} == set(remote_completed("s3://corpus/out",
                                                                                             "rejected"))
        fs.rm("corpus/out/shards/tar/00001.tar")  # a shard whose tar is gone is not complete
        assert set(remote_completed("s3://corpus/out")) == {0, 2}
        fs.invalidate_cache()
        man = write_remote_manifest("s3://corpus/out", "h", {"shards": {"layout": "split"}}, ("shards", "rejected"))
        assert man["num_shards"] == 2 and man["total_count"] == 6 and man["layout"] == "mixed"
        rejected = json.loads(fs.cat_file("corpus/out/rejected/manifest.json"))
        assert rejected["num_shards"] == 3 and rejected["total_count"] == 3
        assert [e["parquet"] for e in rejected["shards"]] == ["parquet/00000.parquet", "parquet/00001.parquet",
                                                              "00002.parquet"]  # fmt: skip
        assert sorted(p.name for p in (tmp_path / "out" / "shards").iterdir()) == [
            "00000_stats.json", "00001_stats.json", "00002_stats.json"]  # only stats stay local, for the report
    finally:
        server.stop()
