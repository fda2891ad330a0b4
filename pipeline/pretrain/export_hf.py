"""`laitkit pretrain export --format hf-lxmert|hf-visualbert RUN OUT`: a Hugging Face model folder.

Why a renaming and not a conversion: the `lxmert` and `visualbert` encoders are transformers'
own `LxmertModel` / `VisualBertModel`, and the shared heads (model.py) have BERT's layout, so
every exported tensor is a laitkit tensor under its Hugging Face name:

    encoder.lxmert.*        -> lxmert.*            encoder.visual_bert.* -> visual_bert.*
    (LXMERT's box_fc.bias also absorbs laitkit's box centring: b - W mu, see model.centered_box)
    heads.token.dense/norm  -> cls.predictions.transform.dense / .LayerNorm
    heads.token.decoder     -> cls.predictions.decoder (tied to the word embeddings), bias -> .bias
    heads.itm               -> cls.seq_relationship
    heads.region (LXMERT)   -> obj_predict_head.transform + decoder_dict.feat (feature regression)
    objectives.mrc.head     -> obj_predict_head.decoder_dict.obj (LXMERT; `visual_obj_loss`,
                               `num_object_labels` = detector classes + background)
    objectives.attr.head    -> obj_predict_head.decoder_dict.attr (`visual_attr_loss`, `num_attr_labels`)

The object and attribute decoders are exported when the run trained `mrc` / `attr` (with the
LXMERT encoder they sit on the shared `heads.region` transform, as LXMERT's do); otherwise the
written config turns those losses off, so `from_pretrained` expects no such weights. LXMERT's QA
head is never exported (no QA data in shards; `task_qa` off). The folder also holds the
tokenizer (`vocab.txt`, BERT uncased WordPiece), so `BertTokenizer.from_pretrained(OUT)` works.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from laitkit.pipeline.pretrain.model import BOX_MEAN, ModelConfig

FORMATS = {"hf-lxmert": "lxmert", "hf-visualbert": "visualbert"}
LXMERT_VISUAL_HEADS = {"mrc": "obj", "attr": "attr"}  # laitkit objective -> LXMERT's visual decoder


def load_run(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor], Path]:
    """(model config, weights, tokenizer folder) of a run folder, its `model.pt` or its `checkpoint.pt`."""
    from laitkit.pipeline.pretrain import checkpoint as ckpt

    path = Path(path)
    run = path if path.is_dir() else path.parent
    if not (run / "meta.json").exists():
        raise ValueError(f"{run} is not a pretraining run folder (no meta.json)")
    if path.is_file() and path.suffix == ".pt" and path.name != "model.pt":
        weights = ckpt.load(path)["model"]
    elif (run / "model.pt").exists():
        weights = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    elif (run / ckpt.CHECKPOINT).exists():
        weights = ckpt.load(run / ckpt.CHECKPOINT)["model"]
    else:
        raise ValueError(f"{run} has neither model.pt nor {ckpt.CHECKPOINT}")
    return _model_config(run), weights, run / "tokenizer"


def _model_config(run: Path) -> ModelConfig:
    if (run / "model_config.json").exists():
        return ModelConfig(**json.loads((run / "model_config.json").read_text()))
    from laitkit.pipeline.pretrain.config import PretrainConfig
    from laitkit.pipeline.pretrain.tokenizer import TextTokenizer
    from laitkit.pipeline.pretrain.train import TrainJob, model_config

    meta = json.loads((run / "meta.json").read_text())
    raw = dict(meta["config"])
    raw["tasks"], raw["stages"] = tuple(raw["tasks"]), tuple(raw.get("stages") or ())
    job = TrainJob(
        cfg=PretrainConfig(**raw), out_dir=str(run), stage_shards=(), tokenizer_dir=str(run / "tokenizer"),
        feature_dim=int(meta["feature_dim"]), resume=False, run_hash=meta["run_hash"],
    )
    return model_config(job, TextTokenizer.load(run / "tokenizer").vocab_size)


def _heads(weights: dict[str, torch.Tensor], visualbert: bool) -> dict[str, torch.Tensor]:
    w = weights
    out = {
        "cls.predictions.transform.dense.weight": w["heads.token.dense.weight"],
        "cls.predictions.transform.dense.bias": w["heads.token.dense.bias"],
        "cls.predictions.transform.LayerNorm.weight": w["heads.token.norm.weight"],
        "cls.predictions.transform.LayerNorm.bias": w["heads.token.norm.bias"],
        "cls.predictions.decoder.weight": w["heads.token.decoder.weight"],
        "cls.predictions.bias": w["heads.token.bias"],
        "cls.seq_relationship.weight": w["heads.itm.weight"],
        "cls.seq_relationship.bias": w["heads.itm.bias"],
    }
    if visualbert:
        out["cls.predictions.decoder.bias"] = w["heads.token.bias"]
    else:
        pairs = (("dense", "transform.dense"), ("norm", "transform.LayerNorm"), ("decoder", "decoder_dict.feat"))
        for src, dst in pairs:
            for p in ("weight", "bias"):
                out[f"obj_predict_head.{dst}.{p}"] = w[f"heads.region.{src}.{p}"]
        for task, key in LXMERT_VISUAL_HEADS.items():
            if f"objectives.{task}.head.weight" in w:
                for p in ("weight", "bias"):
                    out[f"obj_predict_head.decoder_dict.{key}.{p}"] = w[f"objectives.{task}.head.{p}"]
    return out


def _lxmert_visual_heads(weights: dict[str, torch.Tensor]) -> dict[str, bool]:
    """Which of LXMERT's object / attribute decoders the run has (its `mrc` / `attr` objectives)."""
    return {key: f"objectives.{task}.head.weight" in weights for task, key in LXMERT_VISUAL_HEADS.items()}


