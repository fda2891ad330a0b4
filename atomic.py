"""The one way laitkit writes a file that others may read: a hidden temp file, fsync, rename.

Why one helper: a reader (a resumed job, a report, another worker) must see either the whole old
file or the whole new one, never half. Every writer used to spell out its own temp-and-rename;
they disagreed on temp names (so crash leftovers were not always recognised) and on fsync. The
temp name is `.{name}.tmp-{pid}-{token}`: two writers of one file (a retried Ray task) never
share a temp file, and `datasets.shards.clean_partial` recognises leftovers by `TMP_MARK`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"


def tmp_path(final: str | os.PathLike[str]) -> Path:
    """A unique hidden temp name next to `final` (same directory, so the rename is atomic)."""
    final = Path(final)
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file (its bytes) or a folder (the rename inside it): the same call serves both."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_file = fsync_path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temp path to write; on success it is fsynced and renamed onto `final`.

    On any exception (KeyboardInterrupt included) the temp file is removed and `final` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(final)
    try:
        yield tmp
        if fsync and tmp.is_file():
            fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(final.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    text = json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False, default=str)
    atomic_write_text(path, text + "\n")


def atomic_write_parquet(path: str | os.PathLike[str], table: Any, **kwargs: Any) -> None:
    """`pyarrow.parquet.write_table` through a temp file (kwargs go to `write_table`)."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)
