"""The run report's relevance section: which model cut, what it was trained on, its calibration plot.

Why in the report: a score threshold means nothing without the data behind it. The section names
the model's training data (the built-in one knows only the synthetic web), the threshold and the
held-out precision/recall it was chosen for, and draws `relevance_calibration.png`: the held-out
matched and shuffled score histograms stored in the model, the threshold, and this run's scores.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from laitkit.datasets.shards import list_shard_files

PNG = "relevance_calibration.png"


def run_scores(out: Path) -> list[float]:
    """Every finite `relevance_score` of the run, kept or rejected."""
    scores: list[float] = []
    for sub in ("shards", "rejected"):
        for f in list_shard_files(out / sub, "parquet") if (out / sub).is_dir() else []:
            col = pq.read_table(f, columns=["relevance_score"]).column(0).to_pylist()
            scores += [float(x) for x in col if x is not None and math.isfinite(x)]
    return scores


def relevance_section(out: Path, relevance: dict[str, Any]) -> dict[str, Any]:
    """The section for a run whose config's `relevance:` block is `relevance`; writes the PNG."""
    from laitkit.extractors.relevance import BUILTIN, TINY_CNN_THRESHOLD

    scorer = relevance.get("scorer", "vse")
    weights = relevance.get("weights", BUILTIN)
    scores = run_scores(out)
    sec: dict[str, Any] = {"scorer": scorer, "weights": weights, "scored": len(scores)}
    if scorer != "vse":
        thr = relevance.get("threshold") or TINY_CNN_THRESHOLD
        sec.update({"threshold": thr, "trained_on": "synthetic web (tiny-cnn built-in)" if weights == BUILTIN
                    else f"user weights {weights}"})
    else:
        from laitkit.extractors.vse_eval import calibration_plot
        from laitkit.extractors.vse_model import load_model
        from laitkit.extractors.vse_scorer import builtin_vse

        model = load_model(builtin_vse() if weights == BUILTIN else weights)
        cal = model.calibration
        thr = float(relevance["threshold"]) if relevance.get("threshold") is not None else cal.threshold
        sec.update({
            "threshold": round(thr, 4), "trained_on": model.data.get("source", "unknown"),
            "training_note": model.data.get("note", ""), "threshold_from": model.data.get("threshold_from", ""),
            "held_out_precision": round(cal.precision, 4), "held_out_recall": round(cal.recall, 4),
            "recipe": model.data.get("recipe", ""),
        })
        cal_for_plot = type(cal)(**{**cal.__dict__, "threshold": thr})
        calibration_plot(cal_for_plot, out / PNG, title=f"relevance: {sec['trained_on'][:70]}", run_scores=scores)
        sec["calibration_png"] = PNG
    sec["below_threshold"] = sum(s < sec["threshold"] for s in scores)
    return sec


def render(sec: dict[str, Any]) -> list[str]:
    lines = ["", f"## Relevance cut: `{sec['scorer']}` scorer, threshold {sec['threshold']}", ""]
    lines.append(f"- model trained on: **{sec['trained_on']}**" + (f" ({sec['training_note']})"
                                                                    if sec.get("training_note") else ""))
    if sec.get("threshold_from"):
        lines.append(f"- threshold chosen on {sec['threshold_from']}: held-out mismatch precision "
                     f"{sec['held_out_precision']}, recall {sec['held_out_recall']}")
    lines.append(f"- scored pairs in this run: {sec['scored']}, below the threshold: {sec['below_threshold']}")
    if sec.get("calibration_png"):
        lines += ["", f"![relevance calibration]({sec['calibration_png']})"]
    return lines
