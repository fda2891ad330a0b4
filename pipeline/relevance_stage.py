"""Ray Data stage: image-text relevance score and the LAIT threshold cut."""

from __future__ import annotations

import math

from laitkit.datasets.schema import Reason, Sample
from laitkit.extractors.relevance import RelevanceConfig, RelevanceScorer
from laitkit.pipeline.stage import SampleStage


class RelevanceStage(SampleStage):
    name = "relevance"

    def __init__(self, cfg: RelevanceConfig) -> None:
        self.cfg = cfg
        self.scorer = RelevanceScorer(cfg)

    def process(self, samples: list[Sample]) -> None:
        scores = self.scorer.score([s.image for s in samples], [s.caption for s in samples])
        for sample, score in zip(samples, scores, strict=True):
            sample.relevance_score = float(score)
            if math.isnan(score):
                sample.reject(self.name, Reason.DECODE_ERROR, "relevance: image could not be decoded")
            elif score < self.cfg.threshold:
                sample.reject(self.name, Reason.LOW_RELEVANCE, f"score {score:.3f} < {self.cfg.threshold}")
            else:
                sample.accept(self.name, f"score {score:.3f}")
