"""`laitkit pretrain`: train on shards, build a tokenizer, evaluate, list the styles, export to Hugging Face.

    laitkit pretrain SHARDS --out DIR [--steps ...] [--resume] [--workers N]
    laitkit pretrain CONFIG.yaml [--workers N] [--resume]     (the config's `pretrain:` section)
    laitkit pretrain tokenizer SHARDS --out DIR [--vocab-size N]
    laitkit pretrain eval CHECKPOINT SHARDS [--pool N]
    laitkit pretrain styles                                   (JSON: every style preset)
    laitkit pretrain export --format hf-lxmert|hf-visualbert CHECKPOINT OUT

Why one command with verbs rather than separate commands: they share the run folder and the
shards argument, and `laitkit pretrain --help` then documents the whole training workflow.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from laitkit.errors import UserError

VERBS = ("tokenizer", "eval", "styles", "export")


def _shards_dir(path: str) -> Path:
    from laitkit.pipeline.pretrain.data import find_shards

    p = Path(path)
    if not p.exists() or not find_shards(p):
        raise UserError(f"no WebDataset shards (*.tar) under {p}")
    return p


def _config_from_args(args: argparse.Namespace) -> tuple[Path, Path, object]:
    """(shards, out, PretrainConfig) from a YAML job config or from SHARDS + flags."""
    from laitkit.pipeline.pretrain.config import PretrainConfig
    from laitkit.pipeline.pretrain.objectives import TASKS

    target = Path(args.target)
    if target.is_file() and target.suffix in (".yaml", ".yml"):
        from laitkit.jobs.config import load_config

        job = load_config(target)
        cfg = job.pretrain
        overrides = {k: v for k, v in (("steps", args.steps), ("device", args.device)) if v is not None}
        cfg = dataclasses.replace(cfg, **overrides)
        shards = Path(job.out) / "shards"
        out = Path(args.out) if args.out else Path(job.out) / "pretrain"
        if not cfg.stages:
            _shards_dir(str(shards))
        return shards, out, cfg
    if not args.out:
        raise UserError("--out is required with SHARDS")
    shards = _shards_dir(args.target)
    # Sizes, tasks and the encoder come from --style/--size unless given (explicit flags win).
    chosen = {
        k: v
        for k, v in (
            ("hidden", args.hidden), ("layers", args.layers), ("heads", args.heads), ("encoder", args.encoder),
            ("style", args.style), ("size", args.size),
            ("tasks", tuple(args.tasks.split(",")) if args.tasks else None),
        )
        if v is not None
    }
    if not args.style and "tasks" not in chosen:
        chosen["tasks"] = TASKS
    cfg = PretrainConfig(
        steps=args.steps if args.steps is not None else 100, batch_size=args.batch_size, **chosen,
        lr=args.lr, device=args.device or "auto", seed=args.seed,
        vocab=args.vocab or "", loader_workers=args.loader_workers, checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every, precision=args.precision, compile=args.compile, grad_accum=args.grad_accum,
        token_budget=args.token_budget, heldout_permille=args.heldout_permille, warmup=args.warmup,
        threads=args.threads,
    )
    return shards, Path(args.out), cfg


def run(args: argparse.Namespace) -> int:
    if args.target == "tokenizer":
        return run_tokenizer(args)
    if args.target == "eval":
        return run_eval(args)
    if args.target == "styles":
        return run_styles(args)
    if args.target == "export":
        return run_export(args)
    if args.rest:
        raise UserError(f"unexpected argument(s): {' '.join(args.rest)}")
    from laitkit.pipeline.pretrain.train import pretrain

    try:
        shards, out, cfg = _config_from_args(args)  # ValueError: a bad style, size, encoder or task
        if args.resume and not (out / "checkpoint.pt").exists():
            raise UserError(f"--resume: no checkpoint in {out}")
        summary = pretrain(shards, out, cfg, resume=bool(args.resume), workers=args.workers)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(summary))
    return 0


def run_tokenizer(args: argparse.Namespace) -> int:
    from laitkit.pipeline.pretrain.train import build_tokenizer

    if len(args.rest) != 1 or not args.out:
        raise UserError("usage: laitkit pretrain tokenizer SHARDS --out DIR [--vocab-size N]")
    shards = _shards_dir(args.rest[0])
    try:
        tok = build_tokenizer(shards, Path(args.out), vocab_size=args.vocab_size)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps({"out": args.out, "vocab_size": tok.vocab_size}))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from laitkit.pipeline.pretrain.evaluate import evaluate_checkpoint

    if len(args.rest) != 2:
        raise UserError("usage: laitkit pretrain eval CHECKPOINT SHARDS [--pool N]")
    ckpt, shards = Path(args.rest[0]), _shards_dir(args.rest[1])
    if not ckpt.exists():
        raise UserError(f"no checkpoint at {ckpt}")
    try:
        result = evaluate_checkpoint(ckpt, shards, pool=args.pool)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(result))
    return 0


def run_styles(args: argparse.Namespace) -> int:
    from laitkit.pipeline.pretrain.styles import describe

    if args.rest:
        raise UserError("usage: laitkit pretrain styles")
    print(json.dumps({"styles": describe()}))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from laitkit.pipeline.pretrain.export_hf import FORMATS, export

    fmt, *paths = args.format or [""]
    paths = [*paths, *args.rest]
    if len(paths) != 2 or not fmt:
        raise UserError(f"usage: laitkit pretrain export --format {'|'.join(FORMATS)} CHECKPOINT OUT")
    ckpt, out = Path(paths[0]), Path(paths[1])
    if not ckpt.exists():
        raise UserError(f"no checkpoint at {ckpt}")
    try:
        result = export(ckpt, out, fmt)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(result))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain on shards (styles of VisualBERT ... Pixel-BERT); also `tokenizer`, `eval`, `styles`, `export`",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target", help="SHARDS folder, a job CONFIG.yaml, or the verb `tokenizer` / `eval` / `styles` / `export`"
    )
    p.add_argument(
        "rest", nargs="*", help="for `tokenizer`: SHARDS; for `eval`: CHECKPOINT SHARDS; for `export`: CHECKPOINT OUT"
    )
    p.add_argument("--out", help="run folder (tokenizer: its output folder)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt exactly")
    p.add_argument("--workers", type=int, default=None, help="Ray Train DDP workers (default 1: this process)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default 100)")
    p.add_argument("--batch-size", type=int, default=16, help="samples per step")
    p.add_argument("--token-budget", type=int, default=0, help="max padded tokens per batch (0: off)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches accumulated per step")
    p.add_argument("--style", help="a style preset (`laitkit pretrain styles` lists them)")
    p.add_argument("--size", choices=("tiny", "small", "base"), help="model size (sets hidden, layers, heads)")
    p.add_argument("--encoder", help="single-stream (default), visualbert, lxmert, vilbert, pixel")
    # nargs="+": `export --format F CHECKPOINT OUT` leaves no positional slot after the option (argparse
    # fills `rest` before it), so the paths may follow the format; run_export takes them from here too.
    p.add_argument("--format", nargs="+", metavar="FORMAT", help="export: hf-lxmert or hf-visualbert")
    p.add_argument("--hidden", type=int, default=None, help="transformer width (default 128, or the size's)")
    p.add_argument("--layers", type=int, default=None, help="transformer layers (default 2, or the size's)")
    p.add_argument("--heads", type=int, default=None, help="attention heads (default 4, or the size's)")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=10, help="warmup steps")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--tasks", help="comma list of mlm,mrm,itm,tags,sgp (default: all)")
    p.add_argument("--vocab", help="a BERT vocab.txt or tokenizer folder (default: train WordPiece on SHARDS)")
    p.add_argument("--vocab-size", type=int, default=8000, help="tokenizer: WordPiece vocabulary size")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per trainer (0: torch's default)")
    p.add_argument("--loader-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate on the held-out split every N steps")
    p.add_argument("--heldout-permille", type=int, default=50, help="held-out share of keys, per mille")
    p.add_argument("--pool", type=int, default=50, help="eval: retrieval candidate pool size")
    p.set_defaults(func=run)
