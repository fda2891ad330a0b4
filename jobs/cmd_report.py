"""`laitkit report OUT`: (re)write report.md / report.json of a finished or partial run."""

from __future__ import annotations

import argparse
from pathlib import Path

from laitkit.errors import UserError


def run(args: argparse.Namespace) -> int:
    from laitkit.pipeline.report import write_report

    out = Path(args.out)
    if not (out / "config.json").exists():
        raise UserError(f"{out} is not a laitkit run folder (no config.json)")
    md = write_report(out)
    print(md.read_text())
    print(f"report: {md}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="summarise a run folder: kept, rejected by reason, truth agreement, losses")
    p.add_argument("out", help="the run's output folder")
    p.set_defaults(func=run)
