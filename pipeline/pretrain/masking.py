"""Examples in, one padded batch out, with the masking and labels of every pretraining objective.

Why the masking lives in the data workers and not the model: which positions are masked is the
task, and doing it here keeps the GPU busy while workers prepare the next batches. Every random
choice comes from the generator the caller passes, which the stream derives from (seed, slot,
epoch, batch index): a batch is a pure function of its place.

How a batch is built (one-way: decide, then lay out, then label):
1. Which tasks this batch trains: all of `tasks` (mixing "sum"), or one drawn by `task_weights`
   (mixing "sample", UNITER's task sampling; the model then sees only that task's labels).
2. A role per sample: `pair` (ITM-like tasks see the whole caption and every region, nothing
   masked, perhaps a swapped caption or polluted tags), `mask` (masked-prediction tasks),
   `text` / `image` (UNIMO's single-modality samples: the other modality removed).
3. Each objective's own masking writes its own label tensor (`TASK_LABELS` names them); the
   masked-prediction tasks of one kind share positions the way their papers do (LXMERT predicts
   the feature, the class and the attribute of the same masked regions). With
   `conditional_masking` (UNITER) a masked sample masks text or regions, never both.
The primitives (BERT's 80/10/10, whole-word groups, spans, IoU groups) are plain functions so the
tests check each one's statistics directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from laitkit.boxes import box_iou
from laitkit.pipeline.pretrain.paraphrase import paraphrase
from laitkit.pipeline.pretrain.tokenizer import TextTokenizer

GEOM_DIM = 7
IGNORE = -100
DEFAULT_TASKS = ("mlm", "tags", "sgp", "mrm", "itm")

# What each task needs from the batch builder. `caption`: masks caption sub-words; `graph`: masks
# scene-graph nodes' sub-words (kind filter, or None for every node); `tags`, `region`: masks tags /
# regions; `pair`: a per-sample matching task; `text`/`image`: single-modality samples;
# `contrastive`: separate text-only and image-only inputs; `needs`: tasks whose labels it reads.
CAPTION_TASKS = ("mlm", "mlm_wwm", "mlm_span")
GRAPH_TASKS = {"sgp": None, "ernie_obj": 0, "ernie_attr": 1, "ernie_rel": 2}  # kind ids of data.SGP_KINDS
REGION_TASKS = ("mrfr", "mrm", "mrc", "mrc_kl", "attr")
PAIR_TASKS = ("itm", "itm_hard", "oscar_contrastive")
# UNIMO's contrastive texts (`ucl_kind`): the caption, its positive rewrites, its negative rewrite.
UCL_KINDS = {"caption": 0, "attribute_deleted": 1, "negative": 2, "paraphrase": 3}
NEEDS = {"villa": ("mlm", "itm"), "wra": ("itm",)}
ALL_TASKS = (
    *CAPTION_TASKS, *GRAPH_TASKS, "tags", *REGION_TASKS, *PAIR_TASKS, "wra", "villa",
    "unimo_text", "unimo_image", "unimo_contrastive",
)
TASK_LABELS = {  # the label key each token-prediction task writes
    "mlm": "mlm_labels", "mlm_wwm": "mlm_wwm_labels", "mlm_span": "mlm_span_labels", "sgp": "sgp_labels",
    "ernie_obj": "ernie_obj_labels", "ernie_attr": "ernie_attr_labels", "ernie_rel": "ernie_rel_labels",
    "tags": "tag_labels", "unimo_text": "unimo_text_labels",
}


def expand_tasks(tasks: Sequence[str]) -> set[str]:
    """The tasks whose labels must be built: the tasks and those they read (VILLA: MLM and ITM)."""
    need = set(tasks)
    for t in tasks:
        need.update(NEEDS.get(t, ()))
    return need


def bert_mask(
    ids: np.ndarray, labels: np.ndarray, pos: np.ndarray, rng: np.random.Generator, mask_id: int, low: int, vocab: int
) -> None:
    """BERT's rule at positions `pos` of one row: label them; 80 % [MASK], 10 % random, 10 % kept."""
    if not len(pos):
        return
    labels[pos] = ids[pos]
    roll = rng.random(len(pos))
    ids[pos[roll < 0.8]] = mask_id
    swap = pos[(roll >= 0.8) & (roll < 0.9)]
    ids[swap] = rng.integers(low, vocab, size=len(swap))


