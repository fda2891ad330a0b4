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
    p.add_argument("--out", help="output folder (default: the config's `out`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set pretrain.steps=50 (VALUE is YAML; repeat for "
                        "several keys; default: none)")  # fmt: skip


def load(args: argparse.Namespace) -> object:
    from laitkit.jobs.config import load_config
    from laitkit.pipeline import stages

    overrides = parse_overrides(args.set)
    if args.out:
        overrides["out"] = args.out
    cfg = load_config(getattr(args, "config", None), overrides)
    stages.validate(cfg)
    return cfg


INPUT_KINDS_HELP = """input kinds (input.kind; input.path is local or an fsspec URI such as s3://...):
  synth  a synthetic web generated into OUT/synth-web (or input.path) and served on 127.0.0.1
  warc   a .warc/.warc.gz file, a folder of them, or a Common Crawl warc.paths[.gz] list
  html   a folder of saved .html pages
  urls   an img2dataset URL list (.parquet/.csv/.tsv/.jsonl with a `url` column) or a folder of them

`laitkit config show [CONFIG] [--set ...]` prints every key with the value a run would use."""

_STAGE_OF_REASON = {"low_relevance": "relevance", "regions_error": "regions"}


def summary_table(report: dict, summary: dict) -> str:
    """Samples in/out, wall time and rate of each stage: the end-of-run table."""
    by_stage: dict[str, int] = {}
    for reason, n in report["rejected_by_reason"].items():
        stage = "dedup" if reason.startswith("dup_") else _STAGE_OF_REASON.get(reason, "crawl")
        by_stage[stage] = by_stage.get(stage, 0) + n
    seconds = summary.get("stage_seconds", {})
    alive = report["kept"] + report["rejected"]
    rows = [("input", report.get("pages", 0), alive, seconds.get("input", 0.0), "pages → candidates")]
    for stage, key in (("crawl", "crawl"), ("dedup", "dedup")):
        out = alive - by_stage.get(stage, 0)
        rows.append((stage, alive, out, seconds.get(key, 0.0), ""))
        alive = out
    out = alive - by_stage.get("regions", 0) - by_stage.get("relevance", 0)
    rows.append(("featurise+shards", alive, out, seconds.get("featurise+shards", 0.0), "regions, relevance, text"))
    if "pretrain" in seconds or summary.get("pretrain"):
        steps = (summary.get("pretrain") or {}).get("steps", "?")
        rows.append(("pretrain", out, out, seconds.get("pretrain", 0.0), f"{steps} steps"))
    reused = summary.get("reused", {})
    lines = [f"{'stage':<18}{'in':>8}{'out':>8}{'seconds':>10}{'out/s':>9}  note", "-" * 70]
    for name, n_in, n_out, sec, note in rows:
        rate = f"{n_out / sec:.1f}" if sec > 0 else "-"
        note = "; ".join(x for x in (note, _reuse_note(name, reused)) if x)
        lines.append(f"{name:<18}{n_in:>8}{n_out:>8}{sec:>10.1f}{rate:>9}  {note}")
    return "\n".join(lines)


def _reuse_note(stage: str, reused: dict) -> str:
    key = {"featurise+shards": "shards"}.get(stage, stage)
    v = reused.get(key)
    if v is True:
        return "reused"
    if isinstance(v, str):
        return f"reused {v}"
    return ""


def execute(cfg: object) -> dict:
    """Run the job and write its reports; print where they are and the summary table."""
    from laitkit.pipeline.report import build_report, write_report
    from laitkit.pipeline.runner import run_job

    summary = run_job(cfg)
    out = Path(summary["out"])
    md = write_report(out)
    report = build_report(out)
    print(summary_table(report, summary))
    for w in report.get("warnings", []):
        print(f"warning: {w}")
    print(f"report: {out / 'report.html'} (and {md.name}, report.json)")
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
        description="Run or resume a job. Without CONFIG, runs the embedded demo config.\nA rerun redoes "
                    "exactly the steps whose config or inputs changed and reuses the rest.",
        epilog=INPUT_KINDS_HELP,
    )
    p.add_argument("config", nargs="?", help="job YAML (default: the embedded demo config)")
    add_common(p)
    p.set_defaults(func=run)
