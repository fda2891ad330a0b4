"""Every pretraining objective: its masking and labels (statistics over many draws), IPOT against
exact transport plans, VILLA's bounded attack, task mixing, and each loss falling on synthetic shards."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from laitkit.pipeline.pretrain.config import PretrainConfig
from laitkit.pipeline.pretrain.data import DataSpec, Example, ShardStream, find_shards, iter_samples
from laitkit.pipeline.pretrain.ipot import ipot
from laitkit.pipeline.pretrain.masking import (
    DEFAULT_TASKS,
    IGNORE,
    UCL_KINDS,
    Masker,
    box_iou,
    overlap_group,
    span_positions,
    word_groups,
)
from laitkit.pipeline.pretrain.model import ModelConfig, PretrainModel
from laitkit.pipeline.pretrain.objectives import OBJECTIVES, TASKS
from laitkit.pipeline.pretrain.objectives_unimo import positive_texts
from laitkit.pipeline.pretrain.paraphrase import COLOURS, PLURAL_SHAPES, SHAPES, paraphrase, words_of
from laitkit.pipeline.pretrain.synthetic import write_synthetic_shards
from laitkit.pipeline.pretrain.tokenizer import TextTokenizer

DIM = 16


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("obj") / "shards"
    write_synthetic_shards(root, 1, 64, dim=DIM, annotate=True)
    return root


@pytest.fixture(scope="module")
def tok(shards: Path, tmp_path_factory) -> TextTokenizer:
    """A fixed BERT vocab.txt: characters, their ## forms, and the corpus's words of <= 5 letters,
    so longer words split into several sub-words (whole-word masking has groups to keep together)."""
    words: set[str] = set()
    for s in iter_samples([str(p) for p in find_shards(shards)]):
        text = f"{s.caption} {' '.join(s.regions.obj_names if s.regions else [])}".lower()
        words.update(re.findall(r"\w+|[^\w\s]", text))
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    vocab += sorted(w for w in words if len(w) <= 5)
    out = tmp_path_factory.mktemp("tok")
    (out / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    return TextTokenizer.load(out)


@pytest.fixture(scope="module")
def examples(shards: Path, tok: TextTokenizer) -> list[Example]:
    spec = DataSpec(shards=tuple(str(p) for p in find_shards(shards)), tokenizer_dir="", feature_dim=DIM,
                    heldout_permille=0)
    stream = ShardStream(spec)
    stream._tok = tok
    return list(stream.epoch_examples(0, 0, 1))


def draws(masker: Masker, examples: list[Example], n: int, size: int = 16):
    for k in range(n):
        rng = np.random.default_rng(k)
        idx = rng.choice(len(examples), size=min(size, len(examples)), replace=False)
        batch = [examples[i] for i in idx]
        yield batch, masker(batch, rng, DIM)


# --- token masking ---------------------------------------------------------------------------


def test_mlm_masks_15_percent_of_caption_words_80_10_10(tok, examples) -> None:
    m = Masker(tok, tasks=("mlm",))
    labelled = total = as_mask = kept = 0
    for batch, b in draws(m, examples, 60):
        labels = b["mlm_labels"]
        sel = labels != IGNORE
        assert (sel <= b["caption_mask"]).all()  # never [CLS], [SEP], tags or padding
        orig = torch.full_like(labels, -1)
        for i, ex in enumerate(batch):
            orig[i, 1 : 1 + len(ex.caption_ids)] = torch.tensor(ex.caption_ids)
        assert (labels[sel] == orig[sel]).all()  # the label is the original sub-word
        assert (b["input_ids"][~sel & b["caption_mask"]] == orig[~sel & b["caption_mask"]]).all()
        labelled += int(sel.sum())
        total += int(b["caption_mask"].sum())
        as_mask += int((b["input_ids"][sel] == tok.mask_id).sum())
        kept += int((b["input_ids"][sel] == orig[sel]).sum())
    assert abs(labelled / total - 0.15) < 0.015
    assert abs(as_mask / labelled - 0.8) < 0.03
    assert abs(kept / labelled - 0.1) < 0.03  # (a random replacement equal to the word counts as kept)


def test_whole_word_masking_keeps_sub_words_of_a_word_together(tok, examples) -> None:
    assert word_groups([0, 0, 1, -1, -1, 2, 2, 2]) == [[0, 1], [2], [3], [4], [5, 6, 7]]
    m = Masker(tok, tasks=("mlm_wwm",))
    words = picked = multi = 0
    for batch, b in draws(m, examples, 60):
        sel = b["mlm_wwm_labels"] != IGNORE
        for i, ex in enumerate(batch):
            for g in word_groups(ex.word_index):
                hit = sel[i, [1 + p for p in g]]
                assert hit.all() or not hit.any(), (ex.key, g)
                words += 1
                picked += int(hit.all())
                multi += int(len(g) > 1 and hit.all())
    assert multi > 20  # multi-piece words were masked, as whole words
    assert abs(picked / words - 0.15) < 0.02


def test_span_masking_lengths_coverage_and_contiguity(tok, examples) -> None:
    rng = np.random.default_rng(0)
    firsts, cover = [], []
    for _ in range(3000):
        spans = span_positions(100, rng, 0.15)
        flat = [p for s in spans for p in s]
        assert len(flat) == len(set(flat))  # no overlap
        assert all(s == list(range(s[0], s[0] + len(s))) and len(s) <= 10 for s in spans)
        firsts.append(len(spans[0]))
        cover.append(len(flat) / 100)
    ks = np.arange(1, 11)
    expected = float((ks * 0.2 * 0.8 ** (ks - 1)).sum() + 10 * 0.8**10)  # geometric(0.2) clipped at 10
    assert abs(np.mean(firsts) - expected) < 0.2
    assert abs(np.mean(cover) - 0.15) < 0.005
    m = Masker(tok, tasks=("mlm_span",))
    labelled = words = 0
    for _, b in draws(m, examples, 20):
        sel = b["mlm_span_labels"] != IGNORE
        assert (sel <= b["caption_mask"]).all()
        assert sel.any(1)[b["caption_mask"].any(1)].all()  # every caption masks a span
        labelled, words = labelled + int(sel.sum()), words + int(b["caption_mask"].sum())
    assert abs(labelled / words - 0.15) < 0.05  # short captions round their budget


def test_tag_mlm_masks_only_the_tag_segment(tok, examples) -> None:
    m = Masker(tok, tasks=("tags",))
    n = tot = 0
    for _, b in draws(m, examples, 30):
        sel = b["tag_labels"] != IGNORE
        tag_seg = (b["segment"] == 1) & (b["input_ids"] != tok.sep_id) & b["text_mask"]
        assert (sel <= (tag_seg | (b["input_ids"] == tok.mask_id) | sel & (b["segment"] == 1))).all()
        assert not (sel & (b["segment"] == 0)).any()
        n, tot = n + int(sel.sum()), tot + int(tag_seg.sum())
    assert abs(n / tot - 0.15) < 0.03


def _example(caption_ids, nodes, n_regions=2, tags=(9,)) -> Example:
    feats = np.ones((n_regions, DIM), np.float32)
    geom = np.tile(np.array([0, 0, 0.5, 0.5, 0.5, 0.5, 0.25], np.float32), (n_regions, 1))
    return Example("k", list(caption_ids), list(range(len(caption_ids))), [(k, p[0], p[-1] + 1) for k, p in nodes],
                   [], list(tags), feats, geom, np.zeros(n_regions, np.int64), graph_nodes=list(nodes))


@pytest.mark.parametrize(("task", "kind"), [("ernie_obj", 0), ("ernie_attr", 1), ("ernie_rel", 2)])
def test_ernie_masks_exactly_the_node_sub_words_of_its_kind(tok, examples, task: str, kind: int) -> None:
    # a relation node with a gap: "sitting ... on" -> sub-words 1 and 3, not 2
    ex = _example([20, 21, 22, 23, 24], [(0, (0,)), (1, (4,)), (2, (1, 3))])
    b = Masker(tok, tasks=(task,))([ex], np.random.default_rng(0), DIM)
    got = set(torch.nonzero(b[f"{task}_labels"][0] != IGNORE).flatten().tolist())
    want = {1 + p for k, pos in ex.graph_nodes if k == kind for p in pos}
    assert got == want  # the one node of this kind is always chosen (every sample predicts a node)
    assert (b["input_ids"][0, sorted(got)] == tok.mask_id).all()
    seen = 0
    for batch, b in draws(Masker(tok, tasks=(task,)), examples, 20):
        for i, e in enumerate(batch):
            got = set(torch.nonzero(b[f"{task}_labels"][i] != IGNORE).flatten().tolist())
            allowed = {1 + p for k, pos in e.graph_nodes if k == kind for p in pos}
            assert got <= allowed
            seen += len(got)
    assert seen > 0


def test_sgp_with_other_caption_tasks_picks_one_per_sample(tok, examples) -> None:
    m = Masker(tok, tasks=("mlm", "sgp", "ernie_obj"), itm_share=0.0)
    counts = {"mlm": 0, "sgp": 0, "ernie_obj": 0}
    for _, b in draws(m, examples, 20):
        sel = {t: (b[f"{t}_labels"] != IGNORE).any(1) for t in counts}
        assert not (sel["mlm"] & (sel["sgp"] | sel["ernie_obj"])).any() and not (sel["sgp"] & sel["ernie_obj"]).any()
        for t in counts:
            counts[t] += int(sel[t].sum())
    assert all(v > 0 for v in counts.values()), counts


# --- regions ---------------------------------------------------------------------------------


def test_region_overlap_grouping_at_iou_04() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 6], [0, 0, 10, 3], [20, 20, 30, 30]], np.float32)
    iou = box_iou(boxes, boxes)
    assert iou[0, 1] == pytest.approx(0.6) and iou[0, 2] == pytest.approx(0.3) and iou[0, 3] == 0
    masked = np.array([True, False, False, False])
    assert overlap_group(masked, boxes, 0.4).tolist() == [True, True, False, False]
    assert overlap_group(masked, boxes, 0.0).tolist() == [True, False, False, False]  # off
    assert overlap_group(masked, boxes, 0.25).tolist() == [True, True, True, False]
    # one pass: box 2 overlaps box 1 by 0.5 but only box 0 was masked by the draw
    assert overlap_group(np.array([False, False, False, True]), boxes, 0.4).tolist() == [False] * 3 + [True]


def test_masker_extends_region_masks_by_iou(tok, examples) -> None:
    plain = Masker(tok, tasks=("mrfr",), mrm_prob=0.15)
    grouped = Masker(tok, tasks=("mrfr",), mrm_prob=0.15, region_overlap_iou=0.4)
    extra = 0
    for (batch, a), (_, b) in zip(draws(plain, examples, 20), draws(grouped, examples, 20), strict=True):
        assert (a["mrm_mask"] <= b["mrm_mask"]).all()  # the same draw, then grouped
        for i, ex in enumerate(batch):
            nr = ex.features.shape[0]
            m = b["mrm_mask"][i, :nr].numpy()
            if m.any() and not m.all():
                over = box_iou(ex.geometry[:, :4], ex.geometry[m, :4]).max(1)
                assert (over[~m] <= 0.4).all()  # nothing left unmasked overlaps a masked region by more
        extra += int(b["mrm_mask"].sum() - a["mrm_mask"].sum())
    assert extra > 0


def test_region_labels_only_at_masked_regions(tok, examples) -> None:
    m = Masker(tok, tasks=("mrfr", "mrc", "mrc_kl", "attr"), mrm_prob=0.3)
    n_attr = 0
    for batch, b in draws(m, examples, 20):
        mask = b["mrm_mask"]
        assert ((b["mrc_labels"] != IGNORE) == mask).all()
        assert (b["features"][mask] == 0).all() and (b["mrm_target"][mask].abs().sum(-1) > 0).all()
        assert ((b["attr_labels"] != IGNORE) <= mask).all()
        for i, ex in enumerate(batch):
            nr = ex.features.shape[0]
            sel = mask[i, :nr].numpy()
            assert (b["mrc_labels"][i, :nr][sel].numpy() == ex.obj_ids[sel] + 1).all()  # column 0 is background
            want = np.where(ex.attr_ids[sel] >= 0, ex.attr_ids[sel], IGNORE)
            assert (b["attr_labels"][i, :nr][sel].numpy() == want).all()
            n_attr += int((want >= 0).sum())
        probs = b["mrc_soft_probs"][mask]
        assert torch.allclose(probs.sum(-1), torch.ones(len(probs)), atol=1e-5)
    assert n_attr > 0


def test_conditional_masking_never_masks_both_modalities(tok, examples) -> None:
    def both_sides(conditional: bool) -> tuple[int, int, int]:
        m = Masker(tok, tasks=("mlm", "tags", "mrfr"), conditional_masking=conditional, mask_prob=0.4,
                   mrm_prob=0.4, itm_share=0.0)
        text = regions = both = 0
        for _, b in draws(m, examples, 30):
            t = ((b["mlm_labels"] != IGNORE) | (b["tag_labels"] != IGNORE)).any(1)
            r = b["mrm_mask"].any(1)
            text, regions, both = text + int(t.sum()), regions + int(r.sum()), both + int((t & r).sum())
        return text, regions, both

    text, regions, both = both_sides(True)
    assert both == 0 and text > 100 and regions > 100
    assert abs(text / (text + regions) - 0.5) < 0.1
    assert both_sides(False)[2] > 100


# --- pairs -----------------------------------------------------------------------------------


def test_tag_pollution_rate_is_half_and_swaps_whole_tag_sequences(tok, examples) -> None:
    m = Masker(tok, tasks=("oscar_contrastive",))
    polluted = total = 0
    for batch, b in draws(m, examples, 40):
        labels = b["oscar_labels"]
        assert (labels != IGNORE).all()  # alone, every sample is an Oscar contrastive sample
        assert not (b["input_ids"] == tok.mask_id).any()
        for i, ex in enumerate(batch):
            seq = b["input_ids"][i][b["text_mask"][i]].tolist()
            cap = seq[1 : 1 + len(ex.caption_ids)]
            tags = seq[2 + len(ex.caption_ids) : -1]
            assert cap == ex.caption_ids  # the caption is the image's own
            if labels[i] == 1:
                assert tags == ex.tag_ids
            else:
                assert tags != ex.tag_ids and any(tags == o.tag_ids for o in batch)
        polluted += int((labels == 0).sum())
        total += len(labels)
    assert abs(polluted / total - 0.5) < 0.05


def test_itm_hard_negative_is_the_most_tag_overlapping_caption(tok) -> None:
    tags = [(10, 11, 12), (10, 11, 13), (20, 21), (10, 30)]
    batch = [replace(_example([40 + i, 41 + i], [], tags=t), key=f"k{i}") for i, t in enumerate(tags)]
    m = Masker(tok, tasks=("itm_hard",), itm_neg=1.0)
    b = m(batch, np.random.default_rng(0), DIM)
    assert b["itm_hard_labels"].tolist() == [0, 0, 0, 0]
    caption_of = [b["input_ids"][i, 1:3].tolist() for i in range(4)]
    # 0 <-> 1 share two of four tags; 3 shares one tag with 0 (1/4) and with 1 (1/4): either; 2 shares none
    assert caption_of[0] == [41, 42] and caption_of[1] == [40, 41]
    assert caption_of[3] in ([40, 41], [41, 42])
    neg = Masker(tok, tasks=("itm",), itm_neg=0.5)
    share = np.mean([float((b["itm_labels"] == 0).float().mean()) for _, b in draws(neg, batch * 4, 40, 16)])
    assert abs(share - 0.5) < 0.06


def test_itm_hard_model_mode_trains_on_the_highest_scoring_wrong_caption(tok, examples) -> None:
    """UNITER's hard negatives: an image marked negative scores other captions of the batch with the
    model itself (no grad) and trains on the argmax, never its own caption nor a copy of it. The
    expected scores come from `pair_batch`, the evaluator's own (image, caption) layout."""
    from laitkit.pipeline.pretrain.masking import pair_batch
    from laitkit.pipeline.pretrain.objectives_matching import HardITM

    batch_ex = examples[:16]
    model = _model(tok, ("itm_hard",))
    masker = Masker(tok, tasks=("itm_hard",), itm_hard_mode="model", itm_share=1.0)
    batch = masker(batch_ex, np.random.default_rng(0), DIM)
    neg, labels = batch["itm_hard_negative"], batch["itm_hard_labels"]
    assert neg.any() and (~neg).any()
    assert (labels[neg] == 0).all() and (labels[~neg] == 1).all()
    for i, ex in enumerate(batch_ex):  # the data side swaps nothing in model mode
        assert batch["input_ids"][i, 1 : 1 + len(ex.caption_ids)].tolist() == ex.caption_ids
    hard: HardITM = model.objectives["itm_hard"]
    hard.candidates = 6  # fewer than the 15 others: a random subset is scored
    images = neg.nonzero().flatten()
    chosen, cands, scores = hard.hardest(model, batch, images, torch.arange(len(batch_ex)))
    model.eval()
    for k, i in enumerate(images.tolist()):
        c = cands[k].tolist()
        assert len(c) == 6 and i not in c and all(batch_ex[j].caption_ids != batch_ex[i].caption_ids for j in c)
        pairs = pair_batch([batch_ex[i]] * len(c), [batch_ex[j] for j in c], tok, DIM)
        expect = model.itm_scores(pairs)
        assert torch.allclose(scores[k], expect, atol=1e-5), (scores[k], expect)
        assert float(expect.max() - expect.min()) > 0  # the argmax is a real choice
        assert int(chosen[k]) == c[int(expect.argmax())] != i
    model.train()
    loss = hard.loss(model, model.encoder(batch), batch)
    loss.backward()
    assert torch.isfinite(loss) and model.encoder.blocks[0].qkv.weight.grad.abs().sum() > 0


