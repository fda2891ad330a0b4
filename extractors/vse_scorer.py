"""The crawl's relevance cut with the visual-semantic embedding: score every kept sample, compare
with the threshold calibrated when the model was trained.

Why it reads `Sample`s rather than bytes: the region model scores from the boxes the regions stage
stored on the sample, so nothing is decoded or detected twice. A sample that cannot be scored gets
NaN and a reason; the stage turns that into a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from laitkit.datasets.schema import Sample
from laitkit.extractors.vse_inputs import boxset_from_regions
from laitkit.extractors.vse_model import VSEModel, load_model

BUILTIN_VSE = "relevance_vse.pt"


def builtin_vse() -> Path:
    return Path(str(resources.files("laitkit.extractors").joinpath("weights", BUILTIN_VSE)))


class VSEScorer:
    """One model per Ray actor; `score_samples` → (cosines, why-not-scored per sample or "")."""

    def __init__(self, weights: str | Path, device: str = "cpu") -> None:
        self.model: VSEModel = load_model(weights).to(device)
        self.threshold = float(self.model.calibration.threshold)
        self.needs_regions = self.model.cfg.image == "regions"

    def score_samples(self, samples: Sequence[Sample]) -> tuple[np.ndarray, list[str]]:
        out = np.full(len(samples), np.nan, dtype=np.float64)
        why = [""] * len(samples)
        if self.needs_regions:
            idx = [i for i, s in enumerate(samples) if s.regions is not None]
            for i in set(range(len(samples))) - set(idx):
                why[i] = ("no region features: this relevance model scores regions; run the regions stage "
                          "first or set relevance.scorer: tiny-cnn")
            if idx:
                sets = [boxset_from_regions(samples[i].regions) for i in idx]  # type: ignore[arg-type]
                out[idx] = self.model.score_pairs(sets, [samples[i].caption for i in idx])
            return out, why
        out[:] = self.model.score_bytes([s.image for s in samples], [s.caption for s in samples])
        for i in np.flatnonzero(np.isnan(out)):
            why[int(i)] = "image could not be decoded"
        return out, why
