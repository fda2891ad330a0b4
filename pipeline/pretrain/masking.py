"""Examples in, one padded and masked batch out (MLM, tags, scene-graph spans, MRFR, ITM).

Why the masking lives in the data workers and not the model: which positions are masked is the
task, and doing it here keeps the GPU busy while workers prepare the next batches. Random words
give MLM (BERT 80/10/10); the detector's object tags appended as a second segment and masked give
Oscar's tag objective; masking exactly the sub-words of scene-graph nodes gives ERNIE-ViL's
scene-graph prediction; zeroed region features regressed back give UNITER's MRFR; swapped
captions give ITM. Every random choice comes from the generator the caller passes, which the
stream derives from (seed, slot, epoch, batch index): a batch is a pure function of its place.
"""

from __future__ import annotations

import numpy as np
import torch

from laitkit.pipeline.pretrain.tokenizer import TextTokenizer

GEOM_DIM = 7
IGNORE = -100


class Masker:
    """Builds the batch tensors; per-objective probabilities are constructor arguments."""

    def __init__(
        self,
        tok: TextTokenizer,
        *,
        mask_prob: float = 0.15,
        sgp_prob: float = 0.5,
        sgp_node_prob: float = 0.3,
        mrm_prob: float = 0.15,
        itm_neg: float = 0.5,
    ) -> None:
        self.tok = tok
        self.mask_prob, self.sgp_prob, self.sgp_node_prob = mask_prob, sgp_prob, sgp_node_prob
        self.mrm_prob, self.itm_neg = mrm_prob, itm_neg
        self.vocab = tok.vocab_size

    def _mask_token(self, ids: torch.Tensor, labels: torch.Tensor, i: int, p: int, rng: np.random.Generator) -> None:
        labels[i, p] = ids[i, p]
        roll = rng.random()
        if roll < 0.8:
            ids[i, p] = self.tok.mask_id
        elif roll < 0.9:
            ids[i, p] = int(rng.integers(len(self.tok.special_ids), self.vocab))
        # else: keep the word (BERT's 10 %)

    def __call__(self, examples: list, rng: np.random.Generator, feature_dim: int) -> dict[str, torch.Tensor]:
        n = len(examples)
        partner = list(range(n))
        for i in range(n):
            if n > 1 and rng.random() < self.itm_neg:
                others = [k for k in range(n) if examples[k].caption_ids != examples[i].caption_ids]
                if others:
                    partner[i] = others[int(rng.integers(len(others)))]
        matched = [int(partner[i] == i) for i in range(n)]
        captions = [examples[partner[i]] for i in range(n)]  # whose caption sample i is paired with

        max_t = max(len(captions[i].caption_ids) + len(examples[i].tag_ids) + 3 for i in range(n))
        max_r = max([1] + [ex.features.shape[0] for ex in examples])
        tok = self.tok
        ids = torch.full((n, max_t), tok.pad_id, dtype=torch.long)
        segment = torch.zeros((n, max_t), dtype=torch.long)
        mlm_labels = torch.full((n, max_t), IGNORE, dtype=torch.long)
        tag_labels = torch.full((n, max_t), IGNORE, dtype=torch.long)
        sgp_labels = torch.full((n, max_t), IGNORE, dtype=torch.long)
        sgp_kind = torch.full((n, max_t), -1, dtype=torch.long)
        feats = torch.zeros((n, max_r, feature_dim))
        geom = torch.zeros((n, max_r, GEOM_DIM))
        obj_ids = torch.full((n, max_r), -1, dtype=torch.long)
        region_mask = torch.zeros((n, max_r), dtype=torch.bool)
        mrm_mask = torch.zeros((n, max_r), dtype=torch.bool)
        mrm_target = torch.zeros((n, max_r, feature_dim))

        for i, ex in enumerate(examples):
            cap = captions[i]
            words = cap.caption_ids
            seq = [tok.cls_id, *words, tok.sep_id, *ex.tag_ids, tok.sep_id]
            ids[i, : len(seq)] = torch.tensor(seq)
            segment[i, len(words) + 2 : len(seq)] = 1
            nr = ex.features.shape[0]
            if nr:
                feats[i, :nr] = torch.from_numpy(ex.features)
                geom[i, :nr] = torch.from_numpy(ex.geometry)
                obj_ids[i, :nr] = torch.from_numpy(ex.obj_ids)
                region_mask[i, :nr] = True
            if cap.graph_spans and rng.random() < self.sgp_prob:
                for kind, a, b in cap.graph_spans:
                    if rng.random() < self.sgp_node_prob:
                        for p in range(a + 1, b + 1):  # +1: [CLS]
                            sgp_labels[i, p] = ids[i, p]
                            sgp_kind[i, p] = kind
                            ids[i, p] = tok.mask_id
            else:
                for p in range(1, len(words) + 1):
                    if rng.random() < self.mask_prob:
                        self._mask_token(ids, mlm_labels, i, p, rng)
            for p in range(len(words) + 2, len(seq) - 1):
                if rng.random() < self.mask_prob:
                    self._mask_token(ids, tag_labels, i, p, rng)
            for r in range(nr):
                if rng.random() < self.mrm_prob:
                    mrm_mask[i, r] = True
                    mrm_target[i, r] = feats[i, r]
                    feats[i, r] = 0.0
            if not matched[i]:
                # LXMERT: mismatched pairs are masked like the rest (else "has a [MASK]" would
                # answer ITM) but carry no masked-modelling target.
                for labels in (mlm_labels, tag_labels, sgp_labels):
                    labels[i] = IGNORE
                sgp_kind[i] = -1
                mrm_mask[i] = False
                mrm_target[i] = 0.0
        return {
            "input_ids": ids,
            "segment": segment,
            "text_mask": ids != tok.pad_id,
            "features": feats,
            "geometry": geom,
            "obj_ids": obj_ids,
            "region_mask": region_mask,
            "mlm_labels": mlm_labels,
            "tag_labels": tag_labels,
            "sgp_labels": sgp_labels,
            "sgp_kind": sgp_kind,
            "mrm_mask": mrm_mask,
            "mrm_target": mrm_target,
            "itm_labels": torch.tensor(matched, dtype=torch.long),
        }


def pair_batch(examples: list, captions: list, tok: TextTokenizer, feature_dim: int) -> dict[str, torch.Tensor]:
    """Unmasked (image i, caption i) pairs for scoring: retrieval and ITM evaluation."""
    m = Masker(tok, mask_prob=0.0, sgp_prob=0.0, mrm_prob=0.0, itm_neg=0.0)
    swapped = []
    for ex, cap in zip(examples, captions, strict=True):
        e = type(ex)(**{**ex.__dict__, "caption_ids": cap.caption_ids, "graph_spans": []})
        swapped.append(e)
    return m(swapped, np.random.default_rng(0), feature_dim)
