"""`laitkit report`: placeholder until its module is written."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="report stage (not yet implemented)")
    p.set_defaults(func=lambda args: 1)
