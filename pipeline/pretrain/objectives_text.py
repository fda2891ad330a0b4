"""Objectives that predict masked sub-words: MLM and its whole-word and span variants, Oscar's
tag MLM, scene-graph prediction, ERNIE-ViL's object / attribute / relation prediction, UNIMO's
text-only MLM.

They differ only in *which* positions the data workers mask (masking.py, one label key each); the
loss is the same shared sub-word head, so each class names its label key and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from laitkit.pipeline.pretrain.masking import TASK_LABELS
from laitkit.pipeline.pretrain.model import EncoderOutput
from laitkit.pipeline.pretrain.objectives_base import Objective, token_loss

if TYPE_CHECKING:
    from laitkit.pipeline.pretrain.model import PretrainModel


class TokenPrediction(Objective):
    """Cross-entropy of the shared sub-word head at the positions this task's masking labelled."""

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return token_loss(model, out, batch.get(TASK_LABELS[self.name]))


class MLM(TokenPrediction):
    """BERT: 15 % of caption sub-words, 80 % [MASK] / 10 % random / 10 % kept."""

    name = "mlm"


class WholeWordMLM(TokenPrediction):
    """Whole-word masking: a chosen word masks all its sub-words (BERT-wwm)."""

    name = "mlm_wwm"


class SpanMLM(TokenPrediction):
    """InterBERT's masked segment modelling: contiguous spans (geometric lengths) masked whole."""

    name = "mlm_span"


class TagMLM(TokenPrediction):
    """Oscar: masked detector tags (the second text segment) predicted with the word head."""

    name = "tags"


class SceneGraphPrediction(TokenPrediction):
    """Scene-graph prediction over the nodes' covering spans (any kind), sub-words masked whole."""

    name = "sgp"


class ErnieObject(TokenPrediction):
    """ERNIE-ViL object prediction: the exact sub-words of scene-graph object nodes masked."""

    name = "ernie_obj"


class ErnieAttribute(TokenPrediction):
    """ERNIE-ViL attribute prediction: the sub-words of attribute nodes masked."""

    name = "ernie_attr"


class ErnieRelation(TokenPrediction):
    """ERNIE-ViL relation prediction: the sub-words of relation nodes masked."""

    name = "ernie_rel"


class UnimoText(TokenPrediction):
    """UNIMO's text-only samples: regions removed, MLM on the caption alone."""

    name = "unimo_text"


TEXT_OBJECTIVES = (MLM, WholeWordMLM, SpanMLM, TagMLM, SceneGraphPrediction, ErnieObject, ErnieAttribute,
                   ErnieRelation, UnimoText)
