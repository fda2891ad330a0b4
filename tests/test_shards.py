"""Shards layer: Arrow round trip, tar/Parquet writers and readers, manifest, resume, validate, CLI.

Features are compared as raw float16 bits (`view(np.uint16)`), and the fixtures draw random bit
patterns (NaN payloads, infinities, subnormals, -0) so any float conversion on the way would show.
"""

from __future__ import annotations

import io
import json
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laitkit.datasets.arrow_codec import samples_to_table, table_to_samples
from laitkit.datasets.manifest import load_manifest, validate, write_manifest
from laitkit.datasets.schema import (
    CaptionSource,
    Reason,
    Regions,
    Sample,
    SceneNode,
    TextAnnotation,
    TextCandidate,
    arrow_schema,
)
from laitkit.datasets.shards import (
    ShardWriter,
    clean_partial,
    completed_shards,
    iter_parquet,
    iter_tar,
    read_stats,
    shard_paths,
    write_shard,
)
from laitkit.jobs.cli import main as cli_main

D = 16
REJECTS = (Reason.NSFW, Reason.DUP_PHASH, Reason.NO_CAPTION)


def make_sample(i: int, n_boxes: int | None, *, d: int = D, image: bool = True, seed: int = 0) -> Sample:
    """A fully populated sample; `n_boxes=None` means regions not computed yet."""
    rng = np.random.default_rng([seed, i])
    s = Sample(
        key=f"img-{seed}-{i:04d}",
        url=f"https://example.com/{seed}/{i}.jpg",
        page_url=f"https://example.com/{seed}/page{i}.html",
        caption=f"a dog number {i} on a café table ✓",
        caption_source=str(CaptionSource.ALT if i % 2 else CaptionSource.FIGCAPTION),
        candidates=[TextCandidate(CaptionSource.ALT, f"alt {i}"), TextCandidate(CaptionSource.TITLE, "")],
        lang="en",
        lang_score=float(rng.random()),
        image=rng.bytes(100 + i) if image else b"",
        width=64,
        height=48,
        orig_width=640,
        orig_height=480,
        sha256=f"{i:064x}",
        phash=f"{i:016x}",
        relevance_score=float(rng.random()) if i % 3 else float("nan"),
        nsfw_score=float(rng.random()),
    )
    s.accept("caption", "alt text")
    if i % 4 == 3:
        s.reject("filter", REJECTS[i % len(REJECTS)], f"detail {i}")
    if n_boxes is not None:
        s.regions = Regions(
            detector="det2-test",
            image_h=480,
            image_w=640,
            boxes=rng.random((n_boxes, 4), dtype=np.float32) * 400,
            # random bit patterns: NaN payloads, inf, subnormals, -0 all appear
            features=rng.integers(0, 2**16, size=(n_boxes, d), dtype=np.uint16).view(np.float16),
            obj_ids=rng.integers(0, 1600, n_boxes),
            obj_conf=rng.random(n_boxes, dtype=np.float32),
            attr_ids=rng.integers(-1, 400, n_boxes),
            attr_conf=rng.random(n_boxes, dtype=np.float32),
            obj_names=[f"obj{j}" for j in range(n_boxes)],
            attr_names=[] if i % 2 else [f"attr{j}" for j in range(n_boxes)],
        )
    if i % 5 != 4:
        s.text = TextAnnotation(
            model="en_core_web_sm",
            tokens=["a", "dog"],
            upos=["DET", "NOUN"],
            tags=["DT", "NN"],
            lemmas=["a", "dog"],
            graph=[SceneNode("object", "dog", (1, 2)), SceneNode("attribute", "brown", (0, 1), subject=0)],
        )
    return s


def mixed_samples(n: int = 12, seed: int = 0) -> list[Sample]:
    """Regions with boxes, regions with zero boxes, no regions, and no image, all in one list."""
    out = []
    for i in range(n):
        n_boxes = None if i % 4 == 1 else (0 if i % 4 == 2 else 1 + i % 7)
        out.append(make_sample(i, n_boxes, image=i != 5, seed=seed))
    return out


def assert_same(a: Sample, b: Sample) -> None:
    assert a.meta() == b.meta()  # everything but bytes/arrays: text, verdicts, candidates, scores (NaN -> None)
    assert a.image == b.image
    assert (a.regions is None) == (b.regions is None)
    if a.regions is not None:
        for name, x in a.regions.arrays().items():
            y = b.regions.arrays()[name]
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert x.tobytes() == y.tobytes(), name
        assert np.array_equal(a.regions.features.view(np.uint16), b.regions.features.view(np.uint16))


