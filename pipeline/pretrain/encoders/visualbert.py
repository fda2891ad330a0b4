"""VisualBERT: one BERT over [caption; regions], built on `transformers.VisualBertModel`.

Why on transformers: `VisualBertModel` is VisualBERT exactly, so the export to
`VisualBertForPreTraining` is a renaming. As in the paper, a region is its projected feature plus
a visual segment and a visual position embedding, with no box geometry. `embed` runs the model's
embedder once over text and regions (its LayerNorm is per position, so splitting its output at
the caption length gives the two halves); `encode` runs its layers and pooler.
"""

from __future__ import annotations

import torch
from torch import nn

from laitkit.pipeline.pretrain.model import Embedded, Encoder, EncoderOutput, ModelConfig, additive_mask


def visualbert_config(cfg: ModelConfig):
    from transformers import VisualBertConfig

    return VisualBertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, intermediate_size=cfg.ffn, hidden_act="gelu",
        hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
        max_position_embeddings=cfg.max_text, type_vocab_size=2, visual_embedding_dim=cfg.feature_dim,
        pad_token_id=0, bypass_transformer=False, special_visual_initialize=True,
    )


class VisualBertEncoder(Encoder):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from transformers import VisualBertModel

        self.cfg = cfg
        self.visual_bert = VisualBertModel(visualbert_config(cfg))

    def word_embeddings(self) -> nn.Embedding:
        return self.visual_bert.embeddings.word_embeddings

    def embed(self, batch: dict[str, torch.Tensor]) -> Embedded:
        t = min(batch["input_ids"].shape[1], self.cfg.max_text)
        x = self.visual_bert.embeddings(
            input_ids=batch["input_ids"][:, :t], token_type_ids=batch["segment"][:, :t].clamp(max=1),
            visual_embeds=batch["features"],
        )
        return Embedded(text=x[:, :t], regions=x[:, t:])

    def encode(self, emb: Embedded, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        t = emb.text.shape[1]
        x = torch.cat([emb.text, emb.regions], dim=1)
        mask = additive_mask(torch.cat([batch["text_mask"][:, :t], batch["region_mask"]], dim=1), x.dtype)
        for layer in self.visual_bert.encoder.layer:
            x = layer(x, mask)[0]
        return EncoderOutput(text=x[:, :t], regions=x[:, t:], pooled=self.visual_bert.pooler(x))
