"""LXMERT: language (L), object-relationship (R) and cross-modality (X) encoders, built on
`transformers.LxmertModel`.

Why on transformers: its `LxmertModel` is LXMERT exactly (9/5/5 at base), so a laitkit LXMERT
checkpoint exports to `LxmertForPreTraining` by renaming (export_hf.py). The model's own
`forward` runs embeddings and layers in one call; here `embed` runs its word and visual-feature
embedders and `encode` its three layer stacks and pooler, the same computation split where
VILLA perturbs it. The 7-d box (x1, y1, x2, y2, w, h, area) is the visual position input
(`visual_pos_dim=7`; LXMERT's release uses the first 4), centred before the projection
(model.centered_box; the export folds the centring into `box_fc.bias`).
"""

from __future__ import annotations

import torch
from torch import nn

from laitkit.pipeline.pretrain.masking import GEOM_DIM
from laitkit.pipeline.pretrain.model import (
    Embedded,
    Encoder,
    EncoderOutput,
    ModelConfig,
    additive_mask,
    centered_box,
)


def lxmert_config(cfg: ModelConfig, *, obj: bool = False, attr: bool = False):
    """The `LxmertConfig` of a laitkit model config (also what the export writes).

    `obj` / `attr`: the run trained the `mrc` / `attr` objectives, so the exported visual head has
    LXMERT's object (detector classes + background, column 0) and attribute decoders too."""
    from transformers import LxmertConfig

    lang, reg, cross = cfg.stream_layers()
    return LxmertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden, num_attention_heads=cfg.heads,
        intermediate_size=cfg.ffn, hidden_act="gelu", hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout, max_position_embeddings=cfg.max_text, type_vocab_size=2,
        l_layers=lang, r_layers=reg, x_layers=cross, visual_feat_dim=cfg.feature_dim, visual_pos_dim=GEOM_DIM,
        task_qa=False, task_obj_predict=True, visual_obj_loss=obj, visual_attr_loss=attr,
        num_object_labels=cfg.num_classes + 1 if obj else 1600, num_attr_labels=cfg.num_attributes if attr else 400,
        visual_feat_loss=True, task_mask_lm=True, task_matched=True,
    )


class LxmertEncoder(Encoder):
    """Two streams: text through L layers, regions through R layers, both through X cross layers."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from transformers import LxmertModel

        self.cfg = cfg
        self.lxmert = LxmertModel(lxmert_config(cfg))

    def word_embeddings(self) -> nn.Embedding:
        return self.lxmert.embeddings.word_embeddings

    def embed(self, batch: dict[str, torch.Tensor]) -> Embedded:
        t = min(batch["input_ids"].shape[1], self.cfg.max_text)
        seg = batch["segment"][:, :t].clamp(max=1)
        text = self.lxmert.embeddings(batch["input_ids"][:, :t], seg)
        regions = self.lxmert.encoder.visn_fc(batch["features"], centered_box(batch["geometry"]))
        return Embedded(text=text, regions=regions)

    def encode(self, emb: Embedded, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        t = emb.text.shape[1]
        enc = self.lxmert.encoder
        lang, vis = emb.text, emb.regions
        lmask = additive_mask(batch["text_mask"][:, :t], lang.dtype)
        vmask = additive_mask(batch["region_mask"], vis.dtype)
        for layer in enc.layer:
            lang = layer(lang, lmask)[0]
        for layer in enc.r_layers:
            vis = layer(vis, vmask)[0]
        for layer in enc.x_layers:
            lang, vis = layer(lang, lmask, vis, vmask)[:2]
        return EncoderOutput(text=lang, regions=vis, pooled=self.lxmert.pooler(lang))