def hf_state_dict(fmt: str, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """laitkit weights under the Hugging Face pretraining model's names."""
    prefix = {"hf-lxmert": "lxmert", "hf-visualbert": "visual_bert"}[fmt]
    out = {
        f"{prefix}.{k[len('encoder.') + len(prefix) + 1:]}": v
        for k, v in weights.items()
        if k.startswith(f"encoder.{prefix}.")
    }
    out.update(_heads(weights, fmt == "hf-visualbert"))
    box = "lxmert.encoder.visn_fc.box_fc"
    if fmt == "hf-lxmert":  # laitkit centres the box first (model.centered_box): W (g - mu) + b = W g + (b - W mu)
        weight = out[f"{box}.weight"]
        out[f"{box}.bias"] = out[f"{box}.bias"] - weight @ torch.tensor(BOX_MEAN, dtype=weight.dtype)
    return out


def hf_model(fmt: str, cfg: ModelConfig, weights: dict[str, torch.Tensor] | None = None):
    """An empty `LxmertForPreTraining` / `VisualBertForPreTraining` of the laitkit model's shape
    (for LXMERT with the object / attribute decoders that `weights` has)."""
    if fmt == "hf-lxmert":
        from transformers import LxmertForPreTraining

        from laitkit.pipeline.pretrain.encoders.lxmert import lxmert_config

        return LxmertForPreTraining(lxmert_config(cfg, **_lxmert_visual_heads(weights or {})))
    from transformers import VisualBertForPreTraining

    from laitkit.pipeline.pretrain.encoders.visualbert import visualbert_config

    return VisualBertForPreTraining(visualbert_config(cfg))


def export(checkpoint: Path, out: Path, fmt: str) -> dict:
    """Write the Hugging Face folder; returns what was written (and any tensor left out)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    cfg, weights, tok_dir = load_run(Path(checkpoint))
    if cfg.encoder != FORMATS[fmt]:
        raise ValueError(
            f"--format {fmt} needs a model trained with encoder {FORMATS[fmt]!r} (style lxmert/visualbert); "
            f"this one has encoder {cfg.encoder!r}"
        )
    model = hf_model(fmt, cfg, weights)
    state = hf_state_dict(fmt, weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    ignorable = {"lxmert.embeddings.position_ids", "visual_bert.embeddings.position_ids"}
    missing = [k for k in missing if k not in ignorable]
    if missing or unexpected:
        raise ValueError(f"export {fmt}: weights do not map (missing {missing}, unexpected {unexpected})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _write_tokenizer(tok_dir, out, cfg.max_text)
    exported = {f"objectives.{t}.head.{p}" for t in LXMERT_VISUAL_HEADS for p in ("weight", "bias")}
    exported = exported if fmt == "hf-lxmert" else set()
    left_out = sorted(k for k in weights if not k.startswith(("encoder.", "heads.")) and k not in exported)
    return {"out": str(out), "format": fmt, "tensors": len(state), "left_out": left_out}


def _write_tokenizer(tok_dir: Path, out: Path, max_len: int) -> None:
    from laitkit.pipeline.pretrain.tokenizer import TextTokenizer

    TextTokenizer.load(tok_dir).save(out / "laitkit_tokenizer")  # vocab.txt by id, exactly the model's ids
    shutil.move(str(out / "laitkit_tokenizer" / "vocab.txt"), out / "vocab.txt")
    shutil.rmtree(out / "laitkit_tokenizer")
    config = {
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": max_len,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
