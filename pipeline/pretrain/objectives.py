"""The registry of pretraining objectives, by the names configs and styles use.

Why modules rather than a branchy loss function: systems differ in which objectives they mix
(UNITER: MLM + MRFR + MRC + ITM + WRA; Oscar: + tags and polluted tags; ERNIE-ViL: scene-graph
nodes); a style is then a list of names, and a new objective is a new class registered here. Each
objective's masking and labels are built in the data workers (masking.py) under its own label
key; its loss (objectives_*.py) reads only that key. An objective whose targets are absent from a
batch returns None and contributes nothing. `mrm` is kept as the old name of `mrfr`.
"""

from __future__ import annotations

import torch
from torch import nn

from laitkit.pipeline.pretrain.masking import ALL_TASKS, DEFAULT_TASKS
from laitkit.pipeline.pretrain.model import ModelConfig
from laitkit.pipeline.pretrain.objectives_base import Objective
from laitkit.pipeline.pretrain.objectives_matching import MATCHING_OBJECTIVES
from laitkit.pipeline.pretrain.objectives_regions import MRFR, REGION_OBJECTIVES
from laitkit.pipeline.pretrain.objectives_text import TEXT_OBJECTIVES
from laitkit.pipeline.pretrain.objectives_unimo import UnimoContrastive
from laitkit.pipeline.pretrain.objectives_villa import VILLA

OBJECTIVES: dict[str, type[Objective]] = {
    c.name: c for c in (*TEXT_OBJECTIVES, *REGION_OBJECTIVES, *MATCHING_OBJECTIVES, VILLA, UnimoContrastive)
}
OBJECTIVES["mrm"] = MRFR  # alias: configs written before MRC existed
TASKS = DEFAULT_TASKS  # the default five (CLI and bench defaults); every known name is `tuple(OBJECTIVES)`
assert set(OBJECTIVES) == set(ALL_TASKS), "masking.ALL_TASKS and the registry must list the same tasks"
__all__ = ["DEFAULT_TASKS", "OBJECTIVES", "TASKS", "build_objectives", "total_loss"]


def build_objectives(tasks: tuple[str, ...], cfg: ModelConfig) -> nn.ModuleDict:
    unknown = [t for t in tasks if t not in OBJECTIVES]
    if unknown:
        raise ValueError(f"unknown pretraining task(s) {unknown}; known: {', '.join(OBJECTIVES)}")
    return nn.ModuleDict({t: OBJECTIVES[t](cfg) for t in tasks})


def total_loss(losses: dict[str, torch.Tensor], weights: dict[str, float] | None = None) -> torch.Tensor:
    """The step's loss: the sum of the tasks' losses, each times its weight (default 1).

    With mixing "sample" the weights chose the task, so the caller passes None here."""
    weights = weights or {}
    return sum(float(weights.get(name, 1.0)) * loss for name, loss in losses.items())
