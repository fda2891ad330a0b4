"""`laitkit.datasets.loaders`: batches that Hugging Face's LXMERT and VisualBERT take as they are.

Tiny random model configs and a WordPiece tokenizer trained here on the test's own captions (no
hub, nothing downloaded); shards written by laitkit's own writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from laitkit.datasets.loaders import RegionShardDataset, hf_batches
from laitkit.datasets.schema import Reason, Regions, Sample
from laitkit.datasets.shards import write_shard

torch.set_num_threads(1)
D = 16
WORDS = "a red blue green circle square triangle on the left right of big small near".split()


def _sample(rng: np.random.Generator, i: int, n: int) -> Sample:
    h, w = int(rng.integers(100, 300)), int(rng.integers(100, 300))
    x0, y0 = rng.uniform(0, w / 2, n), rng.uniform(0, h / 2, n)
    boxes = np.stack([x0, y0, x0 + rng.uniform(1, w / 2, n), y0 + rng.uniform(1, h / 2, n)], 1)
    s = Sample(key=f"s{i:04d}", url=f"http://x/{i}.jpg", caption=" ".join(rng.choice(WORDS, int(rng.integers(3, 9)))))
    s.regions = Regions(detector="t", image_h=h, image_w=w, boxes=boxes,
                        features=rng.normal(size=(n, D)).astype(np.float16), obj_ids=np.zeros(n), obj_conf=np.ones(n),
                        attr_ids=np.zeros(n), attr_conf=np.ones(n))
    return s


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Sample]]:
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("shards")
    everything = []
    for shard in range(3):
        samples = [_sample(rng, shard * 10 + i, int(rng.integers(1, 12))) for i in range(10)]
        samples[0].reject("relevance", Reason.LOW_RELEVANCE, "test")  # rejected: not in batches
        everything += samples
        write_shard(out, shard, samples, config_hash="t", feature_dim=D)
    return out, everything


@pytest.fixture(scope="module")
def tokenizer(shards: tuple[Path, list[Sample]]) -> object:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator([s.caption for s in shards[1]], trainer)
    specials = [(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")]
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def _kept(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.kept]


def test_lxmert_for_pretraining_runs_on_a_batch(shards: tuple[Path, list[Sample]], tokenizer: object) -> None:
    from transformers import LxmertConfig, LxmertForPreTraining

    out, samples = shards
    batch = next(iter(hf_batches(out, model="lxmert", tokenizer=tokenizer, batch_size=5)))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "visual_feats", "visual_pos",
                          "visual_attention_mask"}
    first = _kept(samples)[:5]
    n = max(s.regions.num_boxes for s in first)
    assert batch["visual_feats"].shape == (5, n, D) and batch["visual_feats"].dtype == torch.float32
    assert batch["visual_pos"].shape == (5, n, 4)
    assert batch["visual_attention_mask"].sum(1).tolist() == [s.regions.num_boxes for s in first]
    r = first[0].regions
    expected = r.boxes / np.array([r.image_w, r.image_h, r.image_w, r.image_h], dtype=np.float32)
    np.testing.assert_allclose(batch["visual_pos"][0, : r.num_boxes].numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(batch["visual_feats"][0, : r.num_boxes].numpy(), r.features.astype(np.float32))
    assert tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True) == first[0].caption

    cfg = LxmertConfig(vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, intermediate_size=64,
                       l_layers=1, x_layers=1, r_layers=1, visual_feat_dim=D, visual_pos_dim=4, num_qa_labels=4,
                       num_object_labels=10, num_attr_labels=10)
    torch.manual_seed(0)
    model = LxmertForPreTraining(cfg).eval()
    with torch.no_grad():
        res = model(**batch)
    assert res.prediction_logits.shape == (5, batch["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(res.prediction_logits).all()


def test_visualbert_for_pretraining_runs_on_a_batch(shards: tuple[Path, list[Sample]], tokenizer: object) -> None:
    from transformers import VisualBertConfig, VisualBertForPreTraining

    out, _ = shards
    batch = next(iter(hf_batches(out, model="visualbert", tokenizer=tokenizer, batch_size=4, max_boxes=6)))
    assert {"visual_embeds", "visual_attention_mask", "visual_token_type_ids"} <= set(batch)
    assert batch["visual_embeds"].shape[1] <= 6 and batch["visual_attention_mask"].dtype == torch.long
    cfg = VisualBertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, visual_embedding_dim=D)
    torch.manual_seed(0)
    model = VisualBertForPreTraining(cfg).eval()
    with torch.no_grad():
        res = model(**batch)
    t, v = batch["input_ids"].shape[1], batch["visual_embeds"].shape[1]
    assert res.prediction_logits.shape == (4, t + v, len(tokenizer))
    assert torch.isfinite(res.prediction_logits).all()


def test_split_by_node_and_worker_reads_each_sample_once(shards: tuple[Path, list[Sample]]) -> None:
    from torch.utils.data import DataLoader

    out, samples = shards
    kept = [s.key for s in _kept(samples)]
    seen: list[str] = []
    for node in range(2):
        ds = RegionShardDataset(out, rank=node, world_size=2)  # 3 shards, 4 readers: sample-level split
        for batch in DataLoader(ds, batch_size=None, num_workers=2):
            seen.append(batch["key"])
    assert sorted(seen) == sorted(kept)
    by_shard = [it["key"] for it in RegionShardDataset(out, rank=1, world_size=3)]  # one whole shard per node
    assert by_shard == [s.key for s in _kept(samples[10:20])]