# --- Arrow conversion ---------------------------------------------------------------------------


def test_table_follows_schema_and_round_trips_bit_exact() -> None:
    samples = mixed_samples()
    table = samples_to_table(samples)
    assert table.schema.equals(arrow_schema(D), check_metadata=True)
    no_regions = sum(s.regions is None for s in samples)
    assert no_regions > 0
    for col in ("regions_features", "regions_boxes", "regions_detector", "regions_obj_names", "regions_num_boxes"):
        assert table.column(col).null_count == no_regions, col
    assert table.column("key").to_pylist() == [s.key for s in samples]
    assert all(x is not None for x in table.column("relevance_score").to_pylist())  # NaN stays NaN, not null
    back = table_to_samples(table)
    assert len(back) == len(samples)
    for a, b in zip(samples, back, strict=True):
        assert_same(a, b)
    # sliced and multi-chunk tables (offsets not starting at 0) decode the same rows
    chunked = pa.concat_tables([table.slice(0, 5), table.slice(5)])
    for a, b in zip(samples, table_to_samples(chunked), strict=True):
        assert_same(a, b)
    for a, b in zip(samples[3:9], table_to_samples(table.slice(3, 6)), strict=True):
        assert_same(a, b)


def test_feature_dim_inferred_given_and_checked() -> None:
    assert samples_to_table([make_sample(0, None)]).schema.field("regions_features").type.value_type.list_size == 1
    t = samples_to_table([make_sample(0, None), make_sample(1, 3, d=8)])
    assert t.schema.equals(arrow_schema(8))
    assert samples_to_table([make_sample(0, None)], feature_dim=2048).schema.equals(arrow_schema(2048))
    with pytest.raises(ValueError, match="4-d but the table is 8-d"):
        samples_to_table([make_sample(0, 3, d=8), make_sample(1, 2, d=4)])


# --- writing and reading ------------------------------------------------------------------------


def test_write_shard_layout_members_and_stats(tmp_path: Path) -> None:
    samples = mixed_samples()
    info = write_shard(tmp_path, 7, samples, config_hash="cfg1", extra_stats={"upstream_rows": 99})
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["00007_stats.json", "parquet/00007.parquet", "tar/00007.tar"]  # the default: split
    assert info.count == len(samples) and completed_shards(tmp_path) == {7}
    with tarfile.open(info.tar) as tar:
        names = tar.getnames()
    by_key = {s.key: s for s in samples}
    expected = []
    for s in samples:
        expected += [f"{s.key}.jpg"] if s.image else []
        expected += [f"{s.key}.txt", f"{s.key}.json"]
        expected += [f"{s.key}.npz"] if s.regions is not None else []
    assert names == expected
    assert f"{samples[5].key}.jpg" not in names and f"{samples[1].key}.npz" not in names
    st = read_stats(tmp_path, 7)
    assert st == info.stats
    assert st["count"] == len(samples) and st["config_hash"] == "cfg1" and st["extra"] == {"upstream_rows": 99}
    assert st["status_counts"] == {
        status: sum(s.status == status for s in samples) for status in {s.status for s in by_key.values()}
    }
    assert sum(st["status_counts"].values()) == len(samples) and len(st["status_counts"]) > 1
    assert st["caption_source_counts"] == {"alt": 6, "figcaption": 6}
    with_regions = [s.regions for s in samples if s.regions is not None]
    assert st["num_with_regions"] == len(with_regions) == 9
    assert st["mean_boxes"] == pytest.approx(np.mean([r.num_boxes for r in with_regions]))
    assert st["feature_dim"] == D and st["tar_bytes"] == info.tar.stat().st_size
    assert st["bytes"] == info.tar.stat().st_size + info.parquet.stat().st_size
    assert pq.ParquetFile(info.parquet).metadata.row_group(0).column(0).compression == "ZSTD"


