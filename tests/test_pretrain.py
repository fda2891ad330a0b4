"""Pretraining stage: masking puts targets where each task says, and training lowers the loss."""

from __future__ import annotations

import numpy as np
import torch

from laitkit.datasets.schema import Regions, Sample, SceneNode, TextAnnotation, make_key
from laitkit.datasets.shards import write_shard
from laitkit.pipeline.pretrain.data import Collator, to_example, vocab_from_examples
from laitkit.pipeline.pretrain.train import PretrainConfig, load_checkpoint, pretrain
from laitkit.pipeline.pretrain.vocab import MASK

CAPTIONS = [
    "a red circle left of a blue square",
    "two green triangles above a star",
    "a small yellow hexagon on a purple square",
    "an orange cross next to a black heart",
]


def make_sample(i: int, rng: np.random.Generator, dim: int = 16) -> Sample:
    caption = CAPTIONS[i % len(CAPTIONS)]
    tokens = caption.split()
    s = Sample(key=make_key(f"http://x/{i}.jpg", caption), url=f"http://x/{i}.jpg", caption=caption)
    s.accept("test")
    n = 5
    boxes = np.sort(rng.uniform(0, 300, size=(n, 4)).astype(np.float32).reshape(n, 2, 2), axis=1).reshape(n, 4)
    boxes = boxes[:, [0, 2, 1, 3]]
    s.regions = Regions(
        detector="test", image_h=300, image_w=300, boxes=boxes,
        features=rng.normal(size=(n, dim)) + (i % len(CAPTIONS)), obj_ids=np.arange(n), obj_conf=np.ones(n),
        attr_ids=-np.ones(n), attr_conf=np.zeros(n), obj_names=["circle", "square", "star", "cross", "heart"],
        attr_names=[""] * n,
    )
    s.text = TextAnnotation(
        model="test", tokens=tokens, upos=["X"] * len(tokens), tags=["X"] * len(tokens), lemmas=tokens,
        graph=[SceneNode(kind="object", lemma=tokens[2], span=(2, 3))],
    )
    return s


def test_sgp_masks_exactly_the_graph_spans() -> None:
    rng = np.random.default_rng(0)
    examples = [to_example(make_sample(i, rng)) for i in range(4)]
    vocab = vocab_from_examples(examples)
    collate = Collator(vocab, seed=1, sgp_prob=1.0, itm_neg=0.0)
    seen = False
    for _ in range(20):
        batch = collate(examples)
        sel = batch["sgp_labels"] != -100
        if sel.any():
            seen = True
            # +1 for [CLS]: the object node spans word 2, so only position 3 may be an SGP target
            assert set(torch.nonzero(sel)[:, 1].tolist()) == {3}
            assert (batch["input_ids"][sel] == MASK).all()
        assert not (batch["mlm_labels"] != -100).any()  # SGP replaces random masking for that sample
        assert batch["itm_labels"].tolist() == [1, 1, 1, 1]
    assert seen


def test_itm_negatives_get_no_masked_targets() -> None:
    rng = np.random.default_rng(0)
    examples = [to_example(make_sample(i, rng)) for i in range(4)]
    collate = Collator(vocab_from_examples(examples), seed=3, itm_neg=1.0, mask_prob=1.0)
    batch = collate(examples)
    assert batch["itm_labels"].tolist() == [0, 0, 0, 0]
    assert not (batch["mlm_labels"] != -100).any()
    assert not batch["mrm_mask"].any()


def test_pretraining_lowers_loss_and_checkpoint_loads(tmp_path) -> None:
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "shards", 0, [make_sample(i, rng) for i in range(16)], config_hash="t")
    cfg = PretrainConfig(steps=60, batch_size=8, hidden=64, layers=1, heads=2, lr=2e-3, warmup=2, device="cpu")
    summary = pretrain(tmp_path / "shards", tmp_path / "pt", cfg)
    assert summary["steps"] == 60
    assert summary["loss_last"] < 0.7 * summary["loss_first"]
    assert summary["mlm_last"] < summary["mlm_first"]
    model, vocab = load_checkpoint(tmp_path / "pt")
    assert len(vocab) == summary["vocab_size"]
    assert sum(p.numel() for p in model.parameters()) > 0
    lines = (tmp_path / "pt" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 60
