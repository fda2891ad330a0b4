"""Multimodal arithmetic in the joint space (Kiros et al. §5): image − word + word → nearest images.

Why it is a check and a tool: if the embedding is linear enough in its concepts, "a blue circle"
minus "blue" plus "red" lands near red circles. On the synthetic web, where colours and shapes are
known exactly, the share of queries whose five nearest images contain the asked-for combination is
a number that says whether the space encodes colour and shape separably.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from laitkit.extractors.vse_data import VSEPair
from laitkit.extractors.vse_model import VSEModel


def query_vector(model: VSEModel, image_vec: np.ndarray, minus: Sequence[str], plus: Sequence[str]) -> np.ndarray:
    q = np.asarray(image_vec, dtype=np.float32).copy()
    for w in minus:
        q -= model.word_vector(w).detach().numpy()
    for w in plus:
        q += model.word_vector(w).detach().numpy()
    return q / max(float(np.linalg.norm(q)), 1e-6)


def nearest(index: np.ndarray, q: np.ndarray, k: int = 5, exclude: int | None = None) -> list[tuple[int, float]]:
    """(row, cosine) of the k nearest rows of `index` (unit vectors) to `q`."""
    sims = index @ q
    if exclude is not None:
        sims[exclude] = -np.inf
    top = np.argsort(-sims, kind="stable")[:k]
    return [(int(i), float(sims[i])) for i in top]


def synth_arithmetic_accuracy(model: VSEModel, pairs: Sequence[VSEPair], image_vecs: np.ndarray,
                              n_queries: int = 200, seed: int = 0, k: int = 5) -> dict[str, float]:
    """One-object scenes (colour c, shape s), query − c + c': is a c' s among the k nearest images?"""
    from laitkit.datasets.synth.scenes import COLOURS

    rng = np.random.default_rng(seed)
    has = [set(p.objects) for p in pairs]
    singles = [i for i, p in enumerate(pairs) if len(p.objects) == 1]
    hits = tried = 0
    for i in rng.permutation(singles):
        colour, shape = pairs[i].objects[0]
        target = str(rng.choice([c for c in COLOURS if c != colour]))
        if not any((target, shape) in h for j, h in enumerate(has) if j != i):
            continue
        q = query_vector(model, image_vecs[i], [colour], [target])
        tried += 1
        hits += any((target, shape) in has[j] for j, _ in nearest(image_vecs, q, k, exclude=int(i)))
        if tried >= n_queries:
            break
    return {"arithmetic_top5_accuracy": round(hits / tried, 4) if tried else float("nan"),
            "arithmetic_queries": float(tried)}
