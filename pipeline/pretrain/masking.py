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
        itm_share: float = 0.5,
        itm_neg: float = 0.5,
        itm_hard: float = 0.0,
    ) -> None:
        self.tok = tok
        self.mask_prob, self.sgp_prob, self.sgp_node_prob = mask_prob, sgp_prob, sgp_node_prob
        self.mrm_prob, self.itm_share, self.itm_neg = mrm_prob, itm_share, itm_neg
        self.itm_hard = itm_hard  # share of ITM negatives that take the in-batch caption sharing most sub-words
        self.vocab = tok.vocab_size

    def _mask_tokens(self, ids: np.ndarray, labels: np.ndarray, pos: np.ndarray, rng: np.random.Generator) -> None:
        """BERT's rule at positions `pos` of one row: label them; 80 % [MASK], 10 % random, 10 % kept."""
        if not len(pos):
            return
        labels[pos] = ids[pos]
        roll = rng.random(len(pos))
        ids[pos[roll < 0.8]] = self.tok.mask_id
        swap = pos[(roll >= 0.8) & (roll < 0.9)]
        ids[swap] = rng.integers(len(self.tok.special_ids), self.vocab, size=len(swap))

    def __call__(self, examples: list, rng: np.random.Generator, feature_dim: int) -> dict[str, torch.Tensor]:
        n = len(examples)
        partner = list(range(n))
        itm = [rng.random() < self.itm_share for _ in range(n)]
        for i in range(n):
            if itm[i] and n > 1 and rng.random() < self.itm_neg:
                others = [k for k in range(n) if examples[k].caption_ids != examples[i].caption_ids]
                if others and self.itm_hard and rng.random() < self.itm_hard:
                    mine = set(examples[i].caption_ids)  # the most shared sub-words; ties drawn at random
                    partner[i] = max(others, key=lambda k: len(mine & set(examples[k].caption_ids)) + rng.random())
                elif others:
                    partner[i] = others[int(rng.integers(len(others)))]
        matched = [int(partner[i] == i) for i in range(n)]
        itm_labels = [matched[i] if itm[i] else IGNORE for i in range(n)]
        captions = [examples[partner[i]] for i in range(n)]  # whose caption sample i is paired with

        max_t = max(len(captions[i].caption_ids) + len(examples[i].tag_ids) + 3 for i in range(n))
        max_r = max([1] + [ex.features.shape[0] for ex in examples])
        tok = self.tok
        ids = np.full((n, max_t), tok.pad_id, dtype=np.int64)
        segment = np.zeros((n, max_t), dtype=np.int64)
        mlm_labels = np.full((n, max_t), IGNORE, dtype=np.int64)
        tag_labels = np.full((n, max_t), IGNORE, dtype=np.int64)
        sgp_labels = np.full((n, max_t), IGNORE, dtype=np.int64)
        sgp_kind = np.full((n, max_t), -1, dtype=np.int64)
        feats = np.zeros((n, max_r, feature_dim), np.float32)
        geom = np.zeros((n, max_r, GEOM_DIM), np.float32)
        obj_ids = np.full((n, max_r), -1, dtype=np.int64)
        region_mask = np.zeros((n, max_r), dtype=bool)
        mrm_mask = np.zeros((n, max_r), dtype=bool)
        mrm_target = np.zeros((n, max_r, feature_dim), np.float32)

        for i, ex in enumerate(examples):
            cap = captions[i]
            nw, nt = len(cap.caption_ids), len(ex.tag_ids)
            seq = [tok.cls_id, *cap.caption_ids, tok.sep_id, *ex.tag_ids, tok.sep_id]
            ids[i, : len(seq)] = seq
            segment[i, nw + 2 : len(seq)] = 1
            nr = ex.features.shape[0]
            if nr:
                feats[i, :nr] = ex.features
                geom[i, :nr] = ex.geometry
                obj_ids[i, :nr] = ex.obj_ids
                region_mask[i, :nr] = True
            if itm[i]:
                continue  # an ITM sample: the whole caption and every region, nothing masked
            row = ids[i]
            if cap.graph_spans and rng.random() < self.sgp_prob:
                for kind, a, b in cap.graph_spans:
                    if rng.random() < self.sgp_node_prob:
                        sgp_labels[i, a + 1 : b + 1] = row[a + 1 : b + 1]  # +1: [CLS]
                        sgp_kind[i, a + 1 : b + 1] = kind
                        row[a + 1 : b + 1] = tok.mask_id
            else:
                pos = 1 + np.flatnonzero(rng.random(nw) < self.mask_prob)
                self._mask_tokens(row, mlm_labels[i], pos, rng)
            pos = nw + 2 + np.flatnonzero(rng.random(nt) < self.mask_prob)
            self._mask_tokens(row, tag_labels[i], pos, rng)
            masked = np.flatnonzero(rng.random(nr) < self.mrm_prob)
            mrm_mask[i, masked] = True
            mrm_target[i, masked] = feats[i, masked]
            feats[i, masked] = 0.0
        t = torch.from_numpy
        return {
            "input_ids": t(ids),
            "segment": t(segment),
            "text_mask": t(ids != tok.pad_id),
            "features": t(feats),
            "geometry": t(geom),
            "obj_ids": t(obj_ids),
            "region_mask": t(region_mask),
            "mlm_labels": t(mlm_labels),
            "tag_labels": t(tag_labels),
            "sgp_labels": t(sgp_labels),
            "sgp_kind": t(sgp_kind),
            "mrm_mask": t(mrm_mask),
            "mrm_target": t(mrm_target),
            "itm_labels": torch.tensor(itm_labels, dtype=torch.long),
        }


def pair_batch(examples: list, captions: list, tok: TextTokenizer, feature_dim: int) -> dict[str, torch.Tensor]:
    """Unmasked (image i, caption i) pairs for scoring: retrieval and ITM evaluation."""
    m = Masker(tok, mask_prob=0.0, sgp_prob=0.0, mrm_prob=0.0, itm_share=1.0, itm_neg=0.0)
    swapped = []
    for ex, cap in zip(examples, captions, strict=True):
        e = type(ex)(**{**ex.__dict__, "caption_ids": cap.caption_ids, "graph_spans": []})
        swapped.append(e)
    return m(swapped, np.random.default_rng(0), feature_dim)
