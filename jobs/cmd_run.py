"""`laitkit run [CONFIG]`: the whole pipeline on a local Ray cluster (or `ray.address`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from laitkit.errors import UserError


def parse_overrides(items: list[str]) -> dict[str, object]:
    """`--set regions.max_boxes=36` → {"regions.max_boxes": 36} (values parsed as YAML)."""
    out: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="output folder (overrides the config's `out`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")


def load(args: argparse.Namespace) -> object:
    from laitkit.jobs.config import load_config
    from laitkit.pipeline import stages

    overrides = parse_overrides(args.set)
    if args.out:
        overrides["out"] = args.out
    cfg = load_config(getattr(args, "config", None), overrides)
    stages.validate(cfg)
    return cfg


def execute(cfg: object) -> dict:
    """Run the job and write its report; return the report dict."""
    from laitkit.pipeline.report import build_report, write_report
    from laitkit.pipeline.runner import run_job

    summary = run_job(cfg)
    out = Path(summary["out"])
    md = write_report(out)
    report = build_report(out)
    print(md.read_text())
    print(f"report: {md}")
    print(f"kept shards (WebDataset + Parquet): {report['shards_dir']}")
    print(f"rejected samples with reasons: {report['rejected_dir']}")
    if (out / "pretrain" / "model.pt").exists():
        print(f"pretrained checkpoint: {out / 'pretrain'}")
    return report


def run(args: argparse.Namespace) -> int:
    report = execute(load(args))
    print(json.dumps({"kept": report["kept"], "rejected": report["rejected"], "out": report["out"]}))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run every stage (crawl/filter, regions, text, shards, pretrain, report) on Ray",
        description="Run or resume a job. Without CONFIG, runs the embedded demo config.",
    )
    p.add_argument("config", nargs="?", help="job YAML (default: the embedded demo)")
    add_common(p)
    p.set_defaults(func=run)