def test_task_sampling_follows_weights_and_carries_one_task(tok, examples) -> None:
    tasks = ("mlm", "mrfr", "itm", "unimo_text")
    m = Masker(tok, tasks=tasks, mixing="sample", task_weights={"mlm": 4, "mrfr": 2, "itm": 1, "unimo_text": 1})
    seen = {t: 0 for t in tasks}
    draws_n = 800
    for _, b in draws(m, examples, draws_n, 4):
        task = tasks[int(b["task_id"])]
        seen[task] += 1
        present = {
            "mlm": bool((b["mlm_labels"] != IGNORE).any()), "mrfr": bool(b["mrfr_mask"].any()),
            "itm": bool((b["itm_labels"] != IGNORE).any()),
            "unimo_text": bool((b["unimo_text_labels"] != IGNORE).any()),
        }
        assert not any(v for t, v in present.items() if t != task), (task, present)
    for t, w in (("mlm", 0.5), ("mrfr", 0.25), ("itm", 0.125), ("unimo_text", 0.125)):
        assert abs(seen[t] / draws_n - w) < 3.5 * np.sqrt(w * (1 - w) / draws_n), seen  # within 3.5 sigma


def test_unimo_single_modality_samples_and_rewritten_captions(tok, examples) -> None:
    m = Masker(tok, tasks=("unimo_text", "unimo_image", "unimo_contrastive"))
    rewrites = {1: 0, 2: 0}
    for batch, b in draws(m, examples, 10):
        text_rows = (b["unimo_text_labels"] != IGNORE).any(1)
        assert not b["region_mask"][text_rows].any()  # text-only: no regions
        image_rows = b["unimo_image_mask"].any(1)
        assert not b["caption_mask"][image_rows].any()  # image-only: no caption
        owner, kind, ids = b["ucl_owner"], b["ucl_kind"], b["ucl_text_ids"]
        for r in range(len(owner)):
            ex = batch[int(owner[r])]
            words = ids[r][b["ucl_text_mask"][r]].tolist()[1:-1]
            if kind[r] == 0:
                assert words == ex.caption_ids
            elif kind[r] == 1:  # an attribute deleted: a subsequence of the caption
                assert len(words) < len(ex.caption_ids) and all(w in ex.caption_ids for w in words)
            elif kind[r] == 3:  # a paraphrase: other words, the same colours, every shape kept or "shape"
                assert words != ex.caption_ids
                before, after = words_of(tok.decode(ex.caption_ids)), words_of(tok.decode(words))
                assert _colours(after) == _colours(before)
                assert set(_shapes(after)) <= set(_shapes(before))
            else:
                assert words != ex.caption_ids
            rewrites[int(kind[r])] = rewrites.get(int(kind[r]), 0) + 1
        # The contrastive loss's sets: image i's positives are its caption and positive rewrites,
        # its negatives its negative rewrite and every other image's texts.
        pos = positive_texts(owner, kind, len(batch))
        for i in range(len(batch)):
            for r in range(len(owner)):
                mine = int(owner[r]) == i
                assert bool(pos[i, r]) == (mine and int(kind[r]) != UCL_KINDS["negative"])
            if (owner == i).any():
                assert pos[i, (owner == i) & (kind == UCL_KINDS["caption"])].all()
    assert rewrites[1] > 0 and rewrites[2] > 0 and rewrites[3] > 0


