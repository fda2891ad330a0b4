"""Per-pair objectives on unmasked samples: image-text matching with random or hard negatives,
Oscar's polluted-tags contrastive loss, and UNITER's word-region alignment by optimal transport.

The data workers decide the pairs (masking.py): `itm_labels` / `itm_hard_labels` are 1 for the
image's own caption and 0 for a swapped one; `oscar_labels` are 1 for the image's own tags, 0
for another image's. ITM-hard has two ways to find its negative (`itm_hard_mode`):
- `tags` (default): the data workers swap in the caption of the image whose detector tags overlap
  most; no extra model pass.
- `model` (UNITER's hard-negative training): the data workers only mark which samples become
  negatives (`itm_hard_negative`); here each such image scores up to `candidates` other captions
  of the batch with the model itself, without grad, and trains on the highest-scoring wrong one.
  Costs one no-grad pass over image x candidate pairs and one pass over the chosen negatives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from laitkit.pipeline.pretrain.ipot import cosine_cost, ipot, ot_distance
from laitkit.pipeline.pretrain.masking import IGNORE
from laitkit.pipeline.pretrain.model import EncoderOutput, ModelConfig
from laitkit.pipeline.pretrain.objectives_base import Objective, pooled_loss

if TYPE_CHECKING:
    from laitkit.pipeline.pretrain.model import PretrainModel


class ITM(Objective):
    """Image-text matching on the pooled state, shared head, random negatives (half of ITM samples)."""

    name, label_key = "itm", "itm_labels"

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return pooled_loss(model.heads.itm, out.pooled, batch.get(self.label_key))


class HardITM(ITM):
    """ITM whose negatives are the most confusable caption in the batch: by tag overlap (Jaccard,
    chosen by the data workers) or by the model's own matching score (`itm_hard_negative` set)."""

    name, label_key = "itm_hard", "itm_hard_labels"
    candidates = 16  # captions scored per image in model mode (UNITER scores a pool per positive)

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        negative = batch.get("itm_hard_negative")
        if negative is None:  # tags mode: the pairs are already laid out
            return super().loss(model, out, batch)
        labels = batch[self.label_key]
        rows = (labels != IGNORE).nonzero().flatten()
        if not len(rows):
            return None
        positives = rows[~negative[rows]]
        images, pool = rows[negative[rows]], rows  # every itm_hard sample carries its own caption
        chosen = self.hardest(model, batch, images, pool)[0] if len(images) else images
        found = chosen >= 0  # an image with no other caption in the batch has no negative this step
        logits = [model.heads.itm(out.pooled[positives])]
        if found.any():
            swapped = model.encoder(pair_inputs(batch, images[found], chosen[found])).pooled
            logits.append(model.heads.itm(swapped))
        target = torch.cat([labels[positives], torch.zeros_like(images[found])])
        if not len(target):
            return None
        return F.cross_entropy(torch.cat(logits).float(), target)

    @torch.no_grad()
    def hardest(
        self, model: PretrainModel, batch: dict[str, torch.Tensor], images: torch.Tensor, pool: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """(chosen caption row per image or -1, candidate rows per image, their scores).

        Candidates are rows of `pool` whose caption differs from the image's own (never the
        positive, nor a duplicate of it); at most `candidates` of them, a random subset. Scores are
        log p(match) in eval mode (no dropout), so the choice is the model's, not the noise's."""
        caps = [tuple(batch["input_ids"][r][batch["caption_mask"][r]].tolist()) for r in range(len(batch["input_ids"]))]
        cands = []
        for i in images.tolist():
            c = pool[torch.tensor([caps[j] != caps[i] for j in pool.tolist()], dtype=torch.bool, device=pool.device)]
            if len(c) > self.candidates:
                c = c[torch.randperm(len(c), device=c.device)[: self.candidates]]
            cands.append(c)
        sizes = [len(c) for c in cands]
        chosen = torch.full_like(images, -1)
        scores: list[torch.Tensor] = [c.new_zeros(0, dtype=torch.float32) for c in cands]
        if sum(sizes):
            img = torch.repeat_interleave(images, torch.tensor(sizes, device=images.device))
            was = model.training
            model.eval()
            try:
                flat = model.itm_scores(pair_inputs(batch, img, torch.cat(cands)))
            finally:
                model.train(was)
            scores = list(flat.split(sizes))
            for k, (c, sc) in enumerate(zip(cands, scores, strict=True)):
                if len(c):
                    chosen[k] = c[int(sc.argmax())]
        return chosen, cands, scores


IMAGE_KEYS = ("features", "geometry", "region_mask", "obj_ids", "image")  # what an image brings to a pair


def pair_inputs(batch: dict[str, torch.Tensor], images: torch.Tensor, captions: torch.Tensor) -> dict:
    """Encoder inputs for the pairs (image `images[m]`, caption of row `captions[m]`) of a batch.

    Row layout as the data workers write it: `[CLS] caption [SEP]` (segment 0) from the caption's
    row, then the image's own tags and closing `[SEP]` (segment 1) from the image's row; regions
    (or pixels) from the image's row. Both rows must be unmasked pair samples."""
    ids, seg, text = batch["input_ids"], batch["segment"], batch["text_mask"]
    heads = [ids[j, : int(batch["caption_mask"][j].sum()) + 2] for j in captions.tolist()]
    tails = [ids[i][(seg[i] == 1) & text[i]] for i in images.tolist()]
    width = max(len(h) + len(t) for h, t in zip(heads, tails, strict=True))
    m = len(heads)
    new_ids = ids.new_zeros((m, width))
    new_seg = seg.new_zeros((m, width))
    new_mask = torch.zeros((m, width), dtype=torch.bool, device=ids.device)
    for r, (h, t) in enumerate(zip(heads, tails, strict=True)):
        new_ids[r, : len(h)], new_ids[r, len(h) : len(h) + len(t)] = h, t
        new_seg[r, len(h) : len(h) + len(t)] = 1
        new_mask[r, : len(h) + len(t)] = True
    out = {"input_ids": new_ids, "segment": new_seg, "text_mask": new_mask}
    out.update({k: batch[k][images] for k in IMAGE_KEYS if k in batch})
    return out


class OscarContrastive(Objective):
    """Oscar's contrastive loss: is the tag sequence the image's own (1) or polluted (0)?
    A binary head of its own on the pooled state; half of its samples are polluted."""

    name = "oscar_contrastive"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.head = nn.Linear(cfg.hidden, 2)

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return pooled_loss(self.head, out.pooled, batch.get("oscar_labels"))


class WRA(Objective):
    """Word-region alignment (UNITER): the IPOT transport distance between the caption's word
    states and the regions' states, lowered for matched pairs and raised for swapped ones:
    (sum over matched - sum over swapped) / pairs, UNITER's `ot_loss` (pretrain.py). Cost is
    1 - cosine, so the loss is bounded. No head: it shapes the encoder's states directly. fp32
    throughout (autocast off).

    Why `wra_gap` is logged beside it: with a handful of pairs per batch the loss is mostly the
    batch's (matched - swapped) count share times the mean distance (measured on the uniter preset:
    correlation 0.94 with that share), and the mean distance shrinks as the states align, so the
    loss's trend says little about alignment. UNITER logs the matched and swapped means apart
    (`ot_pos`, `ot_neg`); `wra_gap` is their difference, the part the loss actually lowers."""

    name = "wra"
    beta, iterations = 0.5, 50

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        self.logged = {}
        matched = batch.get("pair_matched")
        if matched is None:
            return None
        t = out.text.shape[1]
        words = batch["caption_mask"][:, :t]
        sel = (matched != IGNORE) & words.any(1) & batch["region_mask"].any(1)
        if not sel.any():
            return None
        with torch.autocast(out.text.device.type, enabled=False):
            cost = cosine_cost(out.text[sel], out.regions[sel])
            plan = ipot(cost, words[sel], batch["region_mask"][sel], beta=self.beta, iterations=self.iterations)
            dist = ot_distance(cost, plan)
        pos = (matched[sel] == 1).to(dist.device)
        if pos.any() and not pos.all():
            gap = dist[pos].mean() - dist[~pos].mean()
            self.logged = {"wra_gap": float(gap.detach())}
        sign = torch.where(pos, 1.0, -1.0)
        return (sign * dist).sum() / dist.shape[0]


MATCHING_OBJECTIVES = (ITM, HardITM, OscarContrastive, WRA)
