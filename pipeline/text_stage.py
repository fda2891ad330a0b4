"""Ray Data stage: POS sequence and textual scene graph for every kept caption.

One spaCy pipeline per actor (loading it is the expensive part); captions of a batch go
through `nlp.pipe` together inside `TextExtractor.annotate`. With `text.n_process: N > 1` the
actor starts N worker processes once (`extractors/text_parallel.py`) and streams every batch it
gets through them, so one actor can use N cores without N copies of Ray's per-actor overhead;
the workers stop when the actor goes away. Ray does not see those processes, so give the stage
the cores it uses (`ray.stages.text.num_cpus: N`). The default stays 1: on a small node the
detector actors need the cores and one spaCy process keeps up with them.
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

    def close(self) -> None:
        """Stop the extractor's worker processes (a no-op with `n_process: 1`)."""
        self.extractor.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