def _colours(words: list[str]) -> list[str]:
    return sorted(w for w in words if w in COLOURS)


def _shapes(words: list[str]) -> list[str]:
    return [PLURAL_SHAPES.get(w, w) for w in words if w in SHAPES or w in PLURAL_SHAPES]


@pytest.mark.parametrize(("rule", "text", "expected"), [
    ("synonym", "a red circle beside a blue square", {"a red circle next to a blue square"}),
    ("synonym", "a star to the left of a heart", {"a star left of a heart"}),
    ("hypernym", "two red circles above an arrow", {"two red shapes above an arrow", "two red circles above a shape"}),
    ("determiner", "an orange star", {"one orange star"}),
    ("determiner", "two green hearts", {"a pair of green hearts"}),
    ("determiner", "a pair of green hearts", {"two green hearts"}),
    ("template", "there is a red circle", {"a red circle"}),
    ("template", "close-up of a red circle", {"a red circle"}),
    ("template", "a red circle", {"there is a red circle", "a photo of a red circle"}),
    ("template", "three blue squares", {"there are three blue squares"}),
])
def test_paraphrase_rules_rewrite_known_captions(rule: str, text: str, expected: set[str]) -> None:
    seen = {paraphrase(text, np.random.default_rng(k), rules=(rule,)) for k in range(20)}
    assert seen == expected


