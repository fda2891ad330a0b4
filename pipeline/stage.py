"""The stage contract: a callable class over a Ray Data batch of encoded samples.

A stage is built once per Ray actor (`__init__` loads its model), then called on batches whose
columns are the WebDataset members of `laitkit.datasets.codec` plus `key`, `status` and
`shard_id`. It decodes the rows to `Sample`s, lets `process` add fields to the kept ones, and
encodes them back. Stages add; they never drop rows: a rejected sample travels on to the
`rejected/` shards with its verdict (verdicts are data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from laitkit.datasets.codec import from_row, to_row
from laitkit.datasets.schema import Sample

ROW_COLUMNS = ("key", "status", "shard_id", "jpg", "txt", "json", "npz")


def batch_to_samples(batch: dict[str, np.ndarray]) -> list[Sample]:
    n = len(batch["key"])
    return [from_row({c: batch[c][i] for c in ("jpg", "txt", "json", "npz")}) for i in range(n)]


def samples_to_batch(samples: Sequence[Sample], shard_ids: Sequence[int]) -> dict[str, np.ndarray]:
    rows = [to_row(s) for s in samples]
    out: dict[str, Any] = {}
    for col in ("key", "status"):
        out[col] = np.array([r[col] for r in rows], dtype=object)
    for col in ("jpg", "txt", "json", "npz"):
        arr = np.empty(len(rows), dtype=object)
        arr[:] = [r[col] for r in rows]
        out[col] = arr
    out["shard_id"] = np.asarray(shard_ids, dtype=np.int64)
    return out


class SampleStage:
    """Base class: subclasses implement `process(kept_samples)` and mutate them in place."""

    name = "stage"

    def process(self, samples: list[Sample]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        samples = batch_to_samples(batch)
        kept = [s for s in samples if s.kept]
        if kept:
            self.process(kept)
        return samples_to_batch(samples, batch["shard_id"])
