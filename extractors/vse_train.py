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


def train_vse(
    pairs: Sequence[VSEPair], cfg: VSEConfig = VSEConfig(), *, steps: int = 1500, batch_size: int = 128,
    lr: float = 2e-3, seed: int = 0, data: dict[str, Any] | None = None, log_every: int = 0,
) -> tuple[VSEModel, list[float]]:
    """Train on matched pairs; returns the model (eval mode) and the loss of every step."""
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
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    bs = min(batch_size, len(pairs))
    losses: list[float] = []
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
    model.data["train_seconds"] = round(time.perf_counter() - t0, 1)
    return model.eval(), losses