def test_paraphrase_keeps_synthetic_captions_true_and_declines_when_no_rule_applies() -> None:
    from laitkit.pipeline.pretrain.synthetic import synthetic_samples

    rng = np.random.default_rng(0)
    assert paraphrase("hello world", rng) is None
    assert paraphrase("the sky", rng, rules=("hypernym", "determiner", "template")) is None
    captions = [s.caption for s in synthetic_samples(60)]
    rewritten = [(c, paraphrase(c, rng)) for c in captions]
    assert sum(p is not None for _, p in rewritten) >= 0.9 * len(captions)
    for c, p in rewritten:
        if p is None:
            continue
        before, after = words_of(c), words_of(p)
        assert after != before
        assert _colours(after) == _colours(before)  # colours are never touched
        assert set(_shapes(after)) <= set(_shapes(before))  # a shape is kept or becomes "shape"
        assert len(_shapes(after)) >= len(_shapes(before)) - 1  # and at most one of them


# --- IPOT and VILLA --------------------------------------------------------------------------


def test_ipot_finds_the_exact_plan_of_small_problems() -> None:
    from scipy.optimize import linprog

    cost = torch.tensor([[0.1, 0.9, 0.8], [0.7, 0.2, 0.9], [0.8, 0.6, 0.15]])
    # uniform marginals: the optimum is a permutation / 3 (Birkhoff); brute force the 6 of them
    best = min(itertools.permutations(range(3)), key=lambda p: sum(float(cost[i, p[i]]) for i in range(3)))
    exact = torch.zeros(3, 3)
    exact[range(3), list(best)] = 1 / 3
    plan = ipot(cost[None], torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool))[0]
    assert torch.allclose(plan, exact, atol=1e-4)
    # padded into a larger batch element: same plan, zeros on padding
    big = torch.rand(1, 4, 5)
    big[0, :3, :3] = cost
    pm = ipot(big, torch.tensor([[1, 1, 1, 0]], dtype=torch.bool), torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool))[0]
    assert torch.allclose(pm[:3, :3], exact, atol=1e-4) and pm[3].abs().sum() == 0 and pm[:, 3:].abs().sum() == 0
    # unequal marginals against the linear program
    rng = np.random.default_rng(0)
    c = rng.random((2, 3))
    mu, nu = np.array([0.3, 0.7]), np.array([0.2, 0.5, 0.3])
    a_eq = [np.kron(np.eye(2)[i], np.ones(3)) for i in range(2)] + [np.kron(np.ones(2), np.eye(3)[j]) for j in range(3)]
    lp = linprog(c.ravel(), A_eq=a_eq, b_eq=[*mu, *nu], bounds=(0, None))
    t = ipot(torch.tensor(c)[None], torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool),
             mu=torch.tensor(mu)[None], nu=torch.tensor(nu)[None], iterations=200)[0]
    assert np.allclose(t.numpy(), lp.x.reshape(2, 3), atol=1e-4)
    assert float((t.numpy() * c).sum()) == pytest.approx(lp.fun, abs=1e-5)


