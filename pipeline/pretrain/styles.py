"""Style presets: `pretrain.style: NAME` trains in the manner of one published system.

Why pure data: a style is a choice of encoder, objectives, their weights and mixing, masking
options and a model size, nothing else; the engine already does each piece. Applying one
(config.py) fills in every key the user did not set, so `style: uniter` plus `steps: 1000` is
UNITER for 1000 steps, and `style: lxmert` plus `size: tiny` is a CPU-sized LXMERT.
Objective names are those registered in objectives (`OBJECTIVES`); `reference` says what the
paper did and what laitkit simplifies.

Sizes: `tiny` (tests, CPU), `small`, `base` (768 hidden, 12 heads, 12 layers; LXMERT 9/5/5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128, "streams": (1, 1, 1), "image_size": 64},
    "small": {"hidden": 256, "layers": 4, "heads": 4, "intermediate": 1024, "streams": (3, 2, 2), "image_size": 128},
    "base": {"hidden": 768, "layers": 12, "heads": 12, "intermediate": 3072, "streams": (9, 5, 5), "image_size": 224},
}
# ViLBERT-base: 6 plain BERT layers on text, then 6 co-attention layers (each + a TRM per stream).
VILBERT_STREAMS = {"tiny": (1, 1, 1), "small": (2, 1, 2), "base": (6, 1, 6)}
PIXEL_SAMPLES = {"tiny": 8, "small": 32, "base": 100}
PIXEL_BACKBONES = {"tiny": "tiny", "small": "resnet18", "base": "resnet50"}


def size_settings(size: str, encoder: str) -> dict[str, Any]:
    """PretrainConfig keys for a named size: hidden/layers/heads and the encoder options it implies."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known: {', '.join(SIZES)}")
    s = SIZES[size]
    opts: dict[str, Any] = {"intermediate": s["intermediate"]}
    if encoder in ("lxmert", "vilbert"):
        lang, reg, cross = (VILBERT_STREAMS[size] if encoder == "vilbert" else s["streams"])
        opts.update(l_layers=lang, r_layers=reg, x_layers=cross)
    if encoder == "pixel":
        opts.update(image_size=s["image_size"], pixel_samples=PIXEL_SAMPLES[size], backbone=PIXEL_BACKBONES[size])
    return {"hidden": s["hidden"], "layers": s["layers"], "heads": s["heads"], "encoder_options": opts}


@dataclass(frozen=True)
class Style:
    encoder: str
    tasks: tuple[str, ...]
    reference: str  # the paper's setting, and what laitkit does differently
    paper: str
    task_weights: dict[str, float] = field(default_factory=dict)
    mixing: str = "sum"  # sum: every objective every step; sample: one task per step, by weight (UNITER)
    masking: dict[str, Any] = field(default_factory=dict)  # e.g. conditional_masking, region_overlap_iou
    encoder_options: dict[str, Any] = field(default_factory=dict)
    size: str = "base"

    def settings(self) -> dict[str, Any]:
        """Every PretrainConfig key this style sets (before the user's own keys win)."""
        out: dict[str, Any] = {"encoder": self.encoder, "tasks": self.tasks, "size": self.size, "mixing": self.mixing}
        if self.task_weights:
            out["task_weights"] = dict(self.task_weights)
        out.update(self.masking)
        if self.encoder_options:
            out["encoder_options"] = dict(self.encoder_options)
        return out


