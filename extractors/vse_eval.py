"""Evaluation of the embedding (Kiros et al.'s protocol) and the calibrated relevance threshold.

Why a threshold chosen for a target precision: the crawl's cut must say how often a dropped pair
really was a mismatch. On held-out pairs the matched scores and the scores of the same images with
another pair's caption are compared; the threshold is the highest score below which at least
`target_precision` of the pairs are mismatches (so recall is as high as that precision allows).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from laitkit.extractors.vse_model import Calibration


def ranks(sim: np.ndarray) -> np.ndarray:
    """1-based rank of the true item (the diagonal) in each row of a similarity matrix."""
    true = sim[np.arange(sim.shape[0]), np.arange(sim.shape[0])]
    return (sim > true[:, None]).sum(1) + 1


def retrieval_metrics(img: np.ndarray, txt: np.ndarray) -> dict[str, float]:
    """Image→text and text→image R@1/5/10 and median rank; pair i is image i with caption i."""
    sim = img @ txt.T
    out: dict[str, float] = {}
    for name, r in (("i2t", ranks(sim)), ("t2i", ranks(sim.T))):
        for k in (1, 5, 10):
            out[f"{name}_r_at_{k}"] = round(float((r <= k).mean()), 4)
        out[f"{name}_median_rank"] = float(np.median(r))
    out["pairs"] = float(sim.shape[0])
    return out


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation with no fixed point: every image gets someone else's caption."""
    if n < 2:
        raise ValueError("need at least 2 pairs to shuffle")
    perm = rng.permutation(n)
    fixed = np.flatnonzero(perm == np.arange(n))
    for i in fixed:
        j = (i + 1) % n
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def mismatch_pr(matched: Sequence[float], mismatched: Sequence[float], threshold: float) -> tuple[float, float]:
    """(precision, recall) of "score < threshold means mismatch"."""
    m, s = np.asarray(matched), np.asarray(mismatched)
    tp, fp = float((s < threshold).sum()), float((m < threshold).sum())
    return (tp / (tp + fp) if tp + fp else float("nan")), (tp / len(s) if len(s) else float("nan"))


def choose_threshold(matched: Sequence[float], shuffled: Sequence[float], target_precision: float = 0.9) -> Calibration:
    """The highest threshold whose mismatch precision on these pairs is >= the target."""
    m, s = np.asarray(matched, dtype=np.float64), np.asarray(shuffled, dtype=np.float64)
    scores = np.concatenate([m, s])
    is_mis = np.concatenate([np.zeros(len(m)), np.ones(len(s))])
    order = np.argsort(scores, kind="stable")
    tp = np.cumsum(is_mis[order])
    prec = tp / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(prec >= target_precision)
    if len(ok):
        k = int(ok.max())  # flag the k+1 lowest scores
        nxt = scores[order[k + 1]] if k + 1 < len(order) else scores[order[k]] + 1e-6
        threshold = float((scores[order[k]] + nxt) / 2)
    else:
        threshold = float(scores.min())  # nothing reaches the target: cut nothing
    p, r = mismatch_pr(m, s, threshold)
    return Calibration(threshold=threshold, target_precision=target_precision, precision=p, recall=r,
                       matched=[float(x) for x in m], shuffled=[float(x) for x in s])


def calibration_plot(cal: Calibration, path: Path, title: str = "relevance calibration",
                     run_scores: Sequence[float] | None = None) -> Path:
    """Histograms of matched and shuffled held-out scores, the threshold, and optionally a run's scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    bins = np.linspace(-1, 1, 61)
    ax.hist(cal.matched, bins=bins, alpha=0.6, label=f"held-out matched ({len(cal.matched)})", density=True)
    ax.hist(cal.shuffled, bins=bins, alpha=0.6, label=f"held-out shuffled ({len(cal.shuffled)})", density=True)
    if run_scores is not None and len(run_scores):
        ax.hist(run_scores, bins=bins, histtype="step", color="black", label=f"this run ({len(run_scores)})",
                density=True)
    ax.axvline(cal.threshold, color="red", linestyle="--",
               label=f"threshold {cal.threshold:.3f} (precision ≥ {cal.target_precision})")
    ax.set_xlabel("cosine score")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
