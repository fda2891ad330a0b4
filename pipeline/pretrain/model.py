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
    """Sizes and encoder options; saved as `model_config.json`, so a run folder rebuilds its model.

    Why the encoder options live here as plain fields: the export to Hugging Face and a reload
    need every architectural choice, and a flat JSON of scalars survives any config loader.
    """

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
    intermediate: int = 0  # feed-forward width; 0 = 4 x hidden
    l_layers: int = 0  # two-stream: language-only layers (LXMERT 9); 0 = `layers`
    r_layers: int = 0  # two-stream: region-only layers (LXMERT 5); 0 = `layers`
    x_layers: int = 0  # two-stream: cross-modality / co-attention layers (LXMERT 5); 0 = `layers`
    region_geometry: bool = True  # single-stream: add the 7-d box embedding (VisualBERT's original: no)
    visual_text: bool = False  # single-stream: add the image's mean region feature to every word (VL-BERT)
    image_size: int = 0  # pixel encoder: square input side in pixels
    pixel_samples: int = 0  # pixel encoder: feature cells kept per image while training; 0 = all
    backbone: str = "tiny"  # pixel encoder: tiny (a 2-stage ResNet) | resnet18 | resnet50

    @property
    def ffn(self) -> int:
        return self.intermediate or 4 * self.hidden

    def stream_layers(self) -> tuple[int, int, int]:
        """(language, region, cross) layer counts of a two-stream encoder."""
        return self.l_layers or self.layers, self.r_layers or self.layers, self.x_layers or self.layers

    def num_params_estimate(self) -> int:
        """Transformer-layer parameters (12 h^2 per layer): what MFU counts as model FLOPs."""
        if self.encoder in ("lxmert", "vilbert"):
            lang, reg, cross = self.stream_layers()
            return 12 * self.hidden * self.hidden * (lang + reg + 2 * 2 * cross)
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
    """Base of every encoder: `forward(batch) == encode(embed(batch), batch)`.

    `word_embeddings` is the sub-word table the token head's decoder is tied to (BERT ties them,
    and Hugging Face's pretraining models expect the tie, so the export maps 1:1).
    """

    def word_embeddings(self) -> nn.Embedding:
        raise NotImplementedError

    def embed(self, batch: dict[str, torch.Tensor]) -> Embedded:
        raise NotImplementedError

    def encode(self, emb: Embedded, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        return self.encode(self.embed(batch), batch)


class Block(nn.Module):
    """A pre-norm transformer layer whose attention is `F.scaled_dot_product_attention`."""

    def __init__(self, hidden: int, heads: int, dropout: float, ffn: int = 0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        ffn = ffn or 4 * hidden
        self.mlp = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
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


# The mean 7-d box (x1, y1, x2, y2, w, h, area) of a box with uniformly random corners.
BOX_MEAN = (1 / 3, 1 / 3, 2 / 3, 2 / 3, 1 / 3, 1 / 3, 1 / 9)


def centered_box(geometry: torch.Tensor) -> torch.Tensor:
    """The 7-d box minus `BOX_MEAN`, what the box projection reads.

    Why: box coordinates are all positive and alike (0..1), so W g is nearly the same vector
    W mu for every region, and the LayerNorm after the projection (UNITER, LXMERT) scales it to
    a full-norm constant added to every region token; every update of W moves that constant too
    (uncentred inputs). Measured on tiny ITM alone (seed 0): uncentred, or with a constant box, at
    chance for 1500 steps; centred or zero, below chance after ~270 (other seeds: at chance for 600
    either way, so it is conditioning, not a cure for the pair tasks' plateau). Centring is exact
    to undo: W (g - mu) + b = W g + (b - W mu), so the layer is still UNITER's / LXMERT's and the
    Hugging Face export folds mu into the bias (export_hf.py)."""
    return geometry - torch.tensor(BOX_MEAN, dtype=geometry.dtype, device=geometry.device)


class RegionEmbedding(nn.Module):
    """Feature and 7-d box (centred, `centered_box`), each projected and LayerNormed, summed
    (UNITER's image embedder).

    `geometry=False` drops the box term (VisualBERT's original embeds the feature alone).
    """

    def __init__(self, feature_dim: int, hidden: int, dropout: float, geometry: bool = True) -> None:
        super().__init__()
        self.feat = nn.Linear(feature_dim, hidden)
        self.geom = nn.Linear(GEOM_DIM, hidden) if geometry else None
        self.norm_feat, self.norm = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.norm_geom = nn.LayerNorm(hidden) if geometry else None
        self.drop = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor, geometry: torch.Tensor, type_embedding: torch.Tensor) -> torch.Tensor:
        x = self.norm_feat(self.feat(features))
        if self.geom is not None:
            x = x + self.norm_geom(self.geom(centered_box(geometry)))
        return self.drop(self.norm(x + type_embedding))


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) bool keep-mask -> (B, 1, 1, L) additive mask, BERT's convention (0 keep, dtype min drop)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def __getattr__(name: str):  # ENCODERS lives with the encoders; importing it here stays backward compatible
    if name == "ENCODERS":
        from laitkit.pipeline.pretrain.encoders import ENCODERS

        return ENCODERS
    raise AttributeError(name)