def word_groups(word_index: Sequence[int]) -> list[list[int]]:
    """Sub-word positions grouped by word: consecutive sub-words of one word form one group.

    Why consecutive and not equal index: a word index of -1 (no text-stage token) is its own word.
    """
    groups: list[list[int]] = []
    prev = None
    for i, w in enumerate(word_index):
        if groups and w >= 0 and w == prev:
            groups[-1].append(i)
        else:
            groups.append([i])
        prev = w
    return groups


def span_positions(
    n: int, rng: np.random.Generator, ratio: float, p: float = 0.2, max_len: int = 10
) -> list[list[int]]:
    """Contiguous spans covering about `ratio` of `n` positions (InterBERT's segment masking).

    Span lengths are geometric(p) clipped to `max_len` (mean about 1/p = 5 for long captions), as
    SpanBERT draws them; spans never overlap. At least one position is masked when n > 0.
    """
    if n <= 0:
        return []
    budget = max(1, int(round(ratio * n)))
    taken = np.zeros(n, dtype=bool)
    spans: list[list[int]] = []
    for _ in range(4 * n):
        left = budget - int(taken.sum())
        if left <= 0:
            break
        length = min(int(rng.geometric(p)), max_len, left, n)
        for _ in range(10):  # a free place for this length; the length is kept, so none is favoured
            start = int(rng.integers(0, n - length + 1))
            if not taken[start : start + length].any():
                taken[start : start + length] = True
                spans.append(list(range(start, start + length)))
                break
    return spans


def overlap_group(masked: np.ndarray, boxes: np.ndarray, iou: float) -> np.ndarray:
    """12-in-1: also mask every region whose IoU with a masked one exceeds `iou` (one pass, as the paper)."""
    if iou <= 0 or not masked.any() or masked.all():
        return masked
    over = box_iou(boxes, boxes[masked]) > iou
    return masked | over.any(axis=1)


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


