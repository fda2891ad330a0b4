"""Pretraining engine internals: the fast tar reader, device prefetch, torch.compile."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
import torch
import webdataset as wds

from laitkit.pipeline.pretrain.tarread import tar_samples


def _tar(path: Path, members: list[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT) -> Path:
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1.5  # a float mtime makes tarfile write a pax header per member
            tar.addfile(info, io.BytesIO(data))
    return path


MEMBERS = [
    ("a.json", b"{}"),
    ("a.npz", b"\x00" * 700),
    ("a.jpg", b"jpeg"),
    ("BZ.json", b"a name that starts like a bzip2 magic"),
    ("sub.dir/b.JSON", b'{"x": 1}'),  # a dot in the folder, an upper-case extension
    ("sub.dir/b.seg.npz", b"z" * 513),
    ("__meta__", b"skipped by webdataset"),
    (f"{'long' * 40}/c.json", "ünïcode".encode()),  # a name past ustar's 100 bytes: a pax path
    ("c2.json", b""),
    (f"{'p' * 60}/{'q' * 50}.json", b"[]"),  # 116 bytes: ustar's prefix field holds the folder
    (".hidden", b"no key"),
]


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_reader_groups_exactly_as_webdataset(tmp_path: Path, fmt: int) -> None:
    members = MEMBERS if fmt != tarfile.USTAR_FORMAT else [m for m in MEMBERS if len(m[0]) < 150]
    paths = [str(_tar(tmp_path / "0.tar", members, fmt)), str(_tar(tmp_path / "1.tar", members[:3], fmt))]
    for select in (lambda n: True, lambda n: n.lower().endswith((".json", ".npz"))):
        want = list(wds.tarfile_samples([{"url": p} for p in paths], select_files=select))
        got = list(tar_samples(paths, select))
        assert got == want
    keys = [s["__key__"] for s in got]
    assert keys[:3] == ["a", "BZ", "sub.dir/b"] and f"{'p' * 60}/{'q' * 50}" in keys
    assert (f"{'long' * 40}/c" in keys) == (fmt != tarfile.USTAR_FORMAT)


def test_tar_reader_hands_a_gzipped_tar_to_webdataset(tmp_path: Path) -> None:
    plain = _tar(tmp_path / "p.tar", MEMBERS[:3])
    packed = tmp_path / "g.tar"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    got = list(tar_samples([str(packed)], lambda n: True))
    assert got == [{**s, "__url__": str(packed)} for s in tar_samples([str(plain)], lambda n: True)]
    assert got[0]["npz"] == b"\x00" * 700


def test_tar_reader_names_a_corrupt_member_header(tmp_path: Path) -> None:
    path = _tar(tmp_path / "x.tar", MEMBERS[:3])
    data = bytearray(path.read_bytes())
    third = data.find(b"a.jpg", 1024)  # the jpg's own header (after pax headers and earlier members)
    data[third] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt tar header"):
        list(tar_samples([str(path)], lambda n: True))


def test_tar_reader_never_reads_unselected_members(tmp_path: Path) -> None:
    """Skipped members are seeked past: a huge jpg costs nothing and is absent from the sample."""
    path = _tar(tmp_path / "big.tar", [("k.json", b"{}"), ("k.jpg", b"\xff" * (4 << 20)), ("k.npz", b"n")])
    (s,) = tar_samples([str(path)], lambda n: not n.endswith(".jpg"))
    assert s == {"__key__": "k", "__url__": str(path), "json": b"{}", "npz": b"n"}


def test_prefetcher_yields_the_same_batches_in_order_one_ahead() -> None:
    from laitkit.pipeline.pretrain.prefetch import DevicePrefetcher

    pulled: list[int] = []

    def source():
        for i in range(5):
            pulled.append(i)
            yield {"x": torch.full((2, 3), float(i)), "position": torch.tensor([0, 0, i + 1])}

    pre = DevicePrefetcher(source(), torch.device("cpu"))
    first = next(pre)
    assert pulled == [0, 1]  # batch 1 is fetched (on CUDA: copied) before the caller runs step 0
    got = [first, *pre]
    assert [int(b["x"][0, 0]) for b in got] == [0, 1, 2, 3, 4]
    assert [int(b["position"][2]) for b in got] == [1, 2, 3, 4, 5]
    assert all(b["x"].device.type == "cpu" and b["position"].device.type == "cpu" for b in got)
    with pytest.raises(StopIteration):
        next(pre)


def test_pin_memory_only_with_cuda(tmp_path: Path) -> None:
    from laitkit.pipeline.pretrain.data import DataSpec, make_loader
    from laitkit.pipeline.pretrain.prefetch import pin_memory_for

    assert pin_memory_for(torch.device("cpu")) is False
    assert pin_memory_for(torch.device("cuda")) is torch.cuda.is_available()
    spec = DataSpec(shards=("x.tar",), tokenizer_dir=str(tmp_path), feature_dim=4)
    loader = make_loader(spec, rank=0, world=1, workers=0, position={}, batches_done=0,
                         pin_memory=pin_memory_for(torch.device("cpu")))
    assert loader.pin_memory is False


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory) -> Path:
    from laitkit.pipeline.pretrain.synthetic import write_synthetic_shards

    root = tmp_path_factory.mktemp("pte") / "shards"
    write_synthetic_shards(root, 1, 40, dim=8)
    return root


def _run(shards: Path, out: Path, vocab: str = "", **kw):
    from laitkit.pipeline.pretrain.train import PretrainConfig, pretrain

    cfg = PretrainConfig(
        steps=2, batch_size=8, hidden=32, layers=1, heads=2, dropout=0.0, lr=1e-3, warmup=1, device="cpu",
        progress=False, eval_pool=4, heldout_permille=100, threads=1, vocab=vocab, vocab_size=200, **kw,
    )
    pretrain(shards, out, cfg, resume=False)
    import json

    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_compile_on_cpu_matches_eager(small_shards: Path, tmp_path: Path, caplog, monkeypatch) -> None:
    """`pretrain.compile: true` with inductor on CPU (a C++ compiler is there): the losses of two
    steps equal the eager run's (same tokenizer, no dropout) up to float reassociation."""
    import torch._inductor.config as inductor_config

    from laitkit.pipeline.pretrain.train import cxx_compiler

    monkeypatch.setattr(inductor_config, "compile_threads", 1)  # no compile worker pool to start on 2 cores

    assert cxx_compiler() is not None, "this machine has g++: the compiled path must be tested, not the fallback"
    eager = _run(small_shards, tmp_path / "eager")
    with caplog.at_level("WARNING"):
        compiled = _run(small_shards, tmp_path / "compiled", vocab=str(tmp_path / "eager" / "tokenizer"), compile=True)
    assert not [r for r in caplog.records if "compile" in r.getMessage()]  # no fallback: it really compiled
    assert len(eager) == len(compiled) == 2
    for a, b in zip(eager, compiled, strict=True):
        for k in ("mlm", "mrm", "itm", "tags", "sgp", "loss"):
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), k


def test_compile_without_a_cxx_compiler_warns_once_and_trains_eager(
    small_shards: Path, tmp_path: Path, caplog, monkeypatch
) -> None:
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with caplog.at_level("WARNING"):
        rows = _run(small_shards, tmp_path / "run", compile=True)
    warned = [r.getMessage() for r in caplog.records if "compile" in r.getMessage()]
    assert len(warned) == 1 and "no C++ compiler" in warned[0]
    assert len(rows) == 2 and all(r["loss"] > 0 for r in rows)
