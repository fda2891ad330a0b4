"""`laitkit relevance train|eval|caption|query`: the visual-semantic embedding behind the relevance cut.

Why a command of its own: the model is trained on a user's pairs, evaluated by retrieval, and
inspected (captions from an image, image arithmetic) without running a crawl. Every action prints
one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "builtin"
HELD_OUT = "synth:1000:1"


def _model_path(spec: str) -> Path:
    from laitkit.extractors.vse_scorer import builtin_vse

    return builtin_vse() if spec == DEFAULT_MODEL else Path(spec)


def _out_file(out: str) -> Path:
    p = Path(out)
    return p if p.suffix == ".pt" else p / "model.pt"


def train_cmd(args: argparse.Namespace) -> int:
    import torch

    from laitkit.errors import UserError
    from laitkit.extractors.vse_data import default_cache, load_pairs
    from laitkit.extractors.vse_eval import calibration_plot
    from laitkit.extractors.vse_model import VSEConfig, save_model
    from laitkit.extractors.vse_recipe import BUILTIN_RECIPE, fit_relevance

    torch.set_num_threads(args.threads)
    cfg = VSEConfig(image=args.image, text=args.text, pool=args.pool, loss=args.loss, dim=args.dim)
    t0 = time.perf_counter()
    cache = Path(args.cache) if args.cache else default_cache()
    boxes = args.image == "regions"
    knobs = {k: getattr(args, k) for k in ("steps", "batch_size", "lr") if getattr(args, k) is not None}
    if args.pairs == "synth":
        (n, s), (nv, sv) = BUILTIN_RECIPE["train"], BUILTIN_RECIPE["val"]
        train = load_pairs(f"synth:{n}:{s}", cache, with_boxes=boxes)
        val = load_pairs(f"synth:{nv}:{sv}", cache, with_boxes=boxes)
        source = "synthetic web (laitkit.datasets.synth scenes: 10 shapes x 8 colours on soft backgrounds)"
    else:
        pairs = load_pairs(args.pairs, cache, with_boxes=boxes)
        n_val = max(2, int(round(len(pairs) * args.val_fraction)))
        if len(pairs) - n_val < 2:
            raise UserError(f"relevance train: {len(pairs)} pairs are too few to hold out {n_val} for the threshold")
        train, val = pairs[:-n_val], pairs[-n_val:]
        source = f"synthetic web ({args.pairs})" if args.pairs.startswith("synth:") else args.pairs
    data: dict[str, Any] = {"source": source, "pairs_spec": args.pairs,
                            "recipe": f"laitkit relevance train --pairs {args.pairs} --image {args.image} "
                                      f"--text {args.text} --seed {args.seed}"
                                      + "".join(f" --{k.replace('_', '-')} {v}" for k, v in knobs.items())}
    if args.pairs.startswith("synth"):
        from laitkit.extractors.vse_data import SYNTH_REGIONS

        data["regions"] = SYNTH_REGIONS
        data["note"] = "knows only the synthetic web's shapes and colours; retrain on your own pairs"
    model, metrics = fit_relevance(train, val, cfg, seed=args.seed, target_precision=args.target_precision, data=data,
                                   scnlm_steps=args.scnlm_steps, patience=args.patience, **knobs)  # fmt: skip
    out = save_model(model, _out_file(args.out))
    png = calibration_plot(model.calibration, out.with_name(out.stem + "_calibration.png"),
                           title=f"relevance calibration: {source[:60]}")
    metrics.update({"out": str(out), "calibration_png": str(png), "size_bytes": out.stat().st_size,
                    "train_pairs": len(train), "seconds": round(time.perf_counter() - t0, 1)})
    print(json.dumps(metrics))
    return 0


def _load(args: argparse.Namespace) -> tuple[Any, list[Any], Any]:
    from laitkit.extractors.vse_data import default_cache, load_pairs
    from laitkit.extractors.vse_model import load_model
    from laitkit.extractors.vse_train import image_inputs

    model = load_model(_model_path(args.model))
    pairs = load_pairs(args.pairs, Path(args.cache) if args.cache else default_cache(),
                       with_boxes=model.cfg.image == "regions")
    return model, pairs, model.image_vectors(image_inputs(model.cfg, pairs))


def eval_cmd(args: argparse.Namespace) -> int:
    from laitkit.extractors.vse_eval import mismatch_pr, retrieval_metrics
    from laitkit.extractors.vse_recipe import score_matched_mismatched

    model, pairs, iv = _load(args)
    out: dict[str, Any] = retrieval_metrics(iv, model.text_vectors([p.caption for p in pairs]))
    matched, negatives, negatives_are = score_matched_mismatched(model, pairs, args.seed)
    p, r = mismatch_pr(matched, negatives, model.calibration.threshold)
    out.update({"threshold": round(model.calibration.threshold, 4), "mismatch_precision": round(p, 4),
                "mismatch_recall": round(r, 4), "mismatches": negatives_are,
                "matched_below_threshold": round(float((matched < model.calibration.threshold).mean()), 4),
                "trained_on": model.data.get("source", "?")})
    print(json.dumps(out))
    return 0


def _index_of(pairs: list[Any], key: str) -> int:
    from laitkit.errors import UserError

    for i, p in enumerate(pairs):
        if p.key == key:
            return i
    raise UserError(f"no pair with key {key!r} in the pairs (first keys: {', '.join(p.key for p in pairs[:3])})")


def caption_cmd(args: argparse.Namespace) -> int:
    import torch

    from laitkit.errors import UserError

    model, pairs, iv = _load(args)
    sc = model.extras.get("scnlm")
    if sc is None:
        raise UserError("this relevance model was trained without an SC-NLM (--scnlm-steps 0)")
    i = _index_of(pairs, args.image)
    vec = torch.from_numpy(iv[i])
    structure = sc.structure_for(vec)
    print(json.dumps({"key": args.image, "caption": sc.generate(vec, structure), "structure": structure,
                      "stored_caption": pairs[i].caption}))
    return 0


def query_cmd(args: argparse.Namespace) -> int:
    from laitkit.extractors.vse_arith import nearest, query_vector

    model, pairs, iv = _load(args)
    i = _index_of(pairs, args.image)
    q = query_vector(model, iv[i], args.minus, args.plus)
    hits = [{"key": pairs[j].key, "score": round(s, 4), "caption": pairs[j].caption}
            for j, s in nearest(iv, q, args.k, exclude=i)]
    print(json.dumps({"key": args.image, "minus": args.minus, "plus": args.plus, "nearest": hits}))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("relevance", help="the image-text embedding of the relevance cut: train, eval, caption, query",
                       description="Visual-semantic embedding (VSE++ over region features) behind the relevance cut.")
    rs = p.add_subparsers(dest="relevance_command", required=True, metavar="ACTION")
    t = rs.add_parser("train", help="train on matched pairs; threshold from held-out pairs; SC-NLM decoder")
    t.add_argument("--pairs", required=True,
                   help="shard dir, .tar or .parquet; 'synth' (the built-in recipe) or synth:N:SEED")
    t.add_argument("--out", required=True, help="MODEL_DIR (writes model.pt) or a .pt path")
    t.add_argument("--image", choices=("regions", "pixels"), default="regions", help="image tower: regions or pixels")
    t.add_argument("--text", choices=("gru", "bow"), default="gru", help="text tower: GRU or bag of words")
    t.add_argument("--pool", choices=("attention", "mean"), default="attention", help="pooling of region/word states")
    t.add_argument("--loss", choices=("vse++", "infonce", "both"), default="both", help="contrastive loss")
    t.add_argument("--dim", type=int, default=128, help="embedding size")
    t.add_argument("--steps", type=int, default=None, help="most steps (default: the recipe's, 400)")
    t.add_argument("--batch-size", type=int, default=None, help="default: the recipe's, 128")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    t.add_argument("--patience", type=int, default=3,
                   help="stop after this many held-out R@1 checks (every 50 steps) without a gain")
    t.add_argument("--scnlm-steps", type=int, default=500, help="0: no caption decoder")
    t.add_argument("--val-fraction", type=float, default=0.1, help="held out for the threshold (shard pairs)")
    t.add_argument("--target-precision", type=float, default=0.9, help="calibration target precision")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.add_argument("--threads", type=int, default=1, help="torch threads")
    t.set_defaults(func=train_cmd)
    for name, func, helptext in (
        ("eval", eval_cmd, "image→text / text→image R@1/5/10, median rank, mismatch precision/recall"),
        ("caption", caption_cmd, "SC-NLM caption of one image (by key)"),
        ("query", query_cmd, "multimodal arithmetic: image − words + words → nearest images"),
    ):
        a = rs.add_parser(name, help=helptext)
        a.add_argument("--model", default=DEFAULT_MODEL, help="model.pt / MODEL_DIR, or 'builtin'")
        a.add_argument("--pairs", default=HELD_OUT, help=f"held-out pairs (default {HELD_OUT})")
        a.add_argument("--seed", type=int, default=0, help="random seed")
        if name != "eval":
            a.add_argument("--image", required=True, help="the key of a pair in --pairs")
        if name == "query":
            a.add_argument("--minus", action="append", default=[], metavar="WORD", help="word to subtract (repeats)")
            a.add_argument("--plus", action="append", default=[], metavar="WORD", help="word to add (repeats)")
            a.add_argument("--k", type=int, default=5, help="results to print")
        a.set_defaults(func=func)
    for a in rs.choices.values():
        a.add_argument("--cache", default=None, help="feature cache (default ~/.cache/laitkit/vse, $LAITKIT_CACHE)")
