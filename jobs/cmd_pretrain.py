"""`laitkit pretrain SHARDS --out DIR`: the pretraining stage alone, on existing shards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from laitkit.errors import UserError


def run(args: argparse.Namespace) -> int:
    from laitkit.pipeline.pretrain.train import TASKS, PretrainConfig, pretrain

    shards = Path(args.shards)
    if not shards.is_dir() or not any(shards.glob("*.tar")):
        raise UserError(f"no WebDataset shards (*.tar) in {shards}")
    tasks = tuple(args.tasks.split(",")) if args.tasks else TASKS
    try:
        cfg = PretrainConfig(
            steps=args.steps, batch_size=args.batch_size, hidden=args.hidden, layers=args.layers,
            lr=args.lr, device=args.device, seed=args.seed, tasks=tasks,
        )
        summary = pretrain(shards, Path(args.out), cfg)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pretrain (MLM, MRM, ITM, Oscar tags, ERNIE-ViL SGP) on shards")
    p.add_argument("shards", help="folder of WebDataset shards written by `laitkit run`")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", help="comma list of mlm,mrm,itm,tags,sgp (default: all)")
    p.set_defaults(func=run)
