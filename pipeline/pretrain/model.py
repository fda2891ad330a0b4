"""Encoders over (caption sub-words, region features + boxes) and the pretraining model around them.

Why an `Encoder` interface: the systems laitkit reproduces differ mostly in the encoder (one
stream over [text; regions] as UNITER/VisualBERT/Oscar, or two streams with cross-attention as
LXMERT/ViLBERT) and in the objectives. Any module that maps a batch to `EncoderOutput` (text
states, region states, pooled state) plugs into `PretrainModel`; objectives only read that output
(see objectives.py). Attention is `scaled_dot_product_attention`, so PyTorch picks flash or
memory-efficient kernels on a GPU and a plain kernel on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from laitkit.pipeline.pretrain.masking import GEOM_DIM


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    vocab_size: int
    feature_dim: int
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    max_text: int = 64
    dropout: float = 0.1
    encoder: str = "single-stream"
    num_classes: int = 0  # detector classes (MRC heads: background + classes); 0 = no class objective
    num_attributes: int = 0  # detector attributes (LXMERT's attribute head); 0 = none

    def num_params_estimate(self) -> int:
        """Transformer-layer parameters (12 h^2 per layer): what MFU counts as model FLOPs."""
        return 12 * self.hidden * self.hidden * self.layers


@dataclass
class EncoderOutput:
    text: torch.Tensor  # (B, T, H)
    regions: torch.Tensor  # (B, R, H)
    pooled: torch.Tensor  # (B, H): the [CLS] state, used by ITM


@dataclass
class Embedded:
    """The encoder's input embeddings, before any transformer layer.

    Why a separate step: adversarial training (VILLA, FreeLB) perturbs exactly these tensors and
    runs the layers again, so every encoder exposes `embed` and `encode` and `forward` is both.
    """

    text: torch.Tensor  # (B, T, H)
    regions: torch.Tensor  # (B, R, H)


class Encoder(nn.Module):
    """Base of every encoder: `forward(batch) == encode(embed(batch), batch)`."""

    def embed(self, batch: dict[str, torch.Tensor]) -> Embedded:
        raise NotImplementedError

    def encode(self, emb: Embedded, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        return self.encode(self.embed(batch), batch)


class Block(nn.Module):
    """A pre-norm transformer layer whose attention is `F.scaled_dot_product_attention`."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.dropout = dropout
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        b, length, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, h // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        drop = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None, None, :], dropout_p=drop)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, length, h)))
        return x + self.drop(self.mlp(self.norm2(x)))


class RegionEmbedding(nn.Module):
    """Feature and 7-d box, each projected and LayerNormed, summed (UNITER's image embedder)."""

    def __init__(self, feature_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.feat = nn.Linear(feature_dim, hidden)
        self.geom = nn.Linear(GEOM_DIM, hidden)
        self.norm_feat, self.norm_geom, self.norm = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor, geometry: torch.Tensor, type_embedding: torch.Tensor) -> torch.Tensor:
        x = self.norm_feat(self.feat(features)) + self.norm_geom(self.geom(geometry))
        return self.drop(self.norm(x + type_embedding))


class SingleStreamEncoder(Encoder):
    """One transformer over [caption; tags; regions] (UNITER, VisualBERT, Oscar)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, h)
        self.position = nn.Embedding(cfg.max_text, h)
        self.segment = nn.Embedding(3, h)  # 0 caption, 1 tags, 2 regions
        self.norm_text = nn.LayerNorm(h)
        self.drop = nn.Dropout(cfg.dropout)
        self.regions = RegionEmbedding(cfg.feature_dim, h, cfg.dropout)
        self.blocks = nn.ModuleList(Block(h, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(h)

    def embed(self, batch: dict[str, torch.Tensor]) -> Embedded:
        t = min(batch["input_ids"].shape[1], self.cfg.max_text)
        ids, seg = batch["input_ids"][:, :t], batch["segment"][:, :t]
        pos = torch.arange(t, device=ids.device).unsqueeze(0)
        text = self.drop(self.norm_text(self.word(ids) + self.position(pos) + self.segment(seg)))
        regions = self.regions(batch["features"], batch["geometry"], self.segment.weight[2])
        return Embedded(text=text, regions=regions)

    def encode(self, emb: Embedded, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        t = emb.text.shape[1]
        x = torch.cat([emb.text, emb.regions], dim=1)
        attend = torch.cat([batch["text_mask"][:, :t], batch["region_mask"]], dim=1)
        for block in self.blocks:
            x = block(x, attend)
        x = self.final_norm(x)
        return EncoderOutput(text=x[:, :t], regions=x[:, t:], pooled=x[:, 0])


ENCODERS: dict[str, type[Encoder]] = {"single-stream": SingleStreamEncoder}


class Heads(nn.Module):
    """Prediction heads shared by objectives: word/tag/node sub-words, region features, match."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.token = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.LayerNorm(h), nn.Linear(h, cfg.vocab_size))
        self.region = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.LayerNorm(h), nn.Linear(h, cfg.feature_dim))
        self.itm = nn.Linear(h, 2)


class PretrainModel(nn.Module):
    """Encoder + heads; `forward` returns one loss per objective that has targets in the batch."""

    def __init__(self, cfg: ModelConfig, tasks: tuple[str, ...]) -> None:
        super().__init__()
        from laitkit.pipeline.pretrain.objectives import build_objectives

        if cfg.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {cfg.encoder!r}; known: {', '.join(ENCODERS)}")
        self.cfg = cfg
        self.encoder = ENCODERS[cfg.encoder](cfg)
        self.heads = Heads(cfg)
        self.objectives = build_objectives(tasks, cfg)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.encoder(batch)
        losses: dict[str, torch.Tensor] = {}
        for name, objective in self.objectives.items():
            loss = objective.loss(self, out, batch)
            if loss is not None:
                losses[name] = loss
        return losses

    @torch.no_grad()
    def itm_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p(match) per pair: the retrieval score (UNITER ranks candidates by it)."""
        out = self.encoder(batch)
        return torch.log_softmax(self.heads.itm(out.pooled).float(), dim=-1)[:, 1]
