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


def test_torch_available() -> None:
    assert torch.__version__
