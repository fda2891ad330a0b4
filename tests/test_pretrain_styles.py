"""Encoders and style presets: two-stream shapes and cross-modal flow, the embed/encode contract,
style precedence, `pretrain styles` JSON, and every preset training a few tiny CPU steps."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from laitkit.pipeline.pretrain.config import PretrainConfig
from laitkit.pipeline.pretrain.data import DataSpec, ShardStream, find_shards
from laitkit.pipeline.pretrain.masking import GEOM_DIM
from laitkit.pipeline.pretrain.model import ModelConfig, PretrainModel
from laitkit.pipeline.pretrain.objectives import OBJECTIVES
from laitkit.pipeline.pretrain.styles import STYLES
from laitkit.pipeline.pretrain.synthetic import write_synthetic_shards
from laitkit.pipeline.pretrain.train import build_tokenizer, pretrain

B, T, R, D = 3, 7, 5, 16


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """Shards with rendered JPEGs (Pixel-BERT) and spaCy scene graphs (ERNIE-ViL); one shared vocab."""
    root = tmp_path_factory.mktemp("styles")
    write_synthetic_shards(root / "shards", 2, 24, dim=D, annotate=True, images=True)
    build_tokenizer(root / "shards", root / "tok", vocab_size=300)
    return root / "shards", root / "tok"


def toy_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b = {
        "input_ids": torch.randint(5, 40, (B, T), generator=g),
        "segment": torch.zeros(B, T, dtype=torch.long),
        "text_mask": torch.ones(B, T, dtype=torch.bool),
        "features": torch.randn(B, R, D, generator=g),
        "geometry": torch.rand(B, R, GEOM_DIM, generator=g),
        "region_mask": torch.ones(B, R, dtype=torch.bool),
        "image": torch.randint(0, 256, (B, 3, 64, 64), generator=g).to(torch.uint8),
    }
    b["text_mask"][1, 5:] = False
    b["region_mask"][2] = False  # an image with no regions
    return b


def tiny(encoder: str, **kw) -> ModelConfig:
    base = {"vocab_size": 40, "feature_dim": D, "hidden": 32, "layers": 1, "heads": 2, "dropout": 0.0}
    return ModelConfig(**{**base, "encoder": encoder, **kw})


@pytest.mark.parametrize("encoder", ["lxmert", "vilbert"])
def test_two_stream_shapes_and_cross_attention_flow(encoder: str) -> None:
    torch.manual_seed(0)
    enc = PretrainModel(tiny(encoder, l_layers=2, r_layers=1, x_layers=2), ()).encoder.eval()
    batch = toy_batch()
    out = enc(batch)
    assert out.text.shape == (B, T, 32) and out.regions.shape == (B, R, 32) and out.pooled.shape == (B, 32)
    assert torch.isfinite(out.text).all() and torch.isfinite(out.regions[:2]).all() and torch.isfinite(out.pooled).all()
    # Cross-attention: changing only the regions changes the text states, and only the words the regions.
    other = dict(batch, features=batch["features"] + 1.0)
    assert (enc(other).text[0] - out.text[0]).abs().max() > 1e-4
    ids = batch["input_ids"].clone()
    ids[0, 1] = 5 if int(ids[0, 1]) != 5 else 6
    assert (enc(dict(batch, input_ids=ids)).regions[0] - out.regions[0]).abs().max() > 1e-4
    # ...and samples stay apart: changing sample 0's regions leaves sample 1's text as it was.
    only0 = batch["features"].clone()
    only0[0] += 1.0
    assert torch.allclose(enc(dict(batch, features=only0)).text[1], out.text[1], atol=1e-5)


@pytest.mark.parametrize("encoder,options", [
    ("single-stream", {}), ("single-stream", {"visual_text": True, "region_geometry": False}),
    ("visualbert", {}), ("lxmert", {}), ("vilbert", {}), ("pixel", {"image_size": 64, "pixel_samples": 6}),
])
def test_encode_reads_only_the_embeddings(encoder: str, options: dict) -> None:
    """forward == encode(embed); encode never re-reads ids or features (VILLA perturbs the embeddings)."""
    torch.manual_seed(0)
    enc = PretrainModel(tiny(encoder, **options), ()).encoder.eval()
    batch = toy_batch()
    emb = enc.embed(batch)
    ref = enc.encode(emb, batch)
    garbage = dict(batch, input_ids=torch.zeros_like(batch["input_ids"]), features=torch.zeros_like(batch["features"]))
    again = enc.encode(emb, garbage)
    assert torch.equal(ref.text, again.text) and torch.equal(ref.pooled, again.pooled)
    assert torch.allclose(enc(batch).text, ref.text, atol=1e-6)
    assert ref.text.shape[:2] == batch["input_ids"].shape
    if encoder != "pixel":
        assert ref.regions.shape[:2] == batch["features"].shape[:2]
    noise = 0.1 * torch.randn(emb.text.shape, generator=torch.Generator().manual_seed(1))
    perturbed = enc.encode(type(emb)(text=emb.text + noise, regions=emb.regions), batch)
    assert (perturbed.pooled - ref.pooled).abs().max() > 1e-5


def test_pixel_encoder_samples_cells_in_training_only() -> None:
    enc = PretrainModel(tiny("pixel", image_size=64, pixel_samples=6), ()).encoder
    batch = toy_batch()
    enc.train()
    assert enc.embed(batch).regions.shape[1] == 6
    enc.eval()
    assert enc.embed(batch).regions.shape[1] == 16  # a 64 px image through the stride-16 tiny ResNet: 4 x 4


def test_style_fills_only_keys_the_user_did_not_set() -> None:
    cfg = PretrainConfig(style="visualbert", size="tiny", hidden=48, encoder_options={"intermediate": 96})
    assert cfg.encoder == "visualbert" and cfg.tasks == ("mlm", "itm")
    assert (cfg.hidden, cfg.heads, cfg.layers) == (48, 2, 2)  # hidden explicit; heads/layers from size tiny
    assert cfg.encoder_options["intermediate"] == 96
    lx = PretrainConfig(style="pixel-bert", size="tiny", tasks=("mlm",))
    assert lx.tasks == ("mlm",) and lx.encoder_options["backbone"] == "tiny" and lx.encoder_options["image_size"] == 64
    assert PretrainConfig(encoder="lxmert", size="base").encoder_options["l_layers"] == 9
    with pytest.raises(ValueError, match="unknown pretrain style"):
        PretrainConfig(style="nope")
    with pytest.raises(ValueError, match="unknown encoder option"):
        PretrainConfig(encoder_options={"depth": 3}).check_tasks()  # checked when a run starts


def test_styles_cli_prints_every_style_with_encoder_and_tasks() -> None:
    r = subprocess.run([sys.executable, "-m", "laitkit.jobs.cli", "pretrain", "styles"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    styles = json.loads(r.stdout.strip().splitlines()[-1])["styles"]
    want = {"visualbert", "vilbert", "lxmert", "uniter", "unicoder-vl", "vl-bert", "imagebert", "interbert", "oscar",
            "ernie-vil", "villa", "unimo", "pixel-bert"}
    assert set(styles) == want
    for s in styles.values():
        assert s["encoder"] and s["tasks"] and s["reference"]
    assert styles["lxmert"]["encoder"] == "lxmert" and styles["vilbert"]["masking"]["region_overlap_iou"] == 0.4


def test_every_preset_encoder_trains_one_step_on_a_real_batch(corpus) -> None:
    """Each preset's encoder, options and objectives do forward and backward on a real batch."""
    shards, tok = corpus
    for name in STYLES:
        cfg = PretrainConfig(style=name, size="tiny")
        spec = DataSpec(shards=tuple(map(str, find_shards(shards))), tokenizer_dir=str(tok), feature_dim=D,
                        batch_size=8, image_size=int(cfg.encoder_options.get("image_size", 0)),
                        masking=cfg.masking())  # the style's own tasks get their labels
        batch = next(iter(ShardStream(spec)))
        batch.pop("position")
        from laitkit.pipeline.pretrain.label_space import corpus_label_space
        from laitkit.pipeline.pretrain.tokenizer import TextTokenizer

        classes, attrs = corpus_label_space(find_shards(shards), cfg.tasks)  # MRC / attribute heads' sizes
        mcfg = ModelConfig(vocab_size=TextTokenizer.load(tok).vocab_size, feature_dim=D, hidden=cfg.hidden,
                           layers=cfg.layers, heads=cfg.heads, encoder=cfg.encoder, num_classes=classes,
                           num_attributes=attrs, **cfg.encoder_options)
        model = PretrainModel(mcfg, cfg.tasks)
        losses = model(batch)
        assert losses and all(math.isfinite(float(v.detach())) for v in losses.values()), name
        sum(losses.values()).backward()
        grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), name


