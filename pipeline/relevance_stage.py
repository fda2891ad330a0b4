"""Ray Data stage: image-text relevance score and the LAIT threshold cut.

The score is stored on every sample it could be computed for (`relevance_score`); the threshold is
the model's calibrated one unless the config overrides it. With the default `vse` scorer the stage
reads the region features, so it runs after the regions stage (see `stages.py`).
"""

from __future__ import annotations

import math

from laitkit.datasets.schema import Reason, Sample
from laitkit.extractors.relevance import RelevanceConfig, make_scorer
from laitkit.pipeline.stage import SampleStage


class RelevanceStage(SampleStage):
    name = "relevance"

    def __init__(self, cfg: RelevanceConfig) -> None:
        self.cfg = cfg
        self.scorer = make_scorer(cfg)

    def process(self, samples: list[Sample]) -> None:
        scores, why = self.scorer.score_samples(samples)  # type: ignore[attr-defined]
        threshold = float(self.scorer.threshold)  # type: ignore[attr-defined]
        for sample, score, reason in zip(samples, scores, why, strict=True):
            sample.relevance_score = float(score)
            if math.isnan(score):
                code = Reason.DECODE_ERROR if "decoded" in reason else Reason.REGIONS_ERROR
                sample.reject(self.name, code, f"relevance: {reason}")
            elif score < threshold:
                sample.reject(self.name, Reason.LOW_RELEVANCE, f"score {score:.3f} < {threshold:.3f}")
            else:
                sample.accept(self.name, f"score {score:.3f}")