def _model(tok: TextTokenizer, tasks: tuple[str, ...], **kw) -> PretrainModel:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, feature_dim=DIM, hidden=32, layers=1, heads=2, dropout=0.0,
                      num_classes=12, num_attributes=8, **kw)
    return PretrainModel(cfg, tasks)


def test_wra_is_uniters_ot_loss_and_logs_the_matched_minus_swapped_gap(tok, examples) -> None:
    """UNITER's `ot_loss` = (sum of matched distances - sum of swapped ones) / pairs; `wra_gap` =
    mean matched - mean swapped, computed here from the transport plan independently; it is
    logged beside the losses, never added to them, and cleared on a batch with no pairs."""
    model = _model(tok, ("itm", "wra")).eval()
    masker = Masker(tok, tasks=("itm", "wra"), itm_share=1.0)
    batch = masker(examples[:16], np.random.default_rng(3), DIM)
    with torch.no_grad():
        out = model.encoder(batch)
        losses = model(batch)
    matched = batch["pair_matched"]
    t = out.text.shape[1]
    words = batch["caption_mask"][:, :t]
    sel = (matched != IGNORE) & words.any(1) & batch["region_mask"].any(1)
    pos, neg = [], []
    for r in sel.nonzero().flatten().tolist():
        x = torch.nn.functional.normalize(out.text[r][words[r]], dim=-1)
        y = torch.nn.functional.normalize(out.regions[r][batch["region_mask"][r]], dim=-1)
        cost = 1.0 - x @ y.T
        plan = ipot(cost[None], torch.ones(1, *cost.shape[:1], dtype=torch.bool),
                    torch.ones(1, cost.shape[1], dtype=torch.bool))[0]
        assert abs(float(plan.sum()) - 1.0) < 1e-4  # uniform marginals over the valid words and regions
        (pos if int(matched[r]) == 1 else neg).append(float((cost * plan).sum()))
    assert pos and neg
    assert abs(float(losses["wra"]) - (sum(pos) - sum(neg)) / (len(pos) + len(neg))) < 1e-4
    logged = model.logged()
    assert abs(logged["wra_gap"] - (np.mean(pos) - np.mean(neg))) < 1e-4
    assert "wra_gap" not in losses
    no_pairs = Masker(tok, tasks=("mlm", "wra"), itm_share=0.0)(examples[:8], np.random.default_rng(0), DIM)
    with torch.no_grad():
        assert "wra" not in model(no_pairs) and "wra_gap" not in model.logged()


