"""Objectives over masked regions: feature regression (MRFR), classification against the
detector's label (MRC) or its class distribution (MRC-kl), LXMERT's attribute prediction, and
UNIMO's image-only regression.

All predict at the same masked regions (`mrm_mask`; the features there were zeroed by the data
workers), as UNITER and LXMERT predict several targets of one masked region; each reads its own
mask or labels (`mrfr_mask`, `mrc_labels`, `mrc_kl_mask`, `attr_labels`), set only when its task
is in the batch, so under task sampling only the drawn task scores. Class columns
follow the schema's soft distribution layout: column 0 is background, column c+1 is class c.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from laitkit.pipeline.pretrain.masking import IGNORE
from laitkit.pipeline.pretrain.model import EncoderOutput, ModelConfig
from laitkit.pipeline.pretrain.objectives_base import Objective, mlp_head

if TYPE_CHECKING:
    from laitkit.pipeline.pretrain.model import PretrainModel


class MRFR(Objective):
    """Masked region feature regression (UNITER): MSE between the region head and the zeroed feature."""

    name = "mrfr"
    mask_key = "mrfr_mask"

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        sel = batch.get(self.mask_key)
        if sel is None or not sel.any():
            return None
        return F.mse_loss(model.heads.region(out.regions[sel]).float(), batch["mrm_target"][sel].float())


class UnimoImage(MRFR):
    """UNIMO's image-only samples: the caption removed, masked regions regressed from regions alone."""

    name = "unimo_image"
    mask_key = "unimo_image_mask"


def _need(count: int, name: str, what: str) -> int:
    if count <= 0:
        raise ValueError(f"pretraining task {name} needs the detector's {what} (ModelConfig.{what}, from the shards)")
    return count


class _Classify(Objective):
    """A classifier over masked regions, with labels IGNORE elsewhere.

    Elsewhere a head of its own (transform + output layer). With the LXMERT encoder only the output
    layer is its own: LXMERT's visual head runs one transform (`heads.region.transform`) under its
    feature, object and attribute decoders, so MRC and attributes are exactly its `obj` / `attr`
    decoders and export to `obj_predict_head.decoder_dict.{obj,attr}` (export_hf.py)."""

    label_key = ""

    def _build(self, cfg: ModelConfig, width: int) -> None:
        self.width = width
        self.shared_transform = cfg.encoder == "lxmert"
        self.head = nn.Linear(cfg.hidden, width) if self.shared_transform else mlp_head(cfg.hidden, width)

    def logits(self, model: PretrainModel, h: torch.Tensor) -> torch.Tensor:
        return self.head(model.heads.region.transform(h) if self.shared_transform else h)

    def _labels(self, batch: dict[str, torch.Tensor], width: int) -> torch.Tensor | None:
        labels = batch.get(self.label_key)
        if labels is None:
            return None
        return torch.where((labels >= 0) & (labels < width), labels, torch.full_like(labels, IGNORE))

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        labels = self._labels(batch, self.width)
        if labels is None:
            return None
        sel = labels != IGNORE
        if not sel.any():
            return None
        return F.cross_entropy(self.logits(model, out.regions[sel]).float(), labels[sel])


class MRC(_Classify):
    """Masked region classification (UNITER MRC, VL-BERT/ImageBERT masked object classification):
    cross-entropy against the detector's label. A label beyond the head (a class the corpus scan
    did not see) is ignored, never an index error."""

    name, label_key = "mrc", "mrc_labels"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self._build(cfg, _need(cfg.num_classes, self.name, "num_classes") + 1)


class Attribute(_Classify):
    """LXMERT's attribute prediction for masked regions (regions without an attribute are ignored)."""

    name, label_key = "attr", "attr_labels"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self._build(cfg, _need(cfg.num_attributes, self.name, "num_attributes"))


class MRCKL(Objective):
    """MRC-kl (UNITER): KL divergence from the detector's class distribution to the head's.

    The shards keep a top-k sparse distribution (`soft_ids`/`soft_probs`); it is scattered into a
    dense target on the device, so the loader never ships (B, R, classes) floats."""

    name = "mrc_kl"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.width = _need(cfg.num_classes, self.name, "num_classes") + 1
        self.head = mlp_head(cfg.hidden, self.width)

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        sel = batch.get("mrc_kl_mask")
        if sel is None or not sel.any():
            return None
        ids, probs = batch["mrc_soft_ids"][sel], batch["mrc_soft_probs"][sel].float()
        probs = torch.where(ids < self.width, probs, torch.zeros_like(probs))
        target = torch.zeros(ids.shape[0], self.width, device=probs.device)
        target.scatter_add_(1, ids.clamp(0, self.width - 1), probs)
        target = target / target.sum(-1, keepdim=True).clamp_min(1e-12)
        logp = F.log_softmax(self.head(out.regions[sel]).float(), dim=-1)
        return F.kl_div(logp, target, reduction="batchmean")


REGION_OBJECTIVES = (MRFR, MRC, MRCKL, Attribute, UnimoImage)
