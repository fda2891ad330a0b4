"""Ray Data stage: attach the dedup verdicts that `dist_dedup` wrote for each crawl shard.

Why split dedup in two: deciding needs every sample's hashes (a global step, done by hash
partitions over Ray workers, see `pipeline/dist_dedup.py`); applying is per row and parallel like
any other stage. An actor reads only the verdict files of the shards its batches belong to.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from laitkit.datasets.schema import Reason, Sample
from laitkit.pipeline.stage import Batch, SampleStage


class DedupStage(SampleStage):
    name = "dedup"

    def __init__(self, verdicts_dir: str) -> None:
        self.verdicts_dir = Path(verdicts_dir)
        self.verdicts: dict[str, list[tuple[str, Reason, str]]] = {}
        self._loaded: set[int] = set()

    def _load(self, shard: int) -> None:
        if shard in self._loaded:
            return
        self._loaded.add(shard)
        for row in pq.read_table(self.verdicts_dir / f"{shard:05d}.parquet").to_pylist():
            self.verdicts.setdefault(row["key"], []).append((row["stage"], Reason(row["reason"]), row["detail"]))

    def __call__(self, batch: Batch) -> Batch:
        for shard in {int(s) for s in batch["shard_id"]}:
            self._load(shard)
        return super().__call__(batch)

    def process(self, samples: list[Sample]) -> None:
        for sample in samples:
            for stage, reason, detail in self.verdicts.pop(sample.key, ()):
                if reason == Reason.KEEP:
                    sample.accept(stage, detail)
                else:
                    sample.reject(stage, reason, detail)
