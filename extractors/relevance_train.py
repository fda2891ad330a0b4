"""Train the built-in relevance model on synthetic (scene, caption) pairs.

Why synthetic: the scorer shipped for the demo and tests must be reproducible offline from a
seed. Real users retrain on their own matched pairs (any iterable of (PIL image, caption)) with
`train_relevance`, or point `relevance.weights` at their own checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from laitkit.datasets.synth.captions import describe
from laitkit.datasets.synth.scenes import plan_scene, render_scene
from laitkit.extractors.relevance import save_relevance, train_relevance


def synthetic_pairs(n: int, seed: int) -> list[tuple[Image.Image, str]]:
    """`n` rendered scenes with their gold-derived English captions."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        w, h = int(rng.integers(320, 641)), int(rng.integers(320, 641))
        scene = plan_scene(rng, w, h)
        img = render_scene(scene, rng).resize((96, 96), Image.Resampling.BILINEAR)
        pairs.append((img, describe(scene, rng)))
    return pairs


def train_builtin(out: Path, *, pairs: int = 3000, steps: int = 800, seed: int = 0) -> dict[str, float]:
    """Train and save; returns held-out accuracy on matched vs shuffled captions."""
    model, metrics = train_relevance(synthetic_pairs(pairs, seed), steps=steps, seed=seed)
    save_relevance(model, out, {"val_accuracy": metrics["val_accuracy"], "seed": float(seed)})
    return metrics