STYLES: dict[str, Style] = {
    "visualbert": Style(
        "visualbert", ("mlm", "itm"), paper="Li et al. 2019, VisualBERT",
        reference="BERT-base over [caption; regions], no box geometry; masked LM with the image and "
        "sentence-image prediction (one of two captions matches), COCO captions.",
    ),
    "vilbert": Style(
        "vilbert", ("mlm", "mrc_kl", "itm"), paper="Lu et al. 2019, ViLBERT; 12-in-1 (Lu et al. 2020)",
        masking={"region_overlap_iou": 0.4},
        reference="two streams with co-attention (text: 6 BERT layers then 6 Co-TRM); masked multi-modal "
        "modelling (15 % words, 15 % regions, region target = detector class distribution, KL) and "
        "alignment prediction; 12-in-1's masking also masks regions overlapping a masked one (IoU > 0.4). "
        "Simplified: both streams share one hidden size.",
    ),
    "lxmert": Style(
        "lxmert", ("mlm", "mrfr", "mrc", "attr", "itm"), paper="Tan & Bansal 2019, LXMERT",
        reference="L/R/X encoders 9/5/5; masked cross-modality LM, masked object prediction (RoI feature "
        "regression, detected-label and attribute classification), cross-modality matching. "
        "Image QA pretraining omitted (no QA data in shards).",
    ),
    "uniter": Style(
        "single-stream", ("mlm", "mrfr", "mrc_kl", "itm", "wra"), paper="Chen et al. 2020, UNITER",
        mixing="sample", task_weights={"mlm": 2.0, "mrfr": 1.0, "mrc_kl": 1.0, "itm": 1.0, "wra": 1.0},
        masking={"conditional_masking": True},
        encoder_options={"region_geometry": True},
        reference="single stream, region = LN(feature) + LN(7-d box); MLM, MRFR, MRC-kl, ITM with WRA "
        "(IPOT), conditional masking (one modality per sample), one task sampled per mini-batch.",
    ),
    "unicoder-vl": Style(
        "single-stream", ("mlm", "mrc", "itm"), paper="Li et al. 2020, Unicoder-VL",
        reference="single stream, region feature + box; MLM, masked object classification against the "
        "detector's label, visual-linguistic matching.",
    ),
    "vl-bert": Style(
        "single-stream", ("mlm", "mrc"), paper="Su et al. 2020, VL-BERT",
        encoder_options={"visual_text": True},
        reference="single stream with a visual feature embedding on every token; masked LM with visual "
        "clues and masked RoI classification with linguistic clues; no sentence-image prediction (it hurt). "
        "Simplified: the words' visual embedding is the mean region feature, not a full-image RoI; no "
        "text-only corpus.",
    ),
    "imagebert": Style(
        "single-stream", ("mlm", "mrc", "mrfr", "itm"), paper="Qi et al. 2020, ImageBERT",
        reference="single stream, region feature + box; MLM, masked object classification, masked region "
        "feature regression, ITM; multi-stage pretraining (LAIT, then CC+SBU): use `stages`.",
    ),
    "interbert": Style(
        "single-stream", ("mlm_span", "mrc", "itm_hard"), paper="Lin et al. 2020, InterBERT",
        masking={"region_overlap_iou": 0.4},
        reference="masked segment modelling (spans of words), masked region modelling with overlapping "
        "regions masked together, image-text matching with hard negatives. Simplified: single stream "
        "(no separate single-modal streams after the all-attention layers).",
    ),
    "oscar": Style(
        "single-stream", ("mlm", "tags", "oscar_contrastive"), paper="Li et al. 2020, Oscar",
        reference="[words; object tags; regions] with tags as a third segment; masked token loss over "
        "words and tags, contrastive loss on polluted tag sequences (50 % replaced by another image's tags).",
    ),
    "ernie-vil": Style(
        "vilbert", ("mlm", "ernie_obj", "ernie_attr", "ernie_rel", "mrc", "itm"),
        paper="Yu et al. 2021, ERNIE-ViL",
        reference="two-stream (ViLBERT's architecture); scene-graph prediction: mask the caption tokens of "
        "objects, attributes and relations of the parsed scene graph and predict them; plus MLM, masked "
        "region prediction, ITM.",
    ),
    "villa": Style(
        "single-stream", ("villa", "mrfr"), paper="Gan et al. 2020, VILLA",
        reference="UNITER backbone; adversarial perturbations on the text and region embeddings (FreeLB, "
        "with a KL consistency term) while pretraining MLM and ITM; plus MRFR.",
    ),
    "unimo": Style(
        "single-stream", ("mlm", "unimo_text", "unimo_image", "unimo_contrastive"), paper="Li et al. 2021, UNIMO",
        reference="one transformer on text-only, image-only and paired batches; cross-modal contrastive "
        "learning with rewritten positive and negative captions. Simplified: text-only and image-only "
        "batches are drawn from the shards' pairs with one modality removed.",
    ),
    "pixel-bert": Style(
        "pixel", ("mlm", "itm"), paper="Huang et al. 2020, Pixel-BERT",
        reference="no detector: a ResNet over the image pixels, trained end to end with the transformer; "
        "random pixel sampling (100 feature-map pixels per image in training); MLM and ITM. "
        "Backbone random-init (never downloaded): `tiny` at size tiny, resnet18 small, resnet50 base.",
    ),
}


def describe() -> dict[str, dict[str, Any]]:
    """`laitkit pretrain styles`: every style with its encoder, tasks and reference setting."""
    return {
        name: {
            "encoder": s.encoder, "tasks": list(s.tasks), "task_weights": s.task_weights, "mixing": s.mixing,
            "masking": s.masking, "encoder_options": s.encoder_options, "size": s.size, "paper": s.paper,
            "reference": s.reference,
        }
        for name, s in STYLES.items()
    }


def expand(kw: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a PretrainConfig with its `style` and `size` filled in.

    Precedence: the user's keys, then the size's, then the style's; `encoder_options` merge key by
    key in the same order. Every key a style sets is a PretrainConfig field.
    """
    out: dict[str, Any] = {}
    options: dict[str, Any] = {}
    name = kw.get("style") or ""
    if name:
        if name not in STYLES:
            raise ValueError(f"unknown pretrain style {name!r}; known: {', '.join(STYLES)}")
        for key, value in STYLES[name].settings().items():
            if key == "encoder_options":
                options.update(value)
            else:
                out[key] = value
    size = kw.get("size", out.get("size", ""))
    if size:
        sized = size_settings(size, kw.get("encoder", out.get("encoder", "single-stream")))
        options = {**sized.pop("encoder_options"), **options}
        out.update(sized)
    out.update({k: v for k, v in kw.items() if k != "encoder_options"})
    out["encoder_options"] = {**options, **dict(kw.get("encoder_options") or {})}
    return out
