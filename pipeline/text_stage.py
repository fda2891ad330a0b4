"""Ray Data stage: POS sequence and textual scene graph for every kept caption.

One spaCy pipeline per actor (loading it is the expensive part); captions of a batch go
through `nlp.pipe` together inside `TextExtractor.annotate`.
"""

from __future__ import annotations

from laitkit.datasets.schema import Sample
from laitkit.extractors.text import TextConfig, TextExtractor
from laitkit.pipeline.stage import SampleStage


class TextStage(SampleStage):
    name = "text"

    def __init__(self, cfg: TextConfig) -> None:
        self.extractor = TextExtractor(cfg)

    def process(self, samples: list[Sample]) -> None:
        for sample, ann in zip(samples, self.extractor.annotate([s.caption for s in samples]), strict=True):
            sample.text = ann
