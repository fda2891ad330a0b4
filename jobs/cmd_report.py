"""`laitkit report OUT`: (re)write report.html / report.md / report.json of a finished or partial run."""

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
    print(f"report: {out / 'report.html'} (open it in a browser; also {md.name}, report.json)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rewrite a run folder's report.html (pictures, charts), report.md, report.json",
                       description="Rewrite the reports of a finished or partial run from its files.")  # fmt: skip
    p.add_argument("out", help="the run's output folder (holds config.json)")
    p.set_defaults(func=run)
