"""The one stage contract: a callable over a batch of encoded samples that adds, never drops.

A stage is a callable class (built once per Ray actor: `__init__` loads its model) called on
Ray Data numpy batches whose columns are the WebDataset members of `laitkit.datasets.codec`
(`jpg`, `txt`, `json`, `npz`) plus `key`, `status`, `shard_id` and any extra column an earlier
stage added. It returns a batch with the same rows in the same order: it may add fields and
verdicts to samples (re-encoding their members and status) and add columns, but it never drops
a row. A rejected sample travels on to the `rejected/` shards with its verdict (verdicts are
data). `SampleStage` is the base: it decodes only the rows still kept, hands them to `process`,
and re-encodes them; the other rows pass through byte for byte. Crawl steps (`*_step` in
`pipeline/crawl`) follow the same rule on lists of `Sample`s inside the crawl task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from laitkit.datasets.codec import from_row, to_row
from laitkit.datasets.schema import Reason, Sample

MEMBER_COLUMNS = ("jpg", "txt", "json", "npz")
ROW_COLUMNS = ("key", "status", "shard_id", *MEMBER_COLUMNS)
Batch = dict[str, np.ndarray]
Stage = Callable[[Batch], Batch]


def batch_to_samples(batch: Batch) -> list[Sample]:
    n = len(batch["key"])
    return [from_row({c: batch[c][i] for c in MEMBER_COLUMNS}) for i in range(n)]


def samples_to_batch(samples: Sequence[Sample], shard_ids: Sequence[int]) -> Batch:
    rows = [to_row(s) for s in samples]
    out: dict[str, Any] = {}
    for col in ("key", "status"):
        out[col] = np.array([r[col] for r in rows], dtype=object)
    for col in MEMBER_COLUMNS:
        arr = np.empty(len(rows), dtype=object)
        arr[:] = [r[col] for r in rows]
        out[col] = arr
    out["shard_id"] = np.asarray(shard_ids, dtype=np.int64)
    return out


def copy_batch(batch: Batch) -> Batch:
    return {k: np.array(v, dtype=object, copy=True) if v.dtype == object else v.copy() for k, v in batch.items()}


class SampleStage:
    """Base class: subclasses implement `process(kept_samples)` and mutate them in place."""

    name = "stage"

    def process(self, samples: list[Sample]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, batch: Batch) -> Batch:
        out = copy_batch(batch)
        todo = [i for i in range(len(batch["key"])) if str(batch["status"][i]) == str(Reason.KEEP)]
        if not todo:
            return out
        samples = [from_row({c: batch[c][i] for c in MEMBER_COLUMNS}) for i in todo]
        self.process(samples)
        for i, sample in zip(todo, samples, strict=True):
            row = to_row(sample)
            for col in (*MEMBER_COLUMNS, "status"):
                out[col][i] = row[col]
        return out
