"""Ray Data stage: region features for kept samples, one detector per actor.

Why an actor-pool class: loading a detectron2 model costs seconds and hundreds of MB, so each Ray
actor builds one `RegionExtractor` in `__init__` and reuses it for every batch. On a GPU machine
each actor owns one GPU; on CPU each actor runs one torch thread, because tiny convolutions with
several OpenMP threads per process mostly wait in barriers when processes share cores (the
training measurements in `extractors/regions_synth.py`). Rows that are not "keep" pass through
byte for byte; an image the detector cannot read is rejected with `Reason.REGIONS_ERROR` and the
error text, never raised.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from laitkit.datasets.schema import Sample
from laitkit.extractors.regions import RegionExtractor, RegionsConfig, failure_reason
from laitkit.pipeline.stage import Batch, SampleStage

STAGE = "regions"


class RegionsStage(SampleStage):
    """Fills `sample.regions` for kept rows; adds a `feature_dim` column (the detector's D), so
    the shard writer gives shards without any region the same Parquet schema as the rest."""

    name = STAGE

    def __init__(self, cfg: RegionsConfig, num_threads: int | None = None) -> None:
        import torch

        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.cfg = cfg
        self.extractor = RegionExtractor(cfg)

    def process(self, samples: list[Sample]) -> None:
        results = self.extractor.extract([s.image for s in samples])
        for sample, res in zip(samples, results, strict=True):
            if isinstance(res, str):
                sample.reject(STAGE, failure_reason(res), res)
            else:
                sample.regions = res
                sample.accept(STAGE, f"{res.num_boxes} boxes")

    def __call__(self, batch: Batch) -> Batch:
        out = super().__call__(batch)
        out["feature_dim"] = np.full(len(batch["key"]), int(self.extractor.heads.feature_dim), dtype=np.int64)
        return out


def regions_map_kwargs(cfg: RegionsConfig, num_gpus_available: int, num_cpus_available: int | None = None,
                       cpu_actors: int | None = None) -> dict[str, Any]:
    """Keyword arguments for `ds.map_batches(RegionsStage, **kwargs)`.

    GPU (when `num_gpus_available` > 0 and the device is not forced to CPU): one actor per GPU,
    `num_gpus=1` each, larger Ray batches so the extractor can fill its own `batch_size`.
    CPU: one single-threaded actor per core (or `cpu_actors`), `num_cpus=1` each.
    """
    import ray.data

    use_gpu = num_gpus_available > 0 and not cfg.device.startswith("cpu")
    if use_gpu:
        actors = int(num_gpus_available)
        resources: dict[str, Any] = {"num_gpus": 1, "num_cpus": 2}
        batch = cfg.batch_size * 4
        threads = 2
    else:
        cpus = int(num_cpus_available or os.cpu_count() or 1)
        actors = max(1, int(cpu_actors or cpus))
        resources = {"num_cpus": 1}
        batch = max(cfg.batch_size * 4, 16)  # fewer, larger Ray batches: row codec and scheduling amortised
        threads = 1
    return {
        "fn_constructor_kwargs": {"cfg": cfg, "num_threads": threads},
        "compute": ray.data.ActorPoolStrategy(size=actors),
        "batch_size": batch,
        "batch_format": "numpy",
        **resources,
    }
