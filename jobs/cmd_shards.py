"""`laitkit shards inspect|validate DIR`: look at a shard directory without writing to it.

Why in the CLI: after a crawl, the first questions are "how much did we keep, and why was the rest
dropped?" and "is this directory safe to train on?". Both must be answerable with no Python.
All logic lives in `datasets.shards` / `datasets.manifest`; this module only parses and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from laitkit.datasets.manifest import MANIFEST, load_manifest, validate
from laitkit.datasets.shards import completed_shards, iter_parquet, read_stats
from laitkit.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shards", help="inspect or validate a directory of output shards")
    actions = p.add_subparsers(dest="shards_command", required=True, metavar="ACTION")

    ins = actions.add_parser("inspect", help="print the manifest summary, counts per status and a sample")
    ins.add_argument("dir", type=Path, help="shard directory")
    ins.add_argument("-n", "--samples", type=int, default=1, help="how many samples to print (default 1)")
    ins.set_defaults(func=run_inspect)

    val = actions.add_parser("validate", help="check every shard; exit 1 and list problems if any")
    val.add_argument("dir", type=Path, help="shard directory")
    val.add_argument("--no-hashes", action="store_true", help="skip sha256 checks of whole files (faster)")
    val.set_defaults(func=run_validate)


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise UserError(f"{path}: no such directory")
    return path


def _summary(out: Path) -> dict[str, Any]:
    """The manifest, or a summary rebuilt from stats files when no manifest was written yet."""
    if (out / MANIFEST).exists():
        return load_manifest(out)
    stats = [read_stats(out, s) for s in sorted(completed_shards(out))]
    status: dict[str, int] = {}
    for st in stats:
        for k, v in st["status_counts"].items():
            status[k] = status.get(k, 0) + v
    return {
        "schema_version": stats[0]["schema_version"] if stats else None,
        "config_hash": stats[0]["config_hash"] if stats else None,
        "feature_dim": max((st["feature_dim"] for st in stats if st["num_with_regions"]), default=None),
        "num_shards": len(stats),
        "total_count": sum(st["count"] for st in stats),
        "total_bytes": sum(st["bytes"] for st in stats),
        "status_counts": dict(sorted(status.items())),
    }


def run_inspect(args: argparse.Namespace) -> int:
    out = _require_dir(args.dir)
    summary = _summary(out)
    source = MANIFEST if (out / MANIFEST).exists() else "stats files (no manifest yet)"
    total = summary["total_count"]
    print(f"{out}  [from {source}]")
    print(f"  schema {summary['schema_version']}  config {summary['config_hash']}", end="")
    print(f"  feature_dim {summary['feature_dim']}")
    print(f"  {summary['num_shards']} shards, {total} samples, {summary['total_bytes'] / 1e6:.1f} MB")
    print("  status:")
    for status, n in sorted(summary["status_counts"].items(), key=lambda kv: -kv[1]):
        print(f"    {status:<18} {n:>9}  {100 * n / max(total, 1):5.1f}%")
    shown = 0
    for sample in iter_parquet(out):
        if shown >= args.samples:
            break
        r = sample.regions
        boxes = f"{r.num_boxes} boxes x {r.feature_dim}-d ({r.detector})" if r is not None else "no regions"
        print(f"  sample {sample.key}: status={sample.status} source={sample.caption_source or '-'} {boxes}")
        print(f"    url     {sample.url}")
        print(f"    caption {sample.caption!r}")
        shown += 1
    return 0


def run_validate(args: argparse.Namespace) -> int:
    out = _require_dir(args.dir)
    problems = validate(out, check_hashes=not args.no_hashes)
    if not problems:
        print(f"{out}: ok ({len(completed_shards(out))} shards)")
        return 0
    for problem in problems:
        print(problem)
    print(f"{out}: {len(problems)} problem(s)")
    return 1
