"""One transformer over [caption; tags; regions]: UNITER, ImageBERT, Unicoder-VL, VL-BERT, Oscar.

Why one module for five systems: they differ only in their embeddings, so each difference is a
`ModelConfig` option rather than a copy of the encoder.
- UNITER / ImageBERT / Unicoder-VL: region = LayerNorm(feature) + LayerNorm(7-d box), a region
  segment embedding, then LayerNorm (`region_geometry=True`, the default).
- Oscar: the detector's tags are a third segment between caption and regions (the batch's segment
  ids already mark them 1; regions get segment 2).
- VL-BERT (`visual_text=True`): every word also gets a visual feature embedding. The paper uses
  the whole image's RoI feature; here it is the masked mean of the image's region features,
  projected (simplified: no separate full-image RoI).
- `region_geometry=False`: regions embed the feature alone (VisualBERT's original has no box).
"""

from __future__ import annotations

import torch
from torch import nn

from laitkit.pipeline.pretrain.model import (
    Block,
    Embedded,
    Encoder,
    EncoderOutput,
    ModelConfig,
    Pooler,
    RegionEmbedding,
)


class TextEmbedding(nn.Module):
    """Word + position + segment, LayerNorm, dropout (BERT's)."""

    def __init__(self, cfg: ModelConfig, segments: int = 3) -> None:
        super().__init__()
        h = cfg.hidden
        self.max_text = cfg.max_text
        self.word = nn.Embedding(cfg.vocab_size, h)
        self.position = nn.Embedding(cfg.max_text, h)
        self.segment = nn.Embedding(segments, h)
        self.norm = nn.LayerNorm(h)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, batch: dict[str, torch.Tensor], extra: torch.Tensor | None = None) -> torch.Tensor:
        t = min(batch["input_ids"].shape[1], self.max_text)
        ids, seg = batch["input_ids"][:, :t], batch["segment"][:, :t]
        pos = torch.arange(t, device=ids.device).unsqueeze(0)
        x = self.word(ids) + self.position(pos) + self.segment(seg)
        if extra is not None:
            x = x + extra
        return self.drop(self.norm(x))


class SingleStreamEncoder(Encoder):
    """Pre-norm transformer over the concatenation; `pooled` is BERT's pooler over [CLS]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.cfg = cfg
        self.text = TextEmbedding(cfg)
        self.regions = RegionEmbedding(cfg.feature_dim, h, cfg.dropout, geometry=cfg.region_geometry)
        self.visual_text = nn.Linear(cfg.feature_dim, h) if cfg.visual_text else None
        self.blocks = nn.ModuleList(Block(h, cfg.heads, cfg.dropout, cfg.ffn) for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(h)
        self.pooler = Pooler(h)

    def word_embeddings(self) -> nn.Embedding:
        return self.text.word

    def embed(self, batch: dict[str, torch.Tensor]) -> Embedded:
        extra = None
        if self.visual_text is not None:
            m = batch["region_mask"].unsqueeze(-1).to(batch["features"].dtype)
            mean = (batch["features"] * m).sum(1) / m.sum(1).clamp(min=1.0)
            extra = self.visual_text(mean).unsqueeze(1)
        text = self.text(batch, extra)
        regions = self.regions(batch["features"], batch["geometry"], self.text.segment.weight[2])
        return Embedded(text=text, regions=regions)

    def encode(self, emb: Embedded, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        t = emb.text.shape[1]
        return self.run(emb, batch["text_mask"][:, :t], batch["region_mask"])

    def run(self, emb: Embedded, text_mask: torch.Tensor, region_mask: torch.Tensor) -> EncoderOutput:
        t = emb.text.shape[1]
        x = torch.cat([emb.text, emb.regions], dim=1)
        attend = torch.cat([text_mask, region_mask], dim=1)
        for block in self.blocks:
            x = block(x, attend)
        x = self.final_norm(x)
        return EncoderOutput(text=x[:, :t], regions=x[:, t:], pooled=self.pooler(x[:, 0]))
