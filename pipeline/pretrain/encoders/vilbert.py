"""ViLBERT: two streams joined by co-attentional transformer (Co-TRM) layers.

Why its own module: ViLBERT's cross-modal layer differs from LXMERT's. In a Co-TRM block each
stream's queries attend to the *other* stream's keys and values (text attends to regions and
regions to text, from the same inputs), each followed by its own feed-forward; a plain TRM
(self-attention) block then runs on each stream. Text first runs `l_layers` plain BERT layers
(ViLBERT starts the text stream from BERT's deeper stack), regions `r_layers`, then `x_layers`
Co-TRM + TRM pairs. One hidden size for both streams (the paper's visual stream is 1024 wide;
here both are `hidden`, so the shared heads apply). `pooled` is the element-wise product of the
text [CLS] pooler and a region pooler over the masked mean of region states, as ViLBERT scores
alignment by the product of the two streams' summaries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from laitkit.pipeline.pretrain.encoders.single import TextEmbedding
from laitkit.pipeline.pretrain.model import (
    Block,
    Embedded,
    Encoder,
    EncoderOutput,
    ModelConfig,
    Pooler,
    RegionEmbedding,
)


class CrossAttention(nn.Module):
    """Pre-norm cross-attention: queries from `x`, keys/values from `ctx` (masked by `ctx_mask`), + FFN."""

    def __init__(self, hidden: int, heads: int, dropout: float, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm_q, self.norm_kv = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.dropout = dropout
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape
        m = ctx.shape[1]
        d = h // self.heads
        q = self.q(self.norm_q(x)).view(b, n, self.heads, d).transpose(1, 2)
        k, v = self.kv(self.norm_kv(ctx)).view(b, m, 2, self.heads, d).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        drop = self.dropout if self.training else 0.0
        # A row with no context (an image with no regions) attends to nothing: its update is zero.
        has_ctx = ctx_mask.any(1)
        safe = ctx_mask | ~has_ctx[:, None]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=safe[:, None, None, :], dropout_p=drop)
        a = a.transpose(1, 2).reshape(b, n, h) * has_ctx[:, None, None].to(x.dtype)
        x = x + self.drop(self.proj(a))
        return x + self.drop(self.mlp(self.norm2(x)))


class CoAttentionLayer(nn.Module):
    """One Co-TRM (each stream attends to the other, from the same inputs) then one TRM per stream."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h, heads, p, ffn = cfg.hidden, cfg.heads, cfg.dropout, cfg.ffn
        self.text_cross, self.region_cross = CrossAttention(h, heads, p, ffn), CrossAttention(h, heads, p, ffn)
        self.text_self, self.region_self = Block(h, heads, p, ffn), Block(h, heads, p, ffn)

    def forward(
        self, text: torch.Tensor, tmask: torch.Tensor, regions: torch.Tensor, rmask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        text, regions = self.text_cross(text, regions, rmask), self.region_cross(regions, text, tmask)
        return self.text_self(text, tmask), self.region_self(regions, _nonempty(rmask))


def _nonempty(mask: torch.Tensor) -> torch.Tensor:
    """A region row with no region keeps its first (padding) slot, so self-attention has a key."""
    fix = mask.clone()
    fix[:, 0] |= ~mask.any(1)
    return fix


class VilbertEncoder(Encoder):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.cfg = cfg
        lang, reg, cross = cfg.stream_layers()
        self.text = TextEmbedding(cfg)
        self.regions = RegionEmbedding(cfg.feature_dim, h, cfg.dropout, geometry=True)
        self.text_layers = nn.ModuleList(Block(h, cfg.heads, cfg.dropout, cfg.ffn) for _ in range(lang))
        self.region_layers = nn.ModuleList(Block(h, cfg.heads, cfg.dropout, cfg.ffn) for _ in range(reg))
        self.co_layers = nn.ModuleList(CoAttentionLayer(cfg) for _ in range(cross))
        self.text_norm, self.region_norm = nn.LayerNorm(h), nn.LayerNorm(h)
        self.text_pooler, self.region_pooler = Pooler(h), Pooler(h)

    def word_embeddings(self) -> nn.Embedding:
        return self.text.word

    def embed(self, batch: dict[str, torch.Tensor]) -> Embedded:
        regions = self.regions(batch["features"], batch["geometry"], self.text.segment.weight[2])
        return Embedded(text=self.text(batch), regions=regions)

    def encode(self, emb: Embedded, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        t = emb.text.shape[1]
        tmask, rmask = batch["text_mask"][:, :t], batch["region_mask"]
        text, regions = emb.text, emb.regions
        for layer in self.text_layers:
            text = layer(text, tmask)
        for layer in self.region_layers:
            regions = layer(regions, _nonempty(rmask))
        for layer in self.co_layers:
            text, regions = layer(text, tmask, regions, rmask)
        text, regions = self.text_norm(text), self.region_norm(regions)
        m = rmask.unsqueeze(-1).to(regions.dtype)
        mean = (regions * m).sum(1) / m.sum(1).clamp(min=1.0)
        pooled = self.text_pooler(text[:, 0]) * self.region_pooler(mean)
        return EncoderOutput(text=text, regions=regions, pooled=pooled)
