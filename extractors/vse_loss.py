"""Ranking losses over a batch's cosine-similarity matrix (row i, column i is the true pair).

Why two: VSE++ (Faghri et al.) sums the hinge only over the hardest negative of each row and
column, which is what lifts R@1 over the sum-of-hinges of Kiros et al.; InfoNCE (a softmax over
the row and the column) gives gradients from every negative and is steadier early in training.
`loss: both` adds them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def vse_hinge(sim: torch.Tensor, margin: float = 0.2, hardest: bool = True) -> torch.Tensor:
    pos = sim.diag()
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    cost_t = (margin + sim - pos[:, None]).clamp(min=0).masked_fill(eye, 0)  # image i vs wrong captions
    cost_i = (margin + sim - pos[None, :]).clamp(min=0).masked_fill(eye, 0)  # caption j vs wrong images
    if hardest:
        return (cost_t.max(1).values + cost_i.max(0).values).mean()
    return (cost_t.sum(1) + cost_i.sum(0)).mean()


def info_nce(sim: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    target = torch.arange(sim.shape[0], device=sim.device)
    logits = sim / temperature
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def ranking_loss(sim: torch.Tensor, kind: str, margin: float, temperature: float) -> torch.Tensor:
    if kind == "vse++":
        return vse_hinge(sim, margin)
    if kind == "infonce":
        return info_nce(sim, temperature)
    if kind == "both":
        return vse_hinge(sim, margin) + info_nce(sim, temperature)
    raise ValueError(f"unknown loss {kind!r}")
