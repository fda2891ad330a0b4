"""Encode a `Sample` as WebDataset members (`jpg`, `txt`, `json`, `npz`) and back.

Why members are also the in-flight form: Ray Data moves rows between stages; a row of
`{"key", "jpg", "txt", "json", "npz"}` bytes is exactly what lands in the tar, so a stage never
meets a shape the shard writer does not, and no pickled Python objects cross process boundaries.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from laitkit.datasets.schema import Sample

MEMBERS = ("jpg", "txt", "json", "npz")


def encode_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """Uncompressed npz: features are float16 noise to zlib, and loading stays zero-copy-ish."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def encode_members(sample: Sample) -> dict[str, bytes]:
    """The four members of a sample; `npz` is empty when the sample has no regions yet."""
    return {
        "jpg": sample.image,
        "txt": sample.caption.encode("utf-8"),
        "json": json.dumps(sample.meta(), ensure_ascii=False, sort_keys=True).encode("utf-8"),
        "npz": encode_npz(sample.regions.arrays()) if sample.regions is not None else b"",
    }


def decode_members(members: dict[str, Any]) -> Sample:
    """Inverse of `encode_members`; accepts str or bytes for text members (webdataset decodes)."""
    meta = members["json"]
    if isinstance(meta, bytes | bytearray):
        meta = json.loads(meta.decode("utf-8"))
    elif isinstance(meta, str):
        meta = json.loads(meta)
    npz = members.get("npz") or b""
    arrays = decode_npz(bytes(npz)) if len(npz) else None
    return Sample.from_parts(meta, image=bytes(members.get("jpg") or b""), arrays=arrays)


def to_row(sample: Sample) -> dict[str, Any]:
    """A Ray Data / Arrow row: the members plus the key and status for cheap filtering."""
    row: dict[str, Any] = dict(encode_members(sample))
    row["key"] = sample.key
    row["status"] = sample.status
    return row


def from_row(row: dict[str, Any]) -> Sample:
    return decode_members(row)