def test_tar_and_parquet_readers_return_the_same_samples(tmp_path: Path) -> None:
    shards = {0: mixed_samples(12, seed=0), 1: mixed_samples(9, seed=1)}
    for shard, samples in shards.items():
        write_shard(tmp_path, shard, samples, config_hash="c")
    expected = shards[0] + shards[1]
    from_tar, from_pq = list(iter_tar(tmp_path)), list(iter_parquet(tmp_path, batch_size=5))
    assert len(from_tar) == len(from_pq) == len(expected)
    for a, b, c in zip(expected, from_tar, from_pq, strict=True):
        assert_same(a, b)
        assert_same(a, c)
    assert [s.key for s in iter_tar(_path(tmp_path, 1, "tar"))] == [s.key for s in shards[1]]


def test_plain_webdataset_reads_the_tars(tmp_path: Path) -> None:
    samples = mixed_samples()
    info = write_shard(tmp_path, 0, samples, config_hash="c")
    import webdataset as wds  # imports torch: only here

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = list(wds.WebDataset([str(info.tar)], shardshuffle=False))
    assert [g["__key__"] for g in got] == [s.key for s in samples]
    for g, s in zip(got, samples, strict=True):
        meta = json.loads(g["json"])
        assert meta["key"] == s.key and meta["status"] == s.status and meta["verdicts"] == s.meta()["verdicts"]
        assert g["txt"].decode() == s.caption
        assert g.get("jpg", b"") == s.image
        if s.regions is None:
            assert "npz" not in g
        else:
            feats = np.load(io.BytesIO(g["npz"]))["features"]
            assert feats.dtype == np.float16
            assert np.array_equal(feats.view(np.uint16), s.regions.features.view(np.uint16))


def test_polars_scans_the_parquet_directory_with_float16(tmp_path: Path) -> None:
    import polars as pl

    shards = {0: mixed_samples(12, seed=0), 1: mixed_samples(6, seed=1)}
    for shard, samples in shards.items():
        write_shard(tmp_path, shard, samples, config_hash="c")
    df = pl.scan_parquet(str(tmp_path / "parquet" / "*.parquet")).collect()
    expected = shards[0] + shards[1]
    assert df.height == len(expected)
    assert df["key"].to_list() == [s.key for s in expected]
    assert df.schema["regions_features"] == pl.List(pl.Array(pl.Float16, D))
    assert df["regions_features"].null_count() == sum(s.regions is None for s in expected)
    for row, s in zip(df["regions_features"], expected, strict=True):
        if s.regions is None:
            assert row is None
            continue
        got = row.to_numpy().reshape(-1, D) if len(row) else np.zeros((0, D), np.float16)
        assert got.dtype == np.float16
        assert np.array_equal(got.view(np.uint16), s.regions.features.view(np.uint16))
    assert df.filter(pl.col("status") == "keep").height == sum(s.kept for s in expected)


def test_polars_refuses_mixed_feature_width_unless_feature_dim_is_given(tmp_path: Path) -> None:
    import polars as pl

    write_shard(tmp_path / "a", 0, mixed_samples(4), config_hash="c")
    write_shard(tmp_path / "a", 1, [make_sample(0, None, seed=3)], config_hash="c")  # no regions: D=1
    with pytest.raises(pl.exceptions.SchemaError):
        pl.scan_parquet(str(tmp_path / "a" / "parquet" / "*.parquet")).collect()
    write_manifest(tmp_path / "a", "c")
    assert any("disagree on the Parquet feature width" in p for p in validate(tmp_path / "a"))

    write_shard(tmp_path / "b", 0, mixed_samples(4), config_hash="c", feature_dim=D)
    write_shard(tmp_path / "b", 1, [make_sample(0, None, seed=3)], config_hash="c", feature_dim=D)
    assert pl.scan_parquet(str(tmp_path / "b" / "parquet" / "*.parquet")).collect().height == 5


def test_shard_writer_rolls_at_max_count(tmp_path: Path) -> None:
    samples = mixed_samples(7)
    with ShardWriter(tmp_path, max_count=3, config_hash="c", feature_dim=D) as w:
        for s in samples:
            w.write(s)
    assert [i.count for i in w.shards] == [3, 3, 1]
    assert completed_shards(tmp_path) == {0, 1, 2}
    assert [s.key for s in iter_parquet(tmp_path)] == [s.key for s in samples]


