"""Hugging Face export: a 2-step tiny LXMERT / VisualBERT run, exported by the CLI, loads in
`transformers` with no missing or unexpected weights and gives laitkit's outputs to 1e-4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from laitkit.pipeline.pretrain.config import PretrainConfig
from laitkit.pipeline.pretrain.data import DataSpec, ShardStream, find_shards
from laitkit.pipeline.pretrain.synthetic import write_synthetic_shards
from laitkit.pipeline.pretrain.tokenizer import TextTokenizer
from laitkit.pipeline.pretrain.train import load_checkpoint, pretrain

D = 16


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export") / "shards"
    write_synthetic_shards(root, 2, 24, dim=D)
    return root


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (a subprocess would import torch and transformers again: slow on 2 cores)."""
    from laitkit.jobs.cli import main

    capsys.readouterr()
    rc = main(list(args))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("style,fmt", [("lxmert", "hf-lxmert"), ("visualbert", "hf-visualbert")])
def test_export_loads_in_transformers_with_equal_outputs(style: str, fmt: str, shards: Path, tmp_path, capsys) -> None:
    import transformers

    run, out = tmp_path / "run", tmp_path / "hf"
    # LXMERT with its visual heads: feature regression, object (MRC) and attribute decoders
    tasks = ("mlm", "mrfr", "mrc", "attr", "itm") if fmt == "hf-lxmert" else ("mlm", "itm")
    cfg = PretrainConfig(style=style, size="tiny", tasks=tasks, steps=2, batch_size=6, vocab_size=300,
                         progress=False, device="cpu", eval_pool=4, warmup=1)
    pretrain(shards, run, cfg, resume=False)
    rc, stdout, stderr = cli(capsys, "pretrain", "export", "--format", fmt, str(run), str(out))
    assert rc == 0, stderr
    written = json.loads(stdout.strip().splitlines()[-1])
    assert written["format"] == fmt and written["left_out"] == []  # every trained head has its HF name

    cls = transformers.LxmertForPreTraining if fmt == "hf-lxmert" else transformers.VisualBertForPreTraining
    hf, info = cls.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    hf.eval()
    model, _ = load_checkpoint(run)
    model.eval()

    spec = DataSpec(shards=tuple(map(str, find_shards(shards))), tokenizer_dir=str(run / "tokenizer"), feature_dim=D,
                    batch_size=6)
    batch = next(iter(ShardStream(spec)))
    assert not batch["region_mask"].all(), "want a padded region in the batch"
    with torch.no_grad():
        ours = model.encoder(batch)
        logits, itm = model.heads.token(ours.text), model.heads.itm(ours.pooled)
        t = ours.text.shape[1]
        common = {"input_ids": batch["input_ids"], "attention_mask": batch["text_mask"].long(),
                  "token_type_ids": batch["segment"].clamp(max=1), "visual_attention_mask": batch["region_mask"].long(),
                  "output_hidden_states": True}
        if fmt == "hf-lxmert":
            theirs = hf(visual_feats=batch["features"], visual_pos=batch["geometry"], **common)
            base = hf.lxmert(visual_feats=batch["features"], visual_pos=batch["geometry"], **common)
            visual = hf.obj_predict_head(base.vision_output)
            assert set(visual) == {"obj", "attr", "feat"}
            # 11 labels (10 shapes, background) after column 0, the detector's own background
            assert hf.config.num_object_labels == model.objectives["mrc"].width == 12
            assert hf.config.num_attr_labels == model.objectives["attr"].width == 8
            pairs = [(theirs.prediction_logits, logits), (theirs.cross_relationship_score, itm),
                     (base.language_output, ours.text), (base.vision_output, ours.regions),
                     (base.pooled_output, ours.pooled), (visual["feat"], model.heads.region(ours.regions)),
                     (visual["obj"], model.objectives["mrc"].logits(model, ours.regions)),
                     (visual["attr"], model.objectives["attr"].logits(model, ours.regions))]
        else:
            theirs = hf(visual_embeds=batch["features"], **common)
            base = hf.visual_bert(visual_embeds=batch["features"], **common)
            pairs = [(theirs.prediction_logits[:, :t], logits), (theirs.seq_relationship_logits, itm),
                     (base.last_hidden_state[:, :t], ours.text), (base.last_hidden_state[:, t:], ours.regions),
                     (base.pooler_output, ours.pooled)]
    for a, b in pairs:
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
    assert float(itm.abs().max()) > 0  # trained weights, not an all-zero head

    tok = transformers.BertTokenizer.from_pretrained(out)
    caption = "a small red circle above the blue square"
    ours_ids = TextTokenizer.load(run / "tokenizer").encode(caption).ids
    assert tok(caption)["input_ids"] == [tok.cls_token_id, *ours_ids, tok.sep_token_id]
    assert (tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (2, 3, 4)


def test_export_refuses_another_encoder(shards: Path, tmp_path, capsys) -> None:
    cfg = PretrainConfig(size="tiny", tasks=("mlm",), steps=1, batch_size=6, vocab_size=300, progress=False,
                         device="cpu", eval_pool=4)
    pretrain(shards, tmp_path / "run", cfg, resume=False)
    run, hf = str(tmp_path / "run"), str(tmp_path / "hf")
    rc, _, stderr = cli(capsys, "pretrain", "export", "--format", "hf-lxmert", run, hf)
    assert rc == 2 and stderr.startswith("laitkit pretrain: error:") and "Traceback" not in stderr
    assert "encoder 'lxmert'" in stderr and not (tmp_path / "hf").exists()