def test_villa_perturbation_stays_in_its_norm_ball_and_raises_the_loss(tok, examples) -> None:
    model = _model(tok, ("villa",)).eval()
    villa = model.objectives["villa"]
    villa.init_mag = 0.0  # start from the clean input: step 0 scores the clean loss
    batch = Masker(tok, tasks=("villa",))(examples[:16], np.random.default_rng(0), DIM)
    clean = model.encoder(batch)
    for modality in ("text", "regions"):
        villa.steps = 4
        steps = villa.attack(model, batch, clean, modality)
        losses = [float(loss) for _, loss in steps]
        for delta, _ in steps:
            assert (delta.detach().flatten(1).norm(dim=1) <= villa.eps + 1e-5).all()
        # ascent: every step raises the loss (by little on the regions: BERT's 0.02 init makes the
        # heads barely sensitive to a unit-norm region perturbation at step 0)
        assert all(b > a for a, b in zip(losses, losses[1:], strict=False)), (modality, losses)
        valid = batch["text_mask"] if modality == "text" else batch["region_mask"]
        assert steps[-1][0][~valid[:, : steps[-1][0].shape[1]]].abs().sum() == 0  # padding never perturbed
    loss = model(batch)["villa"]
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


# --- config, registry, losses falling ---------------------------------------------------------