def test_rewriting_a_shard_replaces_it(tmp_path: Path) -> None:
    write_shard(tmp_path, 0, mixed_samples(5, seed=0), config_hash="c")
    write_shard(tmp_path, 0, mixed_samples(3, seed=1), config_hash="c")
    assert [s.key for s in iter_tar(tmp_path)] == [s.key for s in mixed_samples(3, seed=1)]
    assert read_stats(tmp_path, 0)["count"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_keys_and_duplicates_leave_nothing_behind(tmp_path: Path) -> None:
    bad = make_sample(0, None)
    bad.key = "has.dot"
    with pytest.raises(ValueError, match="no '.' or '/'"):
        write_shard(tmp_path, 0, [bad], config_hash="c")
    s = make_sample(1, 2)
    with pytest.raises(ValueError, match="duplicate key"):
        write_shard(tmp_path, 1, [s, s], config_hash="c")
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == []  # (the empty tar/ and parquet/ may stay)


# --- manifest, resume, validate -----------------------------------------------------------------


def test_manifest_totals_and_config_hash(tmp_path: Path) -> None:
    a, b = mixed_samples(12, seed=0), mixed_samples(5, seed=1)
    write_shard(tmp_path, 0, a, config_hash="h1")
    write_shard(tmp_path, 3, b, config_hash="h1")
    man = write_manifest(tmp_path, "h1", {"shards": {"max_count": 12}})
    assert man == load_manifest(tmp_path)
    assert [s["shard"] for s in man["shards"]] == [0, 3]
    assert man["total_count"] == 17 and man["feature_dim"] == D and man["config"] == {"shards": {"max_count": 12}}
    statuses = [s.status for s in a + b]
    assert man["status_counts"] == {k: statuses.count(k) for k in set(statuses)}
    assert man["shards"][1] == {
        "shard": 3,
        "tar": "tar/00003.tar",
        "parquet": "parquet/00003.parquet",
        "count": 5,
        "bytes": read_stats(tmp_path, 3)["bytes"],
    }
    assert validate(tmp_path) == []
    write_shard(tmp_path, 4, mixed_samples(2, seed=2), config_hash="h2")
    with pytest.raises(ValueError, match="config 'h2'"):
        write_manifest(tmp_path, "h1")


def _input_shard(i: int) -> list[Sample]:
    """Input shard i of a fake job: deterministic, so a rerun produces the same keys."""
    return mixed_samples(6, seed=100 + i)


def test_resume_after_crash_has_no_duplicate_keys(tmp_path: Path) -> None:
    n_shards = 5
    for i in range(3):  # first run: shards 0..2 complete, then "crash" mid-shard 3 and mid-shard 4
        write_shard(tmp_path, i, _input_shard(i), config_hash="h")
    (tmp_path / "tar" / ".00003.tar.tmp-123-abcd").write_bytes(b"half a tar")
    (tmp_path / "tar" / "00004.tar").write_bytes(b"renamed tar, parquet and stats never came")
    assert completed_shards(tmp_path) == {0, 1, 2}
    assert validate(tmp_path)  # leftovers are reported before cleaning

    removed = clean_partial(tmp_path)  # second run
    assert sorted(p.name for p in removed) == [".00003.tar.tmp-123-abcd", "00004.tar"]
    todo = [i for i in range(n_shards) if i not in completed_shards(tmp_path)]
    assert todo == [3, 4]
    for i in todo:
        write_shard(tmp_path, i, _input_shard(i), config_hash="h")
    man = write_manifest(tmp_path, "h")

    keys = [s.key for s in iter_parquet(tmp_path)]
    expected = [s.key for i in range(n_shards) for s in _input_shard(i)]
    assert len(keys) == len(set(keys)) == man["total_count"] == len(expected)
    assert keys == expected
    assert [s["shard"] for s in man["shards"]] == list(range(n_shards))
    assert validate(tmp_path) == []


def _path(out: Path, shard: int, kind: str) -> Path:
    """Where shard `shard`'s file is, whichever layout wrote it."""
    return shard_paths(out, shard, kind, "auto")


def _two_shard_corpus(out: Path, layout: str | None = None) -> None:
    write_shard(out, 0, mixed_samples(8, seed=0), config_hash="h", layout=layout)
    write_shard(out, 1, mixed_samples(8, seed=1), config_hash="h", layout=layout)
    write_manifest(out, "h")
    assert validate(out) == []


Members = list[tuple[tarfile.TarInfo, bytes]]


def _rewrite_tar(path: Path, edit: Callable[[Members], Members]) -> None:
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    members = edit(members)
    with tarfile.open(path, "w") as tar:
        for m, data in members:
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))


def _drop_last_sample(members: Members) -> Members:
    last = members[-1][0].name.split(".")[0]
    return [(m, d) for m, d in members if not m.name.startswith(last + ".")]


