"""The two towers of the visual-semantic embedding, each ending in an L2-normalised vector.

Why these: Kiros et al. embed images and sentences into one space where cosine is the score. The
image side here reads the region features the pipeline already computed (per-box MLP over feature
⊕ geometry ⊕ object/attribute embeddings, then attention or mean pooling over boxes), or, for runs
without regions, a small CNN over a 64x64 thumbnail. The text side is a GRU over WordPiece ids
(the paper's LSTM, cheaper on CPU), or the paper's linear bag-of-words encoder (mean of word
vectors, one linear map): the baseline that shows what word order buys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from laitkit.extractors.vse_inputs import GEOM_DIM, RegionBatch


class RegionEncoder(nn.Module):
    """Boxes → one vector: per-box MLP, then attention pooling (a learnt query) or the masked mean."""

    def __init__(self, feat_dim: int, num_obj: int, num_attr: int, dim: int, pool: str = "attention") -> None:
        super().__init__()
        self.num_obj, self.num_attr, self.pool = num_obj, num_attr, pool
        self.obj = nn.Embedding(num_obj + 1, 32)  # last row: an id outside the vocabulary
        self.attr = nn.Embedding(num_attr + 2, 32)  # ... and "no attribute" (-1)
        self.box = nn.Sequential(
            nn.Linear(feat_dim + GEOM_DIM + 64, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU()
        )
        self.score = nn.Linear(dim, 1)
        self.out = nn.Linear(dim, dim)

    def forward(self, rb: RegionBatch) -> torch.Tensor:
        obj = rb.obj_ids.clamp(0, self.num_obj)
        attr = torch.where(rb.attr_ids < 0, self.num_attr + 1, rb.attr_ids.clamp(0, self.num_attr))
        x = torch.cat([rb.features, rb.geom, self.obj(obj), self.attr(attr)], dim=-1)
        h = self.box(x)  # (B, N, dim)
        mask = rb.mask
        if self.pool == "attention":
            logits = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf"))
            pooled = (torch.softmax(logits, dim=1).unsqueeze(-1) * h).sum(1)
        else:
            m = mask.unsqueeze(-1).float()
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return F.normalize(self.out(pooled), dim=-1)


class PixelEncoder(nn.Module):
    """A 4-block CNN over the 64x64 thumbnail, for runs that have no region features."""

    def __init__(self, dim: int) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        self.net = nn.Sequential(block(3, 32), block(32, 64), block(64, 96), block(96, 128), nn.Flatten())
        self.out = nn.Linear(128 * 4 * 4, dim)

    def forward(self, thumbs: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.out(self.net(thumbs)), dim=-1)


class GRUTextEncoder(nn.Module):
    """WordPiece ids → GRU → last hidden state of each caption (packed, so padding never counts)."""

    def __init__(self, vocab: int, dim: int, pad_id: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=pad_id)
        self.gru = nn.GRU(dim, dim, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * dim, dim)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.gru(packed)  # (2, B, dim)
        return F.normalize(self.out(torch.cat([h[0], h[1]], dim=-1)), dim=-1)

    def word_vector(self, ids: torch.Tensor) -> torch.Tensor:
        """The embedding of a lone word (its WordPiece ids as one caption), for arithmetic."""
        return self.forward(ids.unsqueeze(0), torch.tensor([ids.numel()]))[0]


class BowTextEncoder(nn.Module):
    """The paper's linear bag-of-words encoder: mean of word vectors, one linear map, no order."""

    def __init__(self, vocab: int, dim: int, pad_id: int) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab, dim, padding_idx=pad_id)
        self.out = nn.Linear(dim, dim)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m = (ids != self.pad_id).unsqueeze(-1).float()
        mean = (self.embed(ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
        return F.normalize(self.out(mean), dim=-1)

    def word_vector(self, ids: torch.Tensor) -> torch.Tensor:
        return self.forward(ids.unsqueeze(0), torch.tensor([ids.numel()]))[0]
