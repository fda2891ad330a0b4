"""Paths that may live on object storage: one fsspec filesystem per URI, local paths as they are.

Why fsspec: the same job reads inputs from a local folder, a shared mount or `s3://bucket/…`
(Common Crawl's WARCs, a LAION parquet), and Ray tasks on any node open their own byte range, so
every reader and writer goes through `url_to_fs`. S3 settings come from the usual AWS variables
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, …), which Ray workers inherit from the node that runs them.
"""

from __future__ import annotations

import os
from typing import Any

from laitkit.errors import UserError


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def url_to_fs(uri: str) -> tuple[Any, str]:
    """(filesystem, path inside it) for a local path or any fsspec URI."""
    from fsspec.core import url_to_fs as _url_to_fs

    try:
        return _url_to_fs(str(uri))
    except (ImportError, ValueError) as exc:
        raise UserError(f"cannot open {uri!r}: {exc}") from None


def join(base: str, *parts: str) -> str:
    """Join path parts with '/', for URIs and local paths alike."""
    out = str(base).rstrip("/")
    for p in parts:
        out = f"{out}/{str(p).lstrip('/')}"
    return out


def basename(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def dirname(uri: str) -> str:
    uri = str(uri).rstrip("/")
    return uri.rsplit("/", 1)[0] if "/" in uri else "."


def protocol_prefix(uri: str) -> str:
    """'s3://' for 's3://b/k', '' for a local path: re-attached to paths fsspec lists."""
    return uri.split("://", 1)[0] + "://" if is_remote(uri) else ""


def exists(uri: str) -> bool:
    fs, path = url_to_fs(uri)
    return fs.exists(path)


def isdir(uri: str) -> bool:
    fs, path = url_to_fs(uri)
    return fs.isdir(path)


def list_files(uri: str) -> list[str]:
    """Every file under a folder URI, sorted, as URIs of the same kind as `uri`."""
    fs, path = url_to_fs(uri)
    prefix = protocol_prefix(uri)
    return sorted(prefix + p for p in fs.find(path) if not os.path.basename(p).startswith("."))


def open_binary(uri: str, mode: str = "rb") -> Any:
    fs, path = url_to_fs(uri)
    return fs.open(path, mode)


def put_file(local: str, uri: str) -> None:
    """Upload one local file (an object store PUT is atomic: readers see all or nothing)."""
    fs, path = url_to_fs(uri)
    if not is_remote(uri):
        fs.makedirs(os.path.dirname(path), exist_ok=True)  # object stores have no folders to make
    fs.put_file(local, path)