def _corrupt_first_json(members: Members) -> Members:
    out, done = [], False
    for m, d in members:
        if m.name.endswith(".json") and not done:
            d, done = d[: len(d) // 2], True
        out.append((m, d))
    return out


def _corrupt_first_npz(members: Members) -> Members:
    out, done = [], False
    for m, d in members:
        if m.name.endswith(".npz") and not done:
            d, done = b"PK" + b"\0" * (len(d) - 2), True
        out.append((m, d))
    return out


def _tamper_manifest_count(out: Path) -> None:
    man = load_manifest(out)
    man["shards"][1]["count"] += 1
    man["total_count"] += 1
    (out / "manifest.json").write_text(json.dumps(man))


def _replace_parquet_with_other_keys(out: Path) -> None:
    write_shard(out / "other", 0, mixed_samples(8, seed=9), config_hash="h")
    _path(out, 1, "parquet").write_bytes(_path(out / "other", 0, "parquet").read_bytes())


def _shard_1_repeats_shard_0(out: Path) -> None:
    write_shard(out, 1, mixed_samples(8, seed=0), config_hash="h")
    write_manifest(out, "h")


def _stats_schema_version(out: Path) -> None:
    st = read_stats(out, 0)
    st["schema_version"] = "0.9"
    (out / "00000_stats.json").write_text(json.dumps(st))


TAMPERS = {
    "dropped_sample": (lambda out: _rewrite_tar(_path(out, 1, "tar"), _drop_last_sample), "tar has 7 samples, stats"),
    "corrupt_json": (lambda out: _rewrite_tar(_path(out, 0, "tar"), _corrupt_first_json), "does not decode"),
    "corrupt_npz": (lambda out: _rewrite_tar(_path(out, 0, "tar"), _corrupt_first_npz), "does not decode"),
    "flipped_byte": (
        lambda out: _path(out, 0, "parquet").write_bytes(
            (b := bytearray(_path(out, 0, "parquet").read_bytes()))[:100] + bytes([b[100] ^ 1]) + b[101:]
        ),
        "sha256 differs",
    ),
    "missing_parquet": (lambda out: _path(out, 1, "parquet").unlink(), "00001.parquet missing"),
    "other_keys": (_replace_parquet_with_other_keys, "tar and parquet keys differ"),
    "manifest_count": (_tamper_manifest_count, "shard 1 count 9 but stats say 8"),
    "manifest_stale": (lambda out: write_shard(out, 2, mixed_samples(3, seed=2), config_hash="h"), "does not list"),
    "schema_version": (_stats_schema_version, "schema version '0.9'"),
    "duplicate_keys": (_shard_1_repeats_shard_0, "also in shard 0"),
    "temp_left": (lambda out: (out / ".00002.tar.tmp-1-ab").write_bytes(b"x"), "temp file left"),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
@pytest.mark.parametrize("layout", ["split", "flat"])  # flat: folders written before the split layout
def test_validate_catches_tampering(tmp_path: Path, name: str, layout: str) -> None:
    _two_shard_corpus(tmp_path, layout)
    tamper, expected = TAMPERS[name]
    tamper(tmp_path)
    problems = validate(tmp_path)
    assert any(expected in p for p in problems), problems


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_inspect_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _two_shard_corpus(tmp_path)
    assert cli_main(["shards", "inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 shards, 16 samples" in out and "keep" in out and "sample img-0-0000" in out
    assert cli_main(["shards", "validate", str(tmp_path)]) == 0
    assert "ok (2 shards)" in capsys.readouterr().out

    _path(tmp_path, 1, "parquet").unlink()
    assert cli_main(["shards", "validate", str(tmp_path)]) == 1
    assert "00001.parquet missing" in capsys.readouterr().out

    assert cli_main(["shards", "validate", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_an_empty_shard_is_written_and_reads_back_empty(tmp_path: Path) -> None:
    """A shard whose samples were all rejected upstream still gets its files and stats: the
    optional region columns must not infer a null-typed mask from an empty list."""
    from laitkit.datasets import shards as shardio

    info = shardio.write_shard(tmp_path, 3, [], config_hash="h", feature_dim=16)
    assert info.count == 0 and shardio.completed_shards(tmp_path) == {3}
    assert pq.read_table(info.parquet).num_rows == 0
    assert list(shardio.iter_tar(info.tar)) == []
