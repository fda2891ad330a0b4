"""WebDataset samples of plain tar shards, read by parsing the 512-byte headers directly.

Why not `tarfile` (which webdataset's `tarfile_samples` uses): profiling the pretraining loader
showed Python's `tarfile` header parsing (`frombuf`, `nts`, `nti`, per-member `TarInfo`
objects and its buffered stream reader) was its largest single cost, more than decoding the
arrays. A laitkit shard is an uncompressed ustar/pax archive of small regular files, so a
reader of exactly that format is a few lines: read a header, read or seek past the member.
It reads one member at a time from a buffered file: memory is one member, never the shard.

The grouping is webdataset's: a sample is the run of consecutive members sharing the name
before the first dot of the basename (`base_plus_ext`), extensions lower-cased, `__key__` and
`__url__` set, webdataset's metadata members (`__*__`) skipped, a repeated extension in one
sample is an error. Anything this reader does not handle (a compressed tar, an unknown
header) is handed to webdataset's own reader for that whole file before any of it is yielded,
so the stream never changes mid-file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_SKIP_META = re.compile(r"__[^/]*__($|/)")
_REGULAR = (b"0", b"\0", b"7")
_COMPRESSED = (b"\x1f\x8b", b"BZ", b"\xfd7", b"(\xb5")  # gzip, bzip2, xz, zstd


class _Unsupported(Exception):
    """This file needs the general reader (raised only before its first member is yielded)."""


def _number(field: bytes) -> int:
    """A tar numeric field: octal text, or base-256 when the top bit is set (GNU, large sizes)."""
    if field[:1] and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * (len(field) - 1))) if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    """Records `"%d %s=%s\\n"` of a pax extended header (the length counts the whole record)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _checksum_ok(hdr: bytes) -> bool:
    """The header's checksum, with the checksum field read as spaces (unsigned, or signed as old tars)."""
    try:
        want = _number(hdr[148:156])
    except ValueError:
        return False
    unsigned = sum(hdr) - sum(hdr[148:156]) + 8 * 32
    if unsigned == want:
        return True
    return unsigned - 256 * sum(1 for b in hdr if b >= 128) + 256 * sum(1 for b in hdr[148:156] if b >= 128) == want


def tar_files(path: str, select: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each selected regular member, in archive order."""
    with open(path, "rb", buffering=1 << 16) as f:
        pax: dict[str, str] = {}
        long_name: str | None = None
        first = True
        while True:
            hdr = f.read(BLOCK)
            if not hdr or hdr == _ZERO_BLOCK:
                return  # end of archive: zero blocks, or the end of the file at a block boundary
            if first and (len(hdr) < BLOCK or hdr[:2] in _COMPRESSED):
                raise _Unsupported(path)  # small or compressed: webdataset's reader decides
            if len(hdr) < BLOCK:
                raise ValueError(f"{path}: truncated tar (a header cut at byte {f.tell() - len(hdr)})")
            if not _checksum_ok(hdr):
                if first:
                    raise _Unsupported(path)
                raise ValueError(f"{path}: corrupt tar header at byte {f.tell() - BLOCK}")
            first = False
            size = _number(hdr[124:136])
            kind = hdr[156:157]
            if kind in (b"x", b"X", b"g", b"L"):
                data = f.read((size + BLOCK - 1) // BLOCK * BLOCK)[:size]
                if kind in (b"x", b"X"):
                    pax = _pax(data)
                elif kind == b"L":
                    long_name = _text(data)
                continue
            name = _text(hdr[0:100])
            if hdr[257:262] == b"ustar" and hdr[345:346] != b"\0":
                name = f"{_text(hdr[345:500])}/{name}"
            name = pax.get("path", long_name or name)
            size = int(pax.get("size", size))
            pax, long_name = {}, None
            padded = (size + BLOCK - 1) // BLOCK * BLOCK
            if kind in _REGULAR and select(name):
                data = f.read(size)
                if len(data) < size:
                    raise ValueError(f"{path}: member {name} truncated")
                f.seek(padded - size, 1)
                yield name, data
            else:
                f.seek(padded, 1)


def _split(name: str) -> tuple[str, str] | None:
    """webdataset's base_plus_ext: ('dir/key', 'ext.more') of 'dir/key.ext.more'."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    if dot <= slash:
        return None
    return name[:dot], name[dot + 1 :]


def _wds_files(path: str, select: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    import webdataset as wds

    with open(path, "rb") as f:
        for m in wds.tariterators.tar_file_iterator(f, select_files=select):
            yield m["fname"], m["data"]


def tar_samples(paths: list[str], select: Callable[[str], bool]) -> Iterator[dict[str, Any]]:
    """Samples (`__key__`, `__url__`, one entry per extension) of the tars in order."""
    for path in paths:
        files = tar_files(path, select)
        try:
            head = next(files, None)
        except _Unsupported:
            files = _wds_files(path, select)
            head = next(files, None)
        if head is None:
            continue
        current: dict[str, Any] | None = None
        for name, data in _chain(head, files):
            if "/" not in name and name.startswith("__") and name.endswith("__") or _SKIP_META.match(name):
                continue
            split = _split(name)
            if split is None:
                continue
            prefix, suffix = split[0], split[1].lower()
            if current is None or prefix != current["__key__"]:
                if current is not None:
                    yield current
                current = {"__key__": prefix, "__url__": path}
            if suffix in current:
                raise ValueError(f"{path}: {name}: duplicate file name in one sample")
            current[suffix] = data
        if current is not None:
            yield current


def _chain(head: tuple[str, bytes], rest: Iterator[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
    yield head
    yield from rest
