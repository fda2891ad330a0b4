"""The split shard layout (tars in `tar/`, Parquet in `parquet/`) next to the flat one, read by each
ecosystem's own folder reader; old flat shards keep reading; the manifest says where files are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as pads

from laitkit.datasets.manifest import load_manifest, validate, write_manifest
from laitkit.datasets.schema import Regions, Sample
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
