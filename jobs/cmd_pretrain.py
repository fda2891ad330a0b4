"""`laitkit pretrain`: placeholder until its module is written."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pretrain stage (not yet implemented)")
    p.set_defaults(func=lambda args: 1)
