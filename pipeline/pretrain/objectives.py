"""One module per pretraining objective: which batch labels it reads and how it scores them.

Why modules rather than a branchy loss function: systems differ in which objectives they mix
(UNITER: MLM + MRFR + ITM; Oscar: + tags; ERNIE-ViL: + scene-graph nodes); a style is then a
list of names, and a new objective is a new class registered in `OBJECTIVES`. An objective whose
targets are absent from a batch returns None and contributes nothing.
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
    passes) and may own heads of its own, built in `__init__` from the model config."""

    name = ""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        raise NotImplementedError


class TokenPrediction(Objective):
    """Cross-entropy of the shared sub-word head at positions whose label is set."""

    label_key = ""

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        labels = batch[self.label_key][:, : out.text.shape[1]]
        sel = labels != IGNORE
        if not sel.any():
            return None
        return F.cross_entropy(model.heads.token(out.text[sel]).float(), labels[sel])


class MLM(TokenPrediction):
    name, label_key = "mlm", "mlm_labels"


class TagMLM(TokenPrediction):
    name, label_key = "tags", "tag_labels"


class SceneGraphPrediction(TokenPrediction):
    name, label_key = "sgp", "sgp_labels"


class MRFR(Objective):
    """Masked region feature regression (UNITER): MSE between the head's output and the zeroed feature."""

    name = "mrm"

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        sel = batch["mrm_mask"]
        if not sel.any():
            return None
        return F.mse_loss(model.heads.region(out.regions[sel]).float(), batch["mrm_target"][sel].float())


class ITM(Objective):
    """Image-text matching on the pooled state of the batch's ITM samples: matched or swapped caption."""

    name = "itm"

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        labels = batch["itm_labels"]
        sel = labels != IGNORE
        if not sel.any():
            return None
        return F.cross_entropy(model.heads.itm(out.pooled[sel]).float(), labels[sel])


OBJECTIVES: dict[str, type[Objective]] = {c.name: c for c in (MLM, MRFR, ITM, TagMLM, SceneGraphPrediction)}
TASKS = tuple(OBJECTIVES)


def build_objectives(tasks: tuple[str, ...], cfg: ModelConfig) -> nn.ModuleDict:
    unknown = [t for t in tasks if t not in OBJECTIVES]
    if unknown:
        raise ValueError(f"unknown pretraining task(s) {unknown}; known: {', '.join(OBJECTIVES)}")
    return nn.ModuleDict({t: OBJECTIVES[t](cfg) for t in tasks})
