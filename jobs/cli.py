"""`laitkit` console script: one subcommand per stage, each defined in its own `cmd_*` module.

Why a table of modules rather than one big file: each stage's flags live next to nothing else,
and heavy imports (torch, detectron2, spaCy, Ray) happen only inside the chosen command.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from laitkit import __version__
from laitkit.errors import UserError

COMMANDS = ("synth", "crawl", "relevance", "regions", "text", "shards", "pretrain", "run", "report", "bench", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="laitkit",
        description="Build vision-language pretraining corpora from the web and pretrain on them.",
    )
    parser.add_argument("--version", action="version", version=f"laitkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"laitkit.jobs.cmd_{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"laitkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" while writing {exc.filename}" if exc.filename else ""
            print(f"laitkit {args.command}: error: disk full{where}", file=sys.stderr)
            return 3
        raise
    except KeyboardInterrupt:
        print(f"laitkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