def test_config_defaults_and_validation() -> None:
    assert PretrainConfig().tasks == DEFAULT_TASKS == TASKS == ("mlm", "tags", "sgp", "mrm", "itm")
    assert OBJECTIVES["mrm"] is OBJECTIVES["mrfr"]
    with pytest.raises(ValueError, match="known: .*ernie_obj"):
        PretrainConfig(tasks=("mlm", "nope")).check_tasks()  # checked when a run starts
    with pytest.raises(ValueError, match="not in tasks"):
        PretrainConfig(tasks=("mlm",), task_weights={"itm": 1.0})
    with pytest.raises(ValueError, match="mixing"):
        PretrainConfig(mixing="random")
    with pytest.raises(ValueError, match="region_overlap_iou"):
        PretrainConfig(region_overlap_iou=1.5)
    cfg = PretrainConfig(tasks=("mlm", "itm"), mixing="sample", task_weights={"mlm": 2})
    assert cfg.masking()["task_weights"] == {"mlm": 2.0}


FALLS = [t for t in OBJECTIVES if t != "mrm"]


@pytest.mark.parametrize("task", FALLS)
def test_each_objective_loss_falls_in_30_tiny_steps(tok, examples, task: str) -> None:
    """30 CPU steps of a one-layer model on one task; mean of the last 10 below the first 10.
    Honest limit: the matching tasks (ITM, ITM-hard, Oscar's polluted tags, UNIMO's contrastive
    loss) stay at chance on fresh pairs in 30 steps (learning to match takes longer; `bench
    pretrain` checks ITM, `bench pretrain-styles` reports `pair_tasks_long`), so for them the test
    fits one fixed batch: the loss must fall, i.e. the labels are learnable. (UNIMO's once passed
    on fresh batches by noise: 2.282 -> 2.278 with the loss flat at its chance value.)"""
    model = _model(tok, (task,))
    if task == "villa":
        model.objectives[task].steps = 1  # one ascent step keeps the test quick; the attack test runs four
    masker = Masker(tok, tasks=(task,), mrm_prob=0.4)  # more masked regions per step: a steadier regression loss
    pair = task in ("itm", "itm_hard", "oscar_contrastive", "unimo_contrastive")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2 if pair else 5e-3)
    hist = []
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend (and CI has two cores)
    if pair:  # binary labels at chance on fresh pairs after 30 steps: fit one fixed batch instead
        fixed = masker(examples[:8], np.random.default_rng(1), DIM)
        batches = [fixed] * 30
    else:
        batches = [b for _, b in draws(masker, examples[:16], 30, 8)]
    for b in batches:
        loss = model(b).get(task)
        if loss is None:
            continue
        loss.backward()
        opt.step()
        opt.zero_grad()
        hist.append(float(loss.detach()))
    torch.set_num_threads(threads)
    assert len(hist) >= 24, task
    assert np.mean(hist[-10:]) < np.mean(hist[:10]), (task, hist)


