"""A single-stream vision-language transformer (UNITER/Oscar style) with its pretraining heads.

Why single-stream: words, object tags and region features share one encoder, which is what
UNITER, Oscar and VisualBERT do and what lets every task here be a head on the same states.
Sizes are small by default so the demo trains on a laptop CPU; the same code scales on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from laitkit.pipeline.pretrain.data import GEOM_DIM


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    vocab_size: int
    feature_dim: int
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    max_text: int = 128
    dropout: float = 0.1


class VLEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, h)
        self.position = nn.Embedding(cfg.max_text, h)
        self.segment = nn.Embedding(3, h)  # 0 caption, 1 tags, 2 regions
        self.region_feat = nn.Linear(cfg.feature_dim, h)
        self.region_geom = nn.Linear(GEOM_DIM, h)
        self.norm_text = nn.LayerNorm(h)
        self.norm_region = nn.LayerNorm(h)
        layer = nn.TransformerEncoderLayer(h, cfg.heads, 4 * h, cfg.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(h)
        self.mlm_head = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.LayerNorm(h), nn.Linear(h, cfg.vocab_size))
        self.mrm_head = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.LayerNorm(h), nn.Linear(h, cfg.feature_dim))
        self.itm_head = nn.Linear(h, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = batch["input_ids"][:, : self.cfg.max_text]
        seg = batch["segment"][:, : self.cfg.max_text]
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        text = self.norm_text(self.word(ids) + self.position(pos) + self.segment(seg))
        regions = self.region_feat(batch["features"]) + self.region_geom(batch["geometry"])
        regions = self.norm_region(regions + self.segment.weight[2])
        x = torch.cat([text, regions], dim=1)
        pad = torch.cat([~batch["text_mask"][:, : self.cfg.max_text], ~batch["region_mask"]], dim=1)
        states = self.final_norm(self.encoder(x, src_key_padding_mask=pad))
        return states[:, : ids.shape[1]], states[:, ids.shape[1] :]


def pretraining_losses(
    model: VLEncoder, batch: dict[str, torch.Tensor], tasks: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """One loss per task that has targets in this batch; their sum is what we optimise."""
    text_states, region_states = model(batch)
    t = text_states.shape[1]
    losses: dict[str, torch.Tensor] = {}

    def token_loss(labels: torch.Tensor) -> torch.Tensor | None:
        labels = labels[:, :t]
        sel = labels != -100
        if not sel.any():
            return None
        return F.cross_entropy(model.mlm_head(text_states[sel]), labels[sel])

    for task, key in (("mlm", "mlm_labels"), ("tags", "tag_labels"), ("sgp", "sgp_labels")):
        if task in tasks:
            loss = token_loss(batch[key])
            if loss is not None:
                losses[task] = loss
    if "mrm" in tasks and batch["mrm_mask"].any():
        sel = batch["mrm_mask"]
        losses["mrm"] = F.mse_loss(model.mrm_head(region_states[sel]), batch["mrm_target"][sel])
    if "itm" in tasks:
        losses["itm"] = F.cross_entropy(model.itm_head(text_states[:, 0]), batch["itm_labels"])
    return losses
