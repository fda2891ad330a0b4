"""`RelevanceConfig`, apart from the scorers: the job config reads it without importing torch.

Why its own module: `laitkit config show` and config validation must start in well under a
second and import no torch; `extractors/relevance.py` (the torch models) re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from laitkit.errors import UserError

BUILTIN = "builtin"
SCORERS = ("vse", "tiny-cnn")
TINY_CNN_THRESHOLD = 0.2


@dataclass(frozen=True, kw_only=True)
class RelevanceConfig:
    scorer: str = "vse"  # "vse" (region-feature embedding) | "tiny-cnn" (thumbnail classifier, no regions needed)
    # "builtin": extractors/weights/relevance_vse.pt for "vse", relevance_tiny.pt for "tiny-cnn"
    # (both trained on the synthetic web only); or a path (a `laitkit relevance train` model for "vse")
    weights: str = BUILTIN
    # None: the threshold calibrated with the model ("vse"), or 0.2 ("tiny-cnn": on the synthetic web
    # it cuts 10 of 11 shuffled captions and 5 of 117 true ones); a number overrides it
    threshold: float | None = None
    batch_size: int = 64
    buckets: int = 4096
    dim: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise UserError(f"relevance: scorer must be one of {SCORERS}, got {self.scorer!r}")