class TokenHead(nn.Module):
    """BERT's masked-token head: dense, GELU, LayerNorm, then a decoder tied to the word embeddings, + bias.

    Why BERT's exact layout: `LxmertForPreTraining` / `VisualBertForPreTraining` have it
    (`cls.predictions.transform.{dense,LayerNorm}`, `decoder`, `bias`), so export is a renaming.
    """

    def __init__(self, hidden: int, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.decoder = nn.Linear(hidden, word_embeddings.num_embeddings, bias=False)
        self.decoder.weight = word_embeddings.weight
        self.bias = nn.Parameter(torch.zeros(word_embeddings.num_embeddings))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(h)))) + self.bias


class RegionHead(nn.Module):
    """Masked-region feature regression head, laid out as LXMERT's visual head (transform + `feat` decoder)."""

    def __init__(self, hidden: int, feature_dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.decoder = nn.Linear(hidden, feature_dim)

    def transform(self, h: torch.Tensor) -> torch.Tensor:
        """LXMERT's `obj_predict_head.transform`: shared by its feature, object and attribute decoders."""
        return self.norm(F.gelu(self.dense(h)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(h))


class Heads(nn.Module):
    """Prediction heads shared by objectives: `token(h)` -> vocab logits, `region(h)` -> feature_dim,
    `itm(pooled)` -> 2 logits. The pooler (dense + tanh, BERT's) belongs to the encoder: `pooled` is its
    output, so the ITM head is BERT's `seq_relationship` linear layer."""

    def __init__(self, cfg: ModelConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.token = TokenHead(cfg.hidden, word_embeddings)
        self.region = RegionHead(cfg.hidden, cfg.feature_dim)
        self.itm = nn.Linear(cfg.hidden, 2)


class Pooler(nn.Module):
    """BERT's pooler: dense + tanh over the first ([CLS]) state."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, first: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(first))


def bert_init(module: nn.Module) -> None:
    """BERT's initialisation (normal, std 0.02; LayerNorm 1/0). Why: PyTorch's default N(0, 1)
    embeddings, tied to the token decoder, start MLM with logits of size sqrt(hidden)."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PretrainModel(nn.Module):
    """Encoder + heads; `forward` returns one loss per objective that has targets in the batch."""

    def __init__(self, cfg: ModelConfig, tasks: tuple[str, ...]) -> None:
        super().__init__()
        from laitkit.pipeline.pretrain.encoders import ENCODERS
        from laitkit.pipeline.pretrain.objectives import build_objectives

        if cfg.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {cfg.encoder!r}; known: {', '.join(ENCODERS)}")
        self.cfg = cfg
        self.encoder = ENCODERS[cfg.encoder](cfg)
        self.heads = Heads(cfg, self.encoder.word_embeddings())
        self.apply(bert_init)
        self.objectives = build_objectives(tasks, cfg)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.encoder(batch)
        losses: dict[str, torch.Tensor] = {}
        for name, objective in self.objectives.items():
            loss = objective.loss(self, out, batch)
            if loss is not None:
                losses[name] = loss
        return losses

    def logged(self) -> dict[str, float]:
        """The objectives' explanatory numbers of the last forward (metrics.jsonl logs them beside
        the losses; they are never added to the loss)."""
        return {k: v for objective in self.objectives.values() for k, v in objective.logged.items()}

    @torch.no_grad()
    def itm_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p(match) per pair: the retrieval score (UNITER ranks candidates by it)."""
        out = self.encoder(batch)
        return torch.log_softmax(self.heads.itm(out.pooled).float(), dim=-1)[:, 1]