class Masker:
    """Builds the batch tensors for a set of tasks; probabilities are constructor arguments."""

    def __init__(
        self,
        tok: TextTokenizer,
        *,
        tasks: Sequence[str] = DEFAULT_TASKS,
        mixing: str = "sum",
        task_weights: dict[str, float] | None = None,
        conditional_masking: bool = False,
        region_overlap_iou: float = 0.0,
        mask_prob: float = 0.15,
        sgp_prob: float = 0.5,
        sgp_node_prob: float = 0.3,
        mrm_prob: float = 0.15,
        itm_share: float = 0.5,
        itm_neg: float = 0.5,
        pollute_prob: float = 0.5,
        unimo_share: float = 0.2,
        itm_hard_mode: str = "tags",
    ) -> None:
        unknown = [t for t in tasks if t not in ALL_TASKS]
        if unknown:
            raise ValueError(f"unknown pretraining task(s) {unknown}; known: {', '.join(ALL_TASKS)}")
        if mixing not in ("sum", "sample"):
            raise ValueError(f"mixing must be sum or sample (got {mixing!r})")
        if itm_hard_mode not in ("tags", "model"):
            raise ValueError(f"itm_hard_mode must be tags or model (got {itm_hard_mode!r})")
        self.itm_hard_mode = itm_hard_mode
        self.tok = tok
        self.tasks = tuple(tasks)
        self.mixing = mixing
        weights = dict(task_weights or {})
        self.weights = np.array([float(weights.get(t, 1.0)) for t in self.tasks])
        self.conditional, self.iou = conditional_masking, region_overlap_iou
        self.mask_prob, self.sgp_prob, self.sgp_node_prob = mask_prob, sgp_prob, sgp_node_prob
        self.mrm_prob, self.itm_share, self.itm_neg = mrm_prob, itm_share, itm_neg
        self.pollute_prob, self.unimo_share = pollute_prob, unimo_share
        self.vocab = tok.vocab_size
        self.low = len(tok.special_ids)
        self.keys = expand_tasks(self.tasks)  # every batch carries the same tensors, whatever was sampled

    # --- step 1 and 2: tasks of this batch, role of each sample -----------------------------

    def draw_tasks(self, rng: np.random.Generator) -> tuple[set[str], int]:
        """(tasks whose labels this batch carries, index of the sampled task or -1 when summed)."""
        if self.mixing == "sample" and len(self.tasks) > 1:
            k = int(rng.choice(len(self.tasks), p=self.weights / self.weights.sum()))
            return expand_tasks([self.tasks[k]]), k
        return expand_tasks(self.tasks), -1 if self.mixing == "sum" else 0

    def roles(self, need: set[str], n: int, rng: np.random.Generator) -> list[str]:
        masked = bool(need & {*CAPTION_TASKS, *GRAPH_TASKS, *REGION_TASKS, "tags"})
        options = {
            "pair": self.itm_share if need & set(PAIR_TASKS) else 0.0,
            "mask": (1.0 - self.itm_share) if masked else 0.0,
            "text": self.unimo_share if "unimo_text" in need else 0.0,
            "image": self.unimo_share if "unimo_image" in need else 0.0,
        }
        present = [r for r, on in zip(options, (bool(need & set(PAIR_TASKS)), masked, "unimo_text" in need,
                                                  "unimo_image" in need), strict=True) if on]
        if not present:
            return ["plain"] * n
        if len(present) == 1:
            return [present[0]] * n
        w = np.array([options[r] for r in present])
        if w.sum() <= 0:
            w = np.ones(len(present))
        return [present[int(k)] for k in rng.choice(len(present), size=n, p=w / w.sum())]

    # --- step 3: layout and labels -------------------------------------------------------------

    def __call__(self, examples: list, rng: np.random.Generator, feature_dim: int) -> dict[str, torch.Tensor]:
        n = len(examples)
        need, task_id = self.draw_tasks(rng)
        roles = self.roles(need, n, rng)
        pair_tasks = [t for t in PAIR_TASKS if t in need]
        pair_task = [pair_tasks[int(rng.integers(len(pair_tasks)))] if r == "pair" else "" for r in roles]
        partner, tags_from = self._partners(examples, pair_task, rng)
        captions = [examples[partner[i]] for i in range(n)]  # whose caption sample i is paired with
        tag_src = [examples[tags_from[i]] for i in range(n)]  # whose tags it carries (Oscar pollution)

        tok = self.tok
        cap_len = [0 if roles[i] == "image" else len(captions[i].caption_ids) for i in range(n)]
        tag_len = [0 if roles[i] in ("text", "image") else len(tag_src[i].tag_ids) for i in range(n)]
        max_t = max(cap_len[i] + tag_len[i] + 3 for i in range(n))
        max_r = max([1] + [ex.features.shape[0] for ex in examples])
        ids = np.full((n, max_t), tok.pad_id, dtype=np.int64)
        segment = np.zeros((n, max_t), dtype=np.int64)
        caption_mask = np.zeros((n, max_t), dtype=bool)
        feats = np.zeros((n, max_r, feature_dim), np.float32)
        geom = np.zeros((n, max_r, GEOM_DIM), np.float32)
        obj_ids = np.full((n, max_r), -1, dtype=np.int64)
        region_mask = np.zeros((n, max_r), dtype=bool)
        for i, ex in enumerate(examples):
            cap = captions[i].caption_ids[: cap_len[i]]
            tags = tag_src[i].tag_ids[: tag_len[i]]
            seq = [tok.cls_id, *cap, tok.sep_id, *tags, tok.sep_id]
            ids[i, : len(seq)] = seq
            segment[i, len(cap) + 2 : len(seq)] = 1
            caption_mask[i, 1 : 1 + len(cap)] = True
            nr = ex.features.shape[0]
            if nr and roles[i] != "text":
                feats[i, :nr] = ex.features
                geom[i, :nr] = ex.geometry
                obj_ids[i, :nr] = ex.obj_ids
                region_mask[i, :nr] = True

        out: dict[str, np.ndarray] = {}
        label = {k: np.full((n, max_t), IGNORE, dtype=np.int64) for k in ("mlm", "tags", "sgp")}  # always present
        for t in self.keys:
            if t in TASK_LABELS:
                label.setdefault(t, np.full((n, max_t), IGNORE, dtype=np.int64))
        sgp_kind = np.full((n, max_t), -1, dtype=np.int64)
        mrm_mask = np.zeros((n, max_r), dtype=bool)
        mrm_target = np.zeros((n, max_r, feature_dim), np.float32)
        image_mask = np.zeros((n, max_r), dtype=bool)
        region_need = need & set(REGION_TASKS)
        text_need = need & {*CAPTION_TASKS, *GRAPH_TASKS, "tags"}
        for i, ex in enumerate(examples):
            nr = ex.features.shape[0]
            if roles[i] == "text":
                pos = 1 + np.flatnonzero(rng.random(cap_len[i]) < self.mask_prob)
                bert_mask(ids[i], label["unimo_text"][i], pos, rng, tok.mask_id, self.low, self.vocab)
                continue
            if roles[i] == "image":
                sel = self._region_draw(ex, rng)
                image_mask[i, :nr] = sel
                mrm_target[i, :nr][sel] = feats[i, :nr][sel]
                feats[i, :nr][sel] = 0.0
                continue
            if roles[i] != "mask":
                continue
            do_text, do_regions = bool(text_need), bool(region_need) and nr > 0
            if self.conditional and do_text and do_regions:
                do_text = bool(rng.random() < 0.5)  # UNITER: one modality per sample
                do_regions = not do_text
            if do_text:
                self._mask_caption(ex, i, ids, label, sgp_kind, need, rng)
                if "tags" in need:
                    start = cap_len[i] + 2
                    pos = start + np.flatnonzero(rng.random(tag_len[i]) < self.mask_prob)
                    bert_mask(ids[i], label["tags"][i], pos, rng, tok.mask_id, self.low, self.vocab)
            if do_regions:
                sel = self._region_draw(ex, rng)
                mrm_mask[i, :nr] = sel
                mrm_target[i, :nr][sel] = feats[i, :nr][sel]
                feats[i, :nr][sel] = 0.0

        out.update({TASK_LABELS[k]: v for k, v in label.items()})
        out.update(self._region_labels(examples, mrm_mask, region_need, self.keys & set(REGION_TASKS), max_r))
        out.update(self._pair_labels(examples, partner, tags_from, pair_task, self.keys))
        if "itm_hard" in self.keys and self.itm_hard_mode == "model":
            # Which itm_hard samples become negatives: their label is already 0; the caption stays
            # the image's own until the objective swaps in the highest-scoring wrong one.
            hard = out["itm_hard_labels"] != IGNORE
            negative = hard & (rng.random(n) < self.itm_neg)
            out["itm_hard_labels"] = np.where(hard, 1 - negative.astype(np.int64), IGNORE)
            out["itm_hard_negative"] = negative
        if "unimo_contrastive" in self.keys:
            drawn = "unimo_contrastive" in need
            out.update(self._contrastive_inputs(examples if drawn else [], rng, max_r, feature_dim, len(examples)))
        t = torch.from_numpy
        batch = {
            "input_ids": t(ids), "segment": t(segment), "text_mask": t(ids != tok.pad_id),
            "caption_mask": t(caption_mask), "features": t(feats), "geometry": t(geom), "obj_ids": t(obj_ids),
            "region_mask": t(region_mask), "sgp_kind": t(sgp_kind), "mrm_mask": t(mrm_mask),
            "mrm_target": t(mrm_target), "task_id": torch.tensor(task_id),
        }
        if "unimo_image" in self.keys:
            batch["unimo_image_mask"] = t(image_mask)
        batch.update({k: t(np.ascontiguousarray(v)) for k, v in out.items()})
        return batch

    def _partners(self, examples: list, pair_task: list[str], rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """Caption partner (ITM: random other caption; ITM-hard: the other caption of the image
        whose tags overlap most) and tag source (Oscar: another image's tags) of each sample."""
        n = len(examples)
        partner, tags_from = list(range(n)), list(range(n))
        tagsets = [set(ex.tag_ids) for ex in examples]
        for i in range(n):
            task = pair_task[i]
            if task == "itm_hard" and self.itm_hard_mode == "model":
                continue  # the objective picks the negative by the model's own score (objectives_matching.py)
            if task in ("itm", "itm_hard") and n > 1 and rng.random() < self.itm_neg:
                others = [k for k in range(n) if examples[k].caption_ids != examples[i].caption_ids]
                if not others:
                    continue
                if task == "itm":
                    partner[i] = others[int(rng.integers(len(others)))]
                else:  # hard: most shared tags; ties broken at random so the negative is not fixed
                    score = np.array([jaccard(tagsets[i], tagsets[k]) for k in others]) + 1e-6 * rng.random(len(others))
                    partner[i] = others[int(score.argmax())]
            elif task == "oscar_contrastive" and n > 1 and rng.random() < self.pollute_prob:
                others = [k for k in range(n) if tagsets[k] != tagsets[i]]
                if others:
                    tags_from[i] = others[int(rng.integers(len(others)))]
        return partner, tags_from

    def _region_draw(self, ex: Any, rng: np.random.Generator) -> np.ndarray:
        """`mrm_prob` of the regions, and at least one (UNITER masks one region when the draw
        picks none). Why: with the few regions of a small image (3-6 here, not a detector's 36),
        15 % leaves most masked samples without a region target, so a region task would train
        on a handful of regions per batch and its loss would be mostly noise."""
        nr = ex.features.shape[0]
        sel = rng.random(nr) < self.mrm_prob
        if self.mrm_prob > 0 and nr and not sel.any():
            sel[int(rng.integers(nr))] = True
        return overlap_group(sel, ex.geometry[:, :4], self.iou)

    def _mask_caption(self, ex, i: int, ids, label: dict, sgp_kind, need: set[str], rng: np.random.Generator) -> None:
        """One caption task per masked sample: a graph task (nodes of its kind exist) with
        probability `sgp_prob`, else a word-level one; each writes only its own labels."""
        tok = self.tok
        graph = [t for t in GRAPH_TASKS if t in need and self._nodes(ex, t)]
        plain = [t for t in CAPTION_TASKS if t in need]
        if graph and (not plain or rng.random() < self.sgp_prob):
            task = graph[int(rng.integers(len(graph)))]
            nodes = self._nodes(ex, task)
            chosen = [nd for nd in nodes if rng.random() < self.sgp_node_prob]
            if task != "sgp" and not chosen:
                chosen = [nodes[int(rng.integers(len(nodes)))]]  # ERNIE-ViL: every sample predicts a node
            for kind, positions in chosen:
                p = 1 + np.asarray(positions, dtype=np.int64)  # +1: [CLS]
                label[task][i, p] = ids[i, p]
                sgp_kind[i, p] = kind
                ids[i, p] = tok.mask_id
            return
        if not plain:
            return
        task = plain[int(rng.integers(len(plain)))]
        nw = len(ex.caption_ids)  # a masked sample carries its own caption
        if task == "mlm":
            pos = 1 + np.flatnonzero(rng.random(nw) < self.mask_prob)
            bert_mask(ids[i], label[task][i], pos, rng, tok.mask_id, self.low, self.vocab)
        elif task == "mlm_wwm":
            groups = word_groups(list(ex.word_index[:nw]) if ex.word_index else [-1] * nw)
            pick = rng.random(len(groups)) < self.mask_prob
            pos = np.array([1 + p for g, keep in zip(groups, pick, strict=True) if keep for p in g], dtype=np.int64)
            bert_mask(ids[i], label[task][i], pos, rng, tok.mask_id, self.low, self.vocab)
        else:  # mlm_span: each span replaced as a whole (80 % [MASK], 10 % random words, 10 % kept)
            for span in span_positions(nw, rng, self.mask_prob):
                p = 1 + np.asarray(span, dtype=np.int64)
                label[task][i, p] = ids[i, p]
                roll = rng.random()
                if roll < 0.8:
                    ids[i, p] = tok.mask_id
                elif roll < 0.9:
                    ids[i, p] = rng.integers(self.low, self.vocab, size=len(p))

    @staticmethod
    def _nodes(ex: Any, task: str) -> list[tuple[int, tuple[int, ...]]]:
        """(kind, sub-word positions) of the example's nodes that `task` masks.

        `sgp` keeps its covering spans (it predates node token lists); ERNIE-ViL's tasks use the
        node's exact sub-words (`Example.graph_nodes`, from the schema's `tokens`) when present."""
        if task == "sgp":
            return [(k, tuple(range(a, b))) for k, a, b in ex.graph_spans]
        kind = GRAPH_TASKS[task]
        nodes = getattr(ex, "graph_nodes", None)
        if not nodes:
            nodes = [(k, tuple(range(a, b))) for k, a, b in ex.graph_spans]
        n = len(ex.caption_ids)
        return [(k, tuple(p for p in pos if p < n)) for k, pos in nodes if k == kind and any(p < n for p in pos)]

    def _region_labels(self, examples: list, mrm_mask: np.ndarray, need: set[str], keys: set[str], max_r: int) -> dict:
        """Per region task its own targets (IGNORE / False unless that task was drawn), over the
        shared masked regions; `keys` are the tasks whose tensors every batch carries."""
        n = len(examples)
        out: dict[str, np.ndarray] = {}
        if keys & {"mrfr", "mrm"}:
            out["mrfr_mask"] = mrm_mask & bool(need & {"mrfr", "mrm"})
        if "mrc_kl" in keys:
            out["mrc_kl_mask"] = mrm_mask & ("mrc_kl" in need)
        if "mrc" in keys:
            mrc_mask = mrm_mask & ("mrc" in need)
            lab = np.full((n, max_r), IGNORE, dtype=np.int64)
            for i, ex in enumerate(examples):
                nr = ex.features.shape[0]
                lab[i, :nr] = np.where(mrc_mask[i, :nr], ex.obj_ids + 1, IGNORE)  # column c+1 = class c (0 background)
            out["mrc_labels"] = lab
        if "attr" in keys:
            attr_mask = mrm_mask & ("attr" in need)
            lab = np.full((n, max_r), IGNORE, dtype=np.int64)
            for i, ex in enumerate(examples):
                nr = ex.features.shape[0]
                attr = getattr(ex, "attr_ids", None)
                if attr is not None and len(attr) == nr:
                    lab[i, :nr] = np.where(attr_mask[i, :nr] & (attr >= 0), attr, IGNORE)
            out["attr_labels"] = lab
        if "mrc_kl" in keys:
            k = max([2] + [ex.soft_ids.shape[1] for ex in examples if getattr(ex, "soft_ids", None) is not None])
            sid = np.zeros((n, max_r, k), dtype=np.int64)
            sp = np.zeros((n, max_r, k), dtype=np.float32)
            for i, ex in enumerate(examples):
                nr = ex.features.shape[0]
                if getattr(ex, "soft_ids", None) is not None and len(ex.soft_ids) == nr:
                    w = ex.soft_ids.shape[1]
                    sid[i, :nr, :w], sp[i, :nr, :w] = ex.soft_ids, ex.soft_probs
                else:  # no distribution stored: the detector's label with its confidence, the rest background
                    conf = getattr(ex, "obj_conf", None)
                    conf = np.ones(nr, np.float32) if conf is None or len(conf) != nr else np.clip(conf, 0, 1)
                    sid[i, :nr, 1], sp[i, :nr, 1] = ex.obj_ids + 1, conf
                    sp[i, :nr, 0] = 1.0 - conf
            sp /= np.maximum(sp.sum(-1, keepdims=True), 1e-12)
            out["mrc_soft_ids"], out["mrc_soft_probs"] = sid, sp
        return out

    def _pair_labels(
        self, examples: list, partner: list[int], tags_from: list[int], pair_task: list[str], need: set[str]
    ) -> dict:
        n = len(examples)
        matched = np.array([int(partner[i] == i) for i in range(n)], dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        for task in ("itm", "itm_hard"):
            if task in need or task == "itm":
                out[f"{task}_labels"] = np.where([t == task for t in pair_task], matched, IGNORE)
        if "oscar_contrastive" in need:
            clean = np.array([int(tags_from[i] == i) for i in range(n)], dtype=np.int64)
            out["oscar_labels"] = np.where([t == "oscar_contrastive" for t in pair_task], clean, IGNORE)
        swapped = [t in ("itm", "itm_hard") for t in pair_task]
        out["pair_matched"] = np.where(swapped, matched, IGNORE)  # WRA: pairs whose caption may be swapped
        return out

    def _contrastive_inputs(self, examples: list, rng: np.random.Generator, max_r: int, feature_dim: int,
                            n: int) -> dict:
        """UNIMO's cross-modal contrastive inputs: each image alone, and text alone for its caption,
        two positive rewrites (an attribute node deleted, and a rule-based paraphrase standing in
        for UNIMO's back-translation, paraphrase.py: both still true of the image) and a negative
        rewrite (one object/attribute/relation node's sub-words swapped for another caption's node
        of the same kind with other words), as UNIMO's scene-graph text rewriting does."""
        tok = self.tok
        texts: list[list[int]] = []
        owner: list[int] = []
        kind: list[int] = []  # UCL_KINDS: 0 caption, 1 attribute deleted, 2 negative rewrite, 3 paraphrase
        pool: dict[int, list[tuple[int, ...]]] = {}
        for j, ex in enumerate(examples):
            for k, pos in self._contiguous_nodes(ex):
                pool.setdefault(k, []).append((j, *[ex.caption_ids[p] for p in pos]))
        for i, ex in enumerate(examples):
            if not ex.caption_ids:
                continue
            cap = list(ex.caption_ids)
            texts.append(cap)
            owner.append(i)
            kind.append(0)
            nodes = self._contiguous_nodes(ex)
            attrs = [pos for k, pos in nodes if k == 1]
            if attrs:
                drop = set(attrs[int(rng.integers(len(attrs)))])
                texts.append([w for p, w in enumerate(cap) if p not in drop])
                owner.append(i)
                kind.append(1)
            para = paraphrase(tok.decode(cap), rng) if tok.unk_id not in cap else None  # [UNK] would not survive
            para_ids = tok.encode(para).ids if para is not None else []
            if para_ids and para_ids != cap:
                texts.append(para_ids)
                owner.append(i)
                kind.append(3)
            order = rng.permutation(len(nodes)) if nodes else []
            for q in order:
                k, pos = nodes[int(q)]
                mine = tuple(cap[p] for p in pos)
                subs = [s[1:] for s in pool.get(k, []) if s[0] != i and tuple(s[1:]) != mine]
                if subs:
                    sub = list(subs[int(rng.integers(len(subs)))])
                    texts.append(cap[: pos[0]] + sub + cap[pos[-1] + 1 :])
                    owner.append(i)
                    kind.append(2)
                    break
        m = max(len(texts), 1)
        width = max([1] + [len(x) for x in texts]) + 2
        tids = np.full((m, width), tok.pad_id, dtype=np.int64)
        for r, x in enumerate(texts):
            tids[r, : len(x) + 2] = [tok.cls_id, *x, tok.sep_id]
        feats = np.zeros((n, max_r, feature_dim), np.float32)
        geom = np.zeros((n, max_r, GEOM_DIM), np.float32)
        rmask = np.zeros((n, max_r), dtype=bool)
        for i, ex in enumerate(examples):
            nr = ex.features.shape[0]
            feats[i, :nr], geom[i, :nr], rmask[i, :nr] = ex.features, ex.geometry, True
        image_ids = np.tile(np.array([[tok.cls_id, tok.sep_id]], dtype=np.int64), (n, 1))
        return {
            "ucl_text_ids": tids, "ucl_text_mask": tids != tok.pad_id, "ucl_image_ids": image_ids,
            "ucl_owner": np.array(owner or [-1], dtype=np.int64),
            "ucl_kind": np.array(kind or [-1], dtype=np.int64), "ucl_features": feats, "ucl_geometry": geom,
            "ucl_region_mask": rmask,
        }

    @staticmethod
    def _contiguous_nodes(ex: Any) -> list[tuple[int, tuple[int, ...]]]:
        nodes = getattr(ex, "graph_nodes", None) or [(k, tuple(range(a, b))) for k, a, b in ex.graph_spans]
        n = len(ex.caption_ids)
        return [(k, tuple(p)) for k, p in nodes if p and p[-1] < n and list(p) == list(range(p[0], p[-1] + 1))]


def pair_batch(examples: list, captions: list, tok: TextTokenizer, feature_dim: int) -> dict[str, torch.Tensor]:
    """Unmasked (image i, caption i) pairs for scoring: retrieval and ITM evaluation."""
    m = Masker(tok, tasks=("itm",), mask_prob=0.0, sgp_prob=0.0, mrm_prob=0.0, itm_share=1.0, itm_neg=0.0)
    swapped = []
    for ex, cap in zip(examples, captions, strict=True):
        e = type(ex)(**{**ex.__dict__, "caption_ids": cap.caption_ids, "graph_spans": []})
        swapped.append(e)
    return m(swapped, np.random.default_rng(0), feature_dim)
