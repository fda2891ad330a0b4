"""Pretraining throughput on shards made from the synthetic web (built once into a temp dir)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def run_pretrain_bench(steps: int = 40, batch_size: int = 16) -> dict:
    from laitkit.jobs.config import load_config
    from laitkit.pipeline.pretrain.train import PretrainConfig, pretrain
    from laitkit.pipeline.runner import run_job

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cfg = load_config(None, {"out": str(out), "pretrain.enabled": False})
        print("building shards for the pretraining bench", file=sys.stderr)
        run_job(cfg)
        summary = pretrain(out / "shards", out / "pretrain", PretrainConfig(steps=steps, batch_size=batch_size))
    return {
        "device": summary["device"],
        "steps": summary["steps"],
        "samples_per_s": summary["samples_per_s"],
        "loss_first": summary.get("loss_first"),
        "loss_last": summary.get("loss_last"),
    }