def test_pretrain_run_with_class_heads_and_task_sampling(shards: Path, tok, tmp_path) -> None:
    """The stage end to end: label space from the shards, sampled tasks, weighted total, reload."""
    from laitkit.pipeline.pretrain.train import load_checkpoint, pretrain

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(t for t, _ in sorted(tok.tok.get_vocab().items(), key=lambda kv: kv[1])) + "\n")
    cfg = PretrainConfig(
        steps=12, batch_size=8, hidden=32, layers=1, heads=2, device="cpu", vocab=str(vocab), progress=False,
        tasks=("mlm", "mrc", "mrc_kl", "attr", "itm"), mixing="sample", task_weights={"mlm": 2.0},
        eval_pool=4, heldout_permille=100, threads=1, region_overlap_iou=0.4,
    )
    summary = pretrain(shards, tmp_path / "run", cfg)
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["num_classes"] == 11 and meta["num_attributes"] == 8  # 10 shapes + "background"; 8 colours
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(len(set(r) & set(cfg.tasks)) <= 1 for r in rows), rows  # one task per step
    assert len({t for r in rows for t in r if t in cfg.tasks}) >= 3
    assert summary["steps"] == 12
    model, _ = load_checkpoint(tmp_path / "run")
    assert model.objectives["mrc"].width == 12  # column 0 is the detector's background
