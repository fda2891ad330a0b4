"""Ray Data stage: attach the global dedup verdicts computed once on the driver.

Why split dedup in two: deciding needs every sample's hashes (a global, stateful pass over light
metadata, see `runner.dedup_verdicts`); applying is per row and parallel like any other stage.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from laitkit.datasets.schema import Reason, Sample
from laitkit.pipeline.stage import SampleStage


class DedupStage(SampleStage):
    name = "dedup"

    def __init__(self, verdicts_path: str) -> None:
        table = pq.read_table(verdicts_path).to_pylist()
        self.verdicts: dict[str, list[tuple[str, Reason, str]]] = {}
        for row in table:
            self.verdicts.setdefault(row["key"], []).append((row["stage"], Reason(row["reason"]), row["detail"]))

    def process(self, samples: list[Sample]) -> None:
        for sample in samples:
            for stage, reason, detail in self.verdicts.get(sample.key, ()):
                if reason == Reason.KEEP:
                    sample.accept(stage, detail)
                else:
                    sample.reject(stage, reason, detail)
