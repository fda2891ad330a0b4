"""Optimal transport by IPOT (inexact proximal point), batched with padding masks.

Why IPOT: UNITER's word-region alignment (WRA) needs the transport plan between a caption's
words and an image's regions every step; IPOT (Xie et al., 2019) reaches the exact optimal plan
with a few Sinkhorn-like proximal iterations and no entropy bias, and it is a handful of batched
matrix products. It always runs in fp32: exp(-C/beta) under bf16 loses the plan.
"""

from __future__ import annotations

import torch


def cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, M, N) cost 1 - cos(x_i, y_j), UNITER's WRA ground cost (in [0, 2])."""
    x = torch.nn.functional.normalize(x.float(), dim=-1, eps=1e-6)
    y = torch.nn.functional.normalize(y.float(), dim=-1, eps=1e-6)
    return 1.0 - x @ y.transpose(1, 2)


@torch.no_grad()
def ipot(
    cost: torch.Tensor,
    x_mask: torch.Tensor,
    y_mask: torch.Tensor,
    *,
    mu: torch.Tensor | None = None,
    nu: torch.Tensor | None = None,
    beta: float = 0.5,
    iterations: int = 50,
    inner: int = 1,
) -> torch.Tensor:
    """The transport plan T (B, M, N) between the valid rows and columns of `cost`.

    `x_mask` (B, M) / `y_mask` (B, N) mark valid points; marginals `mu`/`nu` default to uniform
    over them (UNITER). Padded rows and columns of T are zero. Proximal step: T <- diag(d) (G * T)
    diag(s), with G = exp(-C / beta) and d, s scaling the rows and columns to the marginals.
    """
    c = cost.float()
    xm, ym = x_mask.to(c.dtype), y_mask.to(c.dtype)
    if mu is None:
        mu = xm / xm.sum(1, keepdim=True).clamp_min(1.0)
    if nu is None:
        nu = ym / ym.sum(1, keepdim=True).clamp_min(1.0)
    mu, nu = mu.float() * xm, nu.float() * ym
    joint = xm[:, :, None] * ym[:, None, :]
    g = torch.exp(-c / beta) * joint
    t = joint.clone()
    s = ym / ym.sum(1, keepdim=True).clamp_min(1.0)
    tiny = 1e-30
    d = torch.zeros_like(mu)
    for _ in range(iterations):
        q = g * t
        for _ in range(inner):
            d = mu / (q @ s[:, :, None]).squeeze(2).clamp_min(tiny)
            s = nu / (q.transpose(1, 2) @ d[:, :, None]).squeeze(2).clamp_min(tiny)
        t = d[:, :, None] * q * s[:, None, :]
    return t * joint


def ot_distance(cost: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
    """<C, T> per batch row; gradients flow through the cost only (the plan is a constant)."""
    return (cost.float() * plan.detach()).sum(dim=(1, 2))
