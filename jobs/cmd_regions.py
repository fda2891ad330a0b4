"""`laitkit regions extract|train-synthetic|eval-synthetic|export`: region features outside the pipeline.

Why standalone commands: a user with a folder of images wants BUTD-style features without a Ray
job; the tiny detector must be re-trainable from a seed by anyone; and a finished corpus must be
exportable to the files LXMERT, UNITER and Oscar/VinVL read. All logic lives in `extractors.regions*`; this
module only parses arguments and prints one JSON summary line on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from laitkit.errors import UserError

log = logging.getLogger("laitkit.regions")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """Detector and box-selection flags shared by `extract` and the bench."""
    p.add_argument("--config", default="tiny",
                   help="tiny | random-tiny | random-tiny-fpn | random-r101-c4 | path to a detectron2 YAML")
    p.add_argument("--weights", default=None,
                   help=".pth (safe: torch.load weights_only) or .pkl (Python pickle: only files you trust)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--min-boxes", type=int, default=10, help="fewest boxes kept per image")
    p.add_argument("--max-boxes", type=int, default=100, help="most boxes kept per image")
    p.add_argument("--fixed-boxes", type=int, default=None, help="exactly N boxes per image (e.g. 36)")
    p.add_argument("--conf-thresh", type=float, default=0.2, help="confidence a box needs beyond min-boxes")
    p.add_argument("--nms-thresh", type=float, default=0.3, help="IoU of per-class non-maximum suppression")
    p.add_argument("--attr-thresh", type=float, default=0.1, help="confidence an attribute needs to be reported")
    p.add_argument("--min-size", type=int, default=None, help="shortest side (default: the detector's; VG 600)")
    p.add_argument("--max-size", type=int, default=None, help="longest side cap (default: the detector's; VG 1000)")
    p.add_argument("--batch-size", type=int, default=4, help="images per detector batch")
    p.add_argument("--box-mode", choices=("regressed", "proposal"), default="regressed",
                   help="with --selection refined: report the regressed box or the proposal")
    p.add_argument("--selection", choices=("auto", "caffe", "refined"), default="auto",
                   help="caffe: generate_tsv.py's rule (default for the VG layout); refined: NMS on regressed boxes")
    p.add_argument("--mode", choices=("detector", "grid"), default="detector",
                   help="grid: features of a --grid-size x --grid-size grid of cells, no detection")
    p.add_argument("--grid-size", type=int, default=8, help="cells per side in grid mode")
    p.add_argument("--soft-topk", type=int, default=32, help="classes of each box's distribution to keep")
    p.add_argument("--min-image-side", type=int, default=32, help="shorter side below this: too_small verdict")
    p.add_argument("--object-vocab", default=None, help="object names file, one per line, model order")
    p.add_argument("--attribute-vocab", default=None, help="attribute names file, one per line, model order")


def config_from_args(args: argparse.Namespace) -> Any:
    from laitkit.extractors.regions import RegionsConfig

    return RegionsConfig(
        config=args.config, weights=args.weights, device=args.device, min_boxes=args.min_boxes,
        max_boxes=args.max_boxes, fixed_boxes=args.fixed_boxes, conf_thresh=args.conf_thresh,
        nms_thresh=args.nms_thresh, attr_thresh=args.attr_thresh, min_size=args.min_size, max_size=args.max_size,
        batch_size=args.batch_size, box_mode=args.box_mode, object_vocab=args.object_vocab, selection=args.selection,
        mode=args.mode, grid_size=args.grid_size, soft_topk=args.soft_topk, min_image_side=args.min_image_side,
        attribute_vocab=args.attribute_vocab,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("regions", help="region features with detectron2 (extract, train the tiny detector, export)")
    actions = p.add_subparsers(dest="regions_command", required=True, metavar="ACTION")

    ex = actions.add_parser("extract", help="BUTD region features for image files -> <stem>.npz + <stem>.json")
    ex.add_argument("inputs", nargs="+", type=Path, help="image files or directories of images")
    ex.add_argument("--out", required=True, type=Path, help="output directory")
    add_selection_args(ex)
    ex.set_defaults(func=run_extract)

    tr = actions.add_parser("train-synthetic", help="train the tiny detector on synthetic scenes (CPU)")
    tr.add_argument("--out", required=True, type=Path, help="weights file to write (.pth); metadata goes to .json")
    tr.add_argument("--seed", type=int, default=0, help="random seed")
    tr.add_argument("--iters", type=int, default=1000, help="training iterations")
    tr.add_argument("--batch", type=int, default=8, help="images per training batch")
    tr.add_argument("--lr", type=float, default=2e-3, help="learning rate")
    tr.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1)")
    tr.add_argument("--render-workers", type=int, default=1, help="processes rendering scenes (0 = inline)")
    tr.add_argument("--time-budget", type=float, default=840.0, help="stop after this many seconds")
    tr.add_argument("--eval-images", type=int, default=200, help="held-out scenes for map50 (0 = skip)")
    tr.set_defaults(func=run_train)

    ev = actions.add_parser("eval-synthetic", help="map50 and attribute accuracy on held-out synthetic scenes")
    ev.add_argument("--config", default="tiny", help="detector preset or detectron2 YAML")
    ev.add_argument("--weights", default=None, help="detector weights (.pth/.pkl; none: the preset's)")
    ev.add_argument("--images", type=int, default=200, help="synthetic evaluation images")
    ev.add_argument("--seed", type=int, default=1_000_003, help="random seed of the evaluation images")
    ev.add_argument("--threads", type=int, default=1, help="torch threads")
    ev.set_defaults(func=run_eval)

    xp = actions.add_parser("export", help="write kept samples' regions for LXMERT, UNITER or Oscar/VinVL")
    xp.add_argument("--format", required=True, choices=("lxmert-tsv", "uniter-npz", "uniter-lmdb", "oscar-tsv"),
                    help="the consuming project's format (required)")
    xp.add_argument("--num-classes", type=int, default=None,
                    help="object classes for UNITER soft_labels (default: from the detector; VG 1600)")
    xp.add_argument("--boxes", type=int, default=36, help="lxmert-tsv: the box count every image must have")
    xp.add_argument("--any-boxes", action="store_true", help="lxmert-tsv: write images with any box count")
    xp.add_argument("--source", default="laitkit", help="lxmert-tsv: the caption source name in sentf")
    xp.add_argument("--conf-th", type=float, default=0.2, help="uniter-lmdb: conf_th of the db (-1: fixed --num-bb)")
    xp.add_argument("--max-bb", type=int, default=100, help="uniter-lmdb")
    xp.add_argument("--min-bb", type=int, default=10, help="uniter-lmdb")
    xp.add_argument("--num-bb", type=int, default=36, help="uniter-lmdb, with --conf-th -1")
    xp.add_argument("--compress", action="store_true", help="uniter-lmdb: compressed npz values (--compressed_db)")
    xp.add_argument("--no-pos", action="store_true", help="oscar-tsv: features without the 6-d box position")
    xp.add_argument("shards", nargs="+", type=Path, help="shard .tar files or shard directories")
    xp.add_argument("out", type=Path, help="output .tsv file (lxmert-tsv) or directory (the others)")
    xp.set_defaults(func=run_export)


def _image_files(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"no such image file or directory: {p}")
    if not files:
        raise UserError("no images found")
    return files


def run_extract(args: argparse.Namespace) -> int:
    from laitkit.datasets.codec import encode_npz
    from laitkit.extractors.regions import RegionExtractor

    files = _image_files(args.inputs)
    ext = RegionExtractor(config_from_args(args))
    args.out.mkdir(parents=True, exist_ok=True)
    ok = failed = 0
    errors: dict[str, str] = {}
    chunk = max(1, args.batch_size) * 8
    from laitkit.pipeline.progress import bar

    pbar = bar(len(files), "regions", "img")
    for start in range(0, len(files), chunk):
        part = files[start : start + chunk]
        pbar.update(len(part))
        for path, res in zip(part, ext.extract([f.read_bytes() for f in part]), strict=True):
            if isinstance(res, str):
                failed += 1
                errors[str(path)] = res
                print(f"[regions] {path}: {res}", file=sys.stderr)
                continue
            (args.out / f"{path.stem}.npz").write_bytes(encode_npz(res.arrays()))
            (args.out / f"{path.stem}.json").write_text(json.dumps(res.meta()) + "\n", encoding="utf-8")
            ok += 1
    pbar.close()
    print(json.dumps({"detector": ext.detector, "images": len(files), "ok": ok, "failed": failed,
                      "out": str(args.out)}))
    return 0 if ok or not files else 1


def run_train(args: argparse.Namespace) -> int:
    from laitkit.extractors.regions_synth import train_synthetic

    if args.out.suffix != ".pth":
        raise UserError("--out must end in .pth (weights are saved for torch.load(weights_only=True))")
    meta = train_synthetic(
        args.out, seed=args.seed, iters=args.iters, batch=args.batch, lr=args.lr, threads=args.threads,
        render_workers=args.render_workers, time_budget_s=args.time_budget, eval_images=args.eval_images,
    )
    print(json.dumps(meta))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from laitkit.extractors.regions_synth import evaluate_synthetic

    torch.set_num_threads(args.threads)
    print(json.dumps(evaluate_synthetic(args.weights, n_images=args.images, seed=args.seed, config=args.config)))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from laitkit.extractors.regions_export import export, iter_shard_samples

    options: dict[str, Any] = {
        "lxmert-tsv": {"boxes": args.boxes, "any_boxes": args.any_boxes, "source": args.source},
        "uniter-lmdb": {"conf_th": args.conf_th, "max_bb": args.max_bb, "min_bb": args.min_bb, "num_bb": args.num_bb,
                        "compress": args.compress},
        "oscar-tsv": {"add_pos": not args.no_pos},
    }.get(args.format, {})
    counts = export(args.format, iter_shard_samples(args.shards), args.out, args.num_classes, **options)
    print(json.dumps({"format": args.format, "out": str(args.out), **counts}))
    return 0 if counts.get("written", 0) else 1