@pytest.mark.parametrize("name", list(STYLES))
def test_every_preset_runs_3_steps_on_cpu(name: str, corpus, tmp_path) -> None:
    style = STYLES[name]
    assert not [t for t in style.tasks if t not in OBJECTIVES], name  # every style's objectives exist
    shards, tok = corpus
    cfg = PretrainConfig(style=name, size="tiny", steps=3, batch_size=6, vocab=str(tok), progress=False,
                         device="cpu", eval_pool=4, warmup=1)
    summary = pretrain(shards, tmp_path / "run", cfg, resume=False)
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)
    seen = {t for r in rows for t in style.tasks if t in r}
    assert seen, f"no task of {style.tasks} produced a loss"
    assert summary["steps"] == 3


def test_pair_tasks_long_step_counts_only_steps_that_logged_the_task() -> None:
    """`pair_tasks_long`'s detector: the run's own step at which the task's last 20 logged values
    average 0.02 below chance; steps that did not log it (task sampling) are skipped, never read as 0."""
    from laitkit.jobs.bench_pretrain_styles import CHANCE, leaves_chance_at

    chance = CHANCE["itm"]
    rows = [{"step": s, "mlm": 4.0} if s % 2 else {"step": s, "itm": chance if s < 60 else chance - 0.045}
            for s in range(200)]
    # itm is logged on even steps; from step 60 on it is 0.045 below chance. The 20-value mean is
    # 0.02 below chance once 9 of its values are low (0.045 * 9 / 20 = 0.02025; 8 give 0.018):
    # the 9th low value is logged at step 60 + 2 * 8 = 76, reported 1-based.
    assert leaves_chance_at(rows, "itm") == 77
    assert leaves_chance_at([{"step": s, "itm": chance - 0.015} for s in range(100)], "itm") is None
    assert leaves_chance_at([{"step": s, "wra": -0.03} for s in range(19)], "wra") is None  # window not full
    assert leaves_chance_at([{"step": s, "wra": -0.03} for s in range(20)], "wra") == 20
