"""UNIMO's cross-modal contrastive learning (CMCL) with rewritten captions.

The data workers (masking.py `_contrastive_inputs`) send every image alone and, for its caption,
the caption itself, positive rewrites (an attribute node deleted; a rule-based paraphrase,
paraphrase.py, standing in for UNIMO's back-translation) and a negative rewrite (one scene-graph
object/attribute/relation swapped for another caption's). Both sides are encoded separately by
the same encoder (UNIMO's unified transformer: text-only and image-only inputs), projected, and
scored by cosine / temperature. Image -> text: the image's caption and positive rewrites against
every other text (other captions and their rewrites, all negative rewrites; `positive_texts`);
text -> image: each original caption against every image. The single-modality MLM / region losses are `unimo_text`
and `unimo_image` (objectives_text.py, objectives_regions.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from laitkit.pipeline.pretrain.masking import UCL_KINDS
from laitkit.pipeline.pretrain.model import EncoderOutput, ModelConfig
from laitkit.pipeline.pretrain.objectives_base import Objective

if TYPE_CHECKING:
    from laitkit.pipeline.pretrain.model import PretrainModel


def positive_texts(owner: torch.Tensor, kind: torch.Tensor, images: int) -> torch.Tensor:
    """(images, texts) bool: text j is a positive of image i when it is i's caption or one of its
    positive rewrites; everything else in the batch (i's negative rewrite, every other image's
    texts) is a negative of i."""
    rows = torch.arange(images, device=owner.device)
    return (owner[None, :] == rows[:, None]) & (kind[None, :] != UCL_KINDS["negative"])


class UnimoContrastive(Objective):
    name = "unimo_contrastive"
    temperature = 0.1

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.text_proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.image_proj = nn.Linear(cfg.hidden, cfg.hidden)

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        owner = batch.get("ucl_owner")
        if owner is None or owner[0] < 0:
            return None
        kind = batch["ucl_kind"]
        ids = batch["ucl_text_ids"]
        m, b = ids.shape[0], batch["ucl_features"].shape[0]
        d = batch["ucl_features"].shape[-1]
        text_only = {
            "input_ids": ids, "segment": torch.zeros_like(ids), "text_mask": batch["ucl_text_mask"],
            "features": ids.new_zeros((m, 1, d), dtype=batch["ucl_features"].dtype),
            "geometry": ids.new_zeros((m, 1, batch["ucl_geometry"].shape[-1]), dtype=batch["ucl_geometry"].dtype),
            "region_mask": torch.zeros((m, 1), dtype=torch.bool, device=ids.device),
            "obj_ids": ids.new_full((m, 1), -1),
        }
        image_ids = batch["ucl_image_ids"]
        image_only = {
            "input_ids": image_ids, "segment": torch.zeros_like(image_ids),
            "text_mask": torch.ones_like(image_ids, dtype=torch.bool), "features": batch["ucl_features"],
            "geometry": batch["ucl_geometry"], "region_mask": batch["ucl_region_mask"],
            "obj_ids": image_ids.new_full(batch["ucl_region_mask"].shape, -1),
        }
        txt = F.normalize(self.text_proj(model.encoder(text_only).pooled).float(), dim=-1)
        img = F.normalize(self.image_proj(model.encoder(image_only).pooled).float(), dim=-1)
        logits = img @ txt.T / self.temperature  # (B, M)
        pos = positive_texts(owner, kind, b)
        has = pos.any(1)
        i2t = torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~pos, float("-inf")), 1)
        originals = kind == UCL_KINDS["caption"]
        t2i = F.cross_entropy(logits.T[originals], owner[originals])
        return 0.5 * (i2t[has].mean() + t2i)
