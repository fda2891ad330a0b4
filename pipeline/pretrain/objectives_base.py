"""The `Objective` interface and the small loss pieces several objectives share.

Why a separate module: every objective module imports the base, and the registry
(objectives.py) imports every objective module; keeping the base here avoids an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from laitkit.pipeline.pretrain.masking import IGNORE
from laitkit.pipeline.pretrain.model import EncoderOutput, ModelConfig

if TYPE_CHECKING:
    from laitkit.pipeline.pretrain.model import PretrainModel


class Objective(nn.Module):
    """One pretraining task. It gets the model (shared heads `model.heads`, the encoder for extra
    passes) and may own heads of its own, built in `__init__` from the model config. `loss`
    returns None when the batch holds no targets for it (another task was sampled, or no sample
    had anything to predict), so it contributes nothing rather than a fake zero."""

    name = ""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Numbers that explain this step's loss without being part of it (WRA's matched-minus-swapped
        # gap); an objective that sets them resets them on every `loss` call, so none is stale.
        self.logged: dict[str, float] = {}

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        raise NotImplementedError


def mlp_head(hidden: int, out: int) -> nn.Module:
    """BERT's prediction-head shape: transform, GELU, LayerNorm, then the output projection."""
    return nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, out))


def token_loss(model: PretrainModel, out: EncoderOutput, labels: torch.Tensor | None) -> torch.Tensor | None:
    """Cross-entropy of the shared sub-word head at positions whose label is set."""
    if labels is None:
        return None
    labels = labels[:, : out.text.shape[1]]
    sel = labels != IGNORE
    if not sel.any():
        return None
    return F.cross_entropy(model.heads.token(out.text[sel]).float(), labels[sel])


def pooled_loss(head: nn.Module, pooled: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """Cross-entropy of a classifier on the pooled state of the samples whose label is set."""
    if labels is None:
        return None
    sel = labels != IGNORE
    if not sel.any():
        return None
    return F.cross_entropy(head(pooled[sel]).float(), labels[sel])
