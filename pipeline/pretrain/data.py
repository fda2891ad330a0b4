"""From shard samples to masked pretraining batches (MLM, tags, SGP, MRM, ITM).

Why the masking lives here and not in the model: which words are masked is the task. Random
words give MLM (BERT/UNITER); the detector's object tags appended to the text and masked give
Oscar's tag objective; masking exactly the token spans of scene-graph nodes (from the text
stage) gives ERNIE-ViL's scene-graph prediction; zeroed region features regressed back give
UNITER's MRFR; swapped captions give ITM. One collate function, seeded, so a run is repeatable.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from laitkit.datasets.schema import Sample
from laitkit.pipeline.pretrain.vocab import CLS, MASK, PAD, SEP, Vocab, tokenize

GEOM_DIM = 7
SGP_KINDS = ("object", "attribute", "relation")


@dataclass
class Example:
    """One sample reduced to what the model sees."""

    key: str
    words: list[str]
    graph_spans: list[tuple[str, int, int]]  # (kind, start, end) over `words`
    tags: list[str]
    features: np.ndarray  # (N, D) float32
    geometry: np.ndarray  # (N, 7) float32


def caption_words(sample: Sample) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Words of the caption, and scene-graph spans over them when the text stage ran."""
    if sample.text is not None and sample.text.tokens:
        words = [t.lower() for t in sample.text.tokens]
        spans = [(n.kind, n.span[0], n.span[1]) for n in sample.text.graph if n.span[1] > n.span[0]]
        return words, spans
    return tokenize(sample.caption), []


def box_geometry(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """UNITER's 7-d box position: normalised x1, y1, x2, y2, width, height, area."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x1, y1, x2, y2 = (b[:, i] for i in range(4))
    bw, bh = (x2 - x1) / max(w, 1), (y2 - y1) / max(h, 1)
    return np.stack([x1 / max(w, 1), y1 / max(h, 1), x2 / max(w, 1), y2 / max(h, 1), bw, bh, bw * bh], 1)


def to_example(sample: Sample) -> Example | None:
    """None for samples the model cannot use (no regions or no caption)."""
    r = sample.regions
    if r is None or r.num_boxes == 0 or not sample.caption.strip():
        return None
    words, spans = caption_words(sample)
    tags: list[str] = []
    for name in r.obj_names:
        for w in tokenize(name):
            if w not in tags:
                tags.append(w)
    return Example(
        key=sample.key,
        words=words,
        graph_spans=spans,
        tags=tags,
        features=r.features.astype(np.float32),
        geometry=box_geometry(r.boxes, r.image_h, r.image_w),
    )


def vocab_from_examples(examples: Iterable[Example]) -> Vocab:
    return Vocab.build(e.words + e.tags for e in examples)


class Collator:
    """Builds a padded, masked batch; every random choice comes from one seeded generator."""

    def __init__(
        self, vocab: Vocab, *, seed: int, mask_prob: float = 0.15, sgp_prob: float = 0.5, itm_neg: float = 0.5
    ) -> None:
        self.vocab = vocab
        self.rng = random.Random(seed)
        self.mask_prob = mask_prob
        self.sgp_prob = sgp_prob
        self.itm_neg = itm_neg

    def __call__(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        rng = self.rng
        n = len(examples)
        texts: list[list[str]] = []
        spans_per: list[list[tuple[str, int, int]]] = []
        matched: list[int] = []
        for i, ex in enumerate(examples):
            j = i
            if n > 1 and rng.random() < self.itm_neg:
                j = rng.choice([k for k in range(n) if examples[k].words != ex.words] or [i])
            matched.append(int(j == i))
            texts.append(examples[j].words)
            spans_per.append(examples[j].graph_spans)

        max_t = max(len(t) + len(ex.tags) + 3 for t, ex in zip(texts, examples, strict=True))
        max_r = max(ex.features.shape[0] for ex in examples)
        feat_dim = examples[0].features.shape[1]
        ids = torch.full((n, max_t), PAD, dtype=torch.long)
        segment = torch.zeros((n, max_t), dtype=torch.long)
        mlm_labels = torch.full((n, max_t), -100, dtype=torch.long)
        tag_labels = torch.full((n, max_t), -100, dtype=torch.long)
        sgp_labels = torch.full((n, max_t), -100, dtype=torch.long)
        sgp_kind = torch.full((n, max_t), -1, dtype=torch.long)
        feats = torch.zeros((n, max_r, feat_dim))
        geom = torch.zeros((n, max_r, GEOM_DIM))
        region_mask = torch.zeros((n, max_r), dtype=torch.bool)
        mrm_mask = torch.zeros((n, max_r), dtype=torch.bool)
        mrm_target = torch.zeros((n, max_r, feat_dim))

        for i, ex in enumerate(examples):
            words, tags = texts[i], ex.tags
            seq = [CLS, *self.vocab.encode(words), SEP, *self.vocab.encode(tags), SEP]
            ids[i, : len(seq)] = torch.tensor(seq)
            segment[i, len(words) + 2 : len(seq)] = 1
            nr = ex.features.shape[0]
            feats[i, :nr] = torch.from_numpy(ex.features)
            geom[i, :nr] = torch.from_numpy(ex.geometry)
            region_mask[i, :nr] = True
            if not matched[i]:
                continue  # as in UNITER, masked modelling only on matched pairs
            use_sgp = bool(spans_per[i]) and rng.random() < self.sgp_prob
            if use_sgp:
                for kind, a, b in spans_per[i]:
                    if rng.random() < 0.3:
                        for p in range(a + 1, min(b, len(words)) + 1):  # +1: [CLS]
                            sgp_labels[i, p] = ids[i, p]
                            sgp_kind[i, p] = SGP_KINDS.index(kind) if kind in SGP_KINDS else 0
                            ids[i, p] = MASK
            else:
                for p in range(1, len(words) + 1):
                    if rng.random() < self.mask_prob:
                        mlm_labels[i, p] = ids[i, p]
                        ids[i, p] = MASK
            for p in range(len(words) + 2, len(seq) - 1):
                if rng.random() < self.mask_prob:
                    tag_labels[i, p] = ids[i, p]
                    ids[i, p] = MASK
            for r in range(nr):
                if rng.random() < self.mask_prob:
                    mrm_mask[i, r] = True
                    mrm_target[i, r] = feats[i, r]
                    feats[i, r] = 0.0
        return {
            "input_ids": ids,
            "segment": segment,
            "text_mask": ids != PAD,
            "features": feats,
            "geometry": geom,
            "region_mask": region_mask,
            "mlm_labels": mlm_labels,
            "tag_labels": tag_labels,
            "sgp_labels": sgp_labels,
            "sgp_kind": sgp_kind,
            "mrm_mask": mrm_mask,
            "mrm_target": mrm_target,
            "itm_labels": torch.tensor(matched, dtype=torch.long),
        }


def iter_examples(
    shard_paths: list[Path], *, seed: int, epoch: int, rank: int = 0, world: int = 1
) -> Iterator[Example]:
    """Stream examples from WebDataset shards: split by node, shuffled with seed + epoch.

    Splitting is explicit and fails loudly when a rank would see no shard (webdataset's
    `split_by_node` + `check_empty`), instead of silently training on nothing.
    """
    from laitkit.datasets.shards import iter_tar

    mine = sorted(shard_paths)[rank::world]
    if not mine:
        raise ValueError(f"rank {rank}/{world} got no shards out of {len(shard_paths)}")
    order = list(mine)
    random.Random(seed + epoch).shuffle(order)
    for path in order:
        for sample in iter_tar(path):
            ex = to_example(sample)
            if ex is not None:
                yield ex
