"""`laitkit` console script: one subcommand per stage, each defined in its own `cmd_*` module.

Why a table of modules rather than one big file: each stage's flags live next to nothing else,
and heavy imports (torch, detectron2, spaCy, Ray) happen only inside the chosen command.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from laitkit import __version__
from laitkit.errors import UserError

COMMANDS = ("synth", "crawl", "relevance", "regions", "text", "shards", "pretrain", "run", "report", "config", "bench",
            "demo")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless the text already states one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default is argparse.SUPPRESS or isinstance(
                action, argparse._SubParsersAction | argparse._HelpAction | argparse._VersionAction):  # fmt: skip
            return text
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text  # a required positional has no default
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        if action.default is None or action.default == []:
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """`laitkit`'s parsers (subcommands included): the defaults-showing help formatter."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        if kwargs.get("formatter_class") in (None, argparse.RawDescriptionHelpFormatter, argparse.HelpFormatter):
            kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="laitkit",
        description="Build vision-language pretraining corpora from the web and pretrain on them.",
    )
    parser.add_argument("--version", action="version", version=f"laitkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logs, Ray's own logs and worker output included (default: off)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"laitkit.jobs.cmd_{name}").add_parser(sub)
    return parser


# errno values that mean "the user's file system said no": one line, never a traceback
_USER_ERRNOS = {
    errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied", errno.EPERM: "operation not permitted", errno.ENOTDIR: "not a folder",
    errno.EISDIR: "is a folder", errno.ENOENT: "no such file or folder", errno.EEXIST: "already exists",
    errno.EADDRINUSE: "address already in use",
}


def quiet_logging(verbose: bool) -> None:
    """Our INFO lines on stderr; other libraries' (Ray's above all) only from WARNING, unless -v."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s %(message)s",
    )
    if verbose:
        os.environ["LAITKIT_VERBOSE"] = "1"  # read by pipeline.progress: Ray Data bars and worker logs on
    else:
        for name in ("ray", "urllib3", "filelock", "fsspec", "asyncio", "PIL", "matplotlib", "numba"):
            logging.getLogger(name).setLevel(logging.WARNING)


def user_cause(exc: BaseException) -> BaseException | None:
    """The `UserError` or file-system `OSError` behind `exc` (a Ray task error wraps its cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)  # ray.exceptions.RayTaskError: its str is a traceback
        if isinstance(cause, BaseException):
            current = cause
            continue
        if isinstance(current, UserError):
            return current
        if isinstance(current, OSError) and current.errno in _USER_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def describe(exc: BaseException) -> str:
    """One line for a user error (`UserError` message lines are kept, each its own line)."""
    if isinstance(exc, UserError):
        return str(exc)
    assert isinstance(exc, OSError)
    what = _USER_ERRNOS.get(exc.errno or 0, exc.strerror or "file system error")
    where = f" while writing {exc.filename}" if exc.errno in (errno.ENOSPC, errno.EDQUOT) and exc.filename else (
        f": {exc.filename}" if exc.filename else "")  # fmt: skip
    return f"{what}{where}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"laitkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a user error becomes one line; anything else keeps its traceback
        cause = user_cause(exc)
        if cause is None:
            raise
        for line in describe(cause).splitlines() or [type(cause).__name__]:
            print(f"laitkit {args.command}: error: {line}", file=sys.stderr)
        return 3 if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT) else 2


if __name__ == "__main__":
    sys.exit(main())
