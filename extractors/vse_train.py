"""Training the visual-semantic embedding on matched pairs: tokenizer, batches, ranking loss.

Why in-batch negatives only: every other caption of a batch is a negative for an image (and vice
versa), so no negative mining pass is needed and one step costs one forward of each tower. With
VSE++ the hardest of them carries the gradient. Inputs are precomputed once (boxes padded into one
tensor, captions tokenized once, thumbnails decoded once): a step only indexes tensors.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from laitkit.errors import UserError
from laitkit.extractors.vse_data import VSEPair
from laitkit.extractors.vse_inputs import RegionBatch, collate_boxes, thumbnails
from laitkit.extractors.vse_loss import ranking_loss
from laitkit.extractors.vse_model import VSEConfig, VSEModel
from laitkit.extractors.vse_tokenizer import WordPiece


def image_inputs(model_cfg: VSEConfig, pairs: Sequence[VSEPair]) -> Any:
    """What `VSEModel.embed_images` takes for these pairs: their BoxSets, or a thumbnail tensor."""
    if model_cfg.image == "regions":
        missing = [p.key for p in pairs if p.boxes is None]
        if missing:
            raise UserError(f"{len(missing)} pair(s) have no region features (e.g. {missing[0]!r}): "
                            "run the regions stage first, or train with --image pixels")
        return [p.boxes for p in pairs]
    thumbs, idx = thumbnails([p.image for p in pairs])
    if len(idx) != len(pairs):
        raise UserError(f"{len(pairs) - len(idx)} pair(s) have no decodable image bytes")
    return thumbs


def fit_config(cfg: VSEConfig, pairs: Sequence[VSEPair]) -> VSEConfig:
    """Region width and id ranges come from the data (any detector), not from the defaults."""
    if cfg.image != "regions" or not pairs or pairs[0].boxes is None:
        return cfg
    sets = [p.boxes for p in pairs if p.boxes is not None]
    feat = max(s.features.shape[1] for s in sets)
    obj = max((int(s.obj_ids.max()) + 1 for s in sets if len(s.obj_ids)), default=1)
    attr = max((int(s.attr_ids.max()) + 1 for s in sets if len(s.attr_ids)), default=1)
    return dataclasses.replace(cfg, feat_dim=feat, num_obj=obj, num_attr=attr)


def _take(images: Any, idx: np.ndarray) -> Any:
    """Rows `idx` of the precomputed inputs: a thumbnail tensor, or a padded RegionBatch."""
    t = torch.from_numpy(idx)
    if isinstance(images, torch.Tensor):
        return images[t]
    n = int(images.mask[t].sum(1).max())
    return RegionBatch(*(x[t][:, :n] for x in (images.features, images.geom, images.obj_ids, images.attr_ids,
                                                images.mask)))


@torch.no_grad()
def _val_r_at_1(model: VSEModel, images: Any, ids: torch.Tensor, lengths: torch.Tensor, chunk: int = 512) -> float:
    """Image→text R@1 on the held-out pairs' precomputed inputs (eval mode; the caller resets it)."""
    model.eval()
    n = len(lengths)
    iv = torch.cat([model.image_enc(_take(images, np.arange(i, min(i + chunk, n)))) for i in range(0, n, chunk)])
    tv = torch.cat([model.text_enc(ids[i : i + chunk][:, : int(lengths[i : i + chunk].max())], lengths[i : i + chunk])
                    for i in range(0, n, chunk)])  # fmt: skip
    sim = iv @ tv.t()
    return float((sim.argmax(1) == torch.arange(n)).float().mean())


def train_vse(
    pairs: Sequence[VSEPair], cfg: VSEConfig = VSEConfig(), *, steps: int = 1500, batch_size: int = 128,
    lr: float = 2e-3, seed: int = 0, data: dict[str, Any] | None = None, log_every: int = 0,
    val: Sequence[VSEPair] | None = None, eval_every: int = 50, patience: int = 3, min_delta: float = 0.005,
) -> tuple[VSEModel, list[float]]:
    """Train on matched pairs; returns the model (eval mode) and the loss of every step.

    With `val`, image→text R@1 on those held-out pairs is measured every `eval_every` steps; after
    `patience` measurements without a gain of `min_delta` training stops, and the best measured
    weights are kept. Why: the steps a recipe needs depend on the data and the machine's load
    does not; a plateau is where more CPU buys nothing (the bench's time goal), and the best
    held-out weights are never worse than the last ones.
    """
    if len(pairs) < 2:
        raise UserError("relevance train: need at least 2 pairs")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = WordPiece.train((p.caption for p in pairs), vocab_size=cfg.vocab_size)
    cfg = fit_config(cfg, pairs)
    model = VSEModel(cfg, tok)
    model.data = {**(data or {}), "pairs": len(pairs), "steps": steps, "seed": seed}
    images = image_inputs(cfg, pairs)
    if cfg.image == "regions":  # pad and tokenize once: a step then only indexes tensors
        images = collate_boxes(images, cfg.feat_dim)
    ids, lengths = tok.batch([p.caption for p in pairs], cfg.max_len)
    if val is not None and len(val) >= 2:
        val_images = image_inputs(cfg, val)
        if cfg.image == "regions":
            val_images = collate_boxes(val_images, cfg.feat_dim)
        val_ids, val_lengths = tok.batch([p.caption for p in val], cfg.max_len)
    else:
        val = None
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    bs = min(batch_size, len(pairs))
    losses: list[float] = []
    curve: list[tuple[int, float]] = []
    best: tuple[float, dict[str, torch.Tensor] | None] = (-1.0, None)
    stale = 0
    t0 = time.perf_counter()
    for step in range(steps):
        model.train()
        idx = rng.choice(len(pairs), size=bs, replace=False)
        t = torch.from_numpy(idx)
        txt = model.text_enc(ids[t][:, : int(lengths[t].max())], lengths[t])
        sim = model.image_enc(_take(images, idx)) @ txt.t()
        loss = ranking_loss(sim, cfg.loss, cfg.margin, cfg.temperature)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}/{steps} loss {np.mean(losses[-log_every:]):.4f} "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
        if val is not None and ((step + 1) % eval_every == 0 or step + 1 == steps):
            r1 = _val_r_at_1(model, val_images, val_ids, val_lengths)
            curve.append((step + 1, round(r1, 4)))
            if r1 > best[0] + min_delta or best[1] is None:
                best, stale = (r1, {k: v.detach().clone() for k, v in model.state_dict().items()}), 0
            else:
                stale += 1
                if r1 > best[0]:  # a small gain is not progress, but the better weights are kept
                    best = (r1, {k: v.detach().clone() for k, v in model.state_dict().items()})
            if stale >= patience:
                break
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.data["train_seconds"] = round(time.perf_counter() - t0, 1)
    model.data["steps_run"] = len(losses)
    if curve:
        model.data["val_r_at_1_curve"] = curve
        model.data["val_r_at_1"] = best[0]
    return model.eval(), losses
