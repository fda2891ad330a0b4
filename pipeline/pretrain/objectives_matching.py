"""Per-pair objectives on unmasked samples: image-text matching with random or hard negatives,
Oscar's polluted-tags contrastive loss, and UNITER's word-region alignment by optimal transport.

The data workers decide the pairs (masking.py): `itm_labels` / `itm_hard_labels` are 1 for the
image's own caption and 0 for a swapped one; ITM-hard swaps in the caption of the image whose
detector tags overlap most (a data-side choice: scoring all B x B pairs with the model would cost a
forward pass per candidate); `oscar_labels` are 1 for the image's own tags, 0 for another image's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from laitkit.pipeline.pretrain.ipot import cosine_cost, ipot, ot_distance
from laitkit.pipeline.pretrain.masking import IGNORE
from laitkit.pipeline.pretrain.model import EncoderOutput, ModelConfig
from laitkit.pipeline.pretrain.objectives_base import Objective, pooled_loss

if TYPE_CHECKING:
    from laitkit.pipeline.pretrain.model import PretrainModel


class ITM(Objective):
    """Image-text matching on the pooled state, shared head, random negatives (half of ITM samples)."""

    name, label_key = "itm", "itm_labels"

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return pooled_loss(model.heads.itm, out.pooled, batch.get(self.label_key))


class HardITM(ITM):
    """ITM whose negatives are the most confusable caption in the batch by tag overlap (Jaccard)."""

    name, label_key = "itm_hard", "itm_hard_labels"


class OscarContrastive(Objective):
    """Oscar's contrastive loss: is the tag sequence the image's own (1) or polluted (0)?
    A binary head of its own on the pooled state; half of its samples are polluted."""

    name = "oscar_contrastive"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.head = nn.Linear(cfg.hidden, 2)

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return pooled_loss(self.head, out.pooled, batch.get("oscar_labels"))


class WRA(Objective):
    """Word-region alignment (UNITER): the IPOT transport distance between the caption's word
    states and the regions' states, lowered for matched pairs and raised for swapped ones:
    (sum over matched - sum over swapped) / pairs. Cost is 1 - cosine, so the loss is bounded.
    No head: it shapes the encoder's states directly. fp32 throughout (autocast off)."""

    name = "wra"
    beta, iterations = 0.5, 50

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        matched = batch.get("pair_matched")
        if matched is None:
            return None
        t = out.text.shape[1]
        words = batch["caption_mask"][:, :t]
        sel = (matched != IGNORE) & words.any(1) & batch["region_mask"].any(1)
        if not sel.any():
            return None
        with torch.autocast(out.text.device.type, enabled=False):
            cost = cosine_cost(out.text[sel], out.regions[sel])
            plan = ipot(cost, words[sel], batch["region_mask"][sel], beta=self.beta, iterations=self.iterations)
            dist = ot_distance(cost, plan)
        sign = torch.where(matched[sel] == 1, 1.0, -1.0).to(dist.device)
        return (sign * dist).sum() / dist.shape[0]


MATCHING_OBJECTIVES = (ITM, HardITM, OscarContrastive, WRA)
