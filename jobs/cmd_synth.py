"""`laitkit synth`: generate the synthetic web, or serve one (`laitkit synth serve DIR`).

Why two actions under one command: the generator and its server are one tool — a crawl test
generates a site, serves it and compares what it crawled with `truth.parquet`. Generating is the
default action so the common call stays short; `serve` is a sub-action with its own flags.
"""

from __future__ import annotations

import argparse
import errno
import logging
from pathlib import Path

from laitkit.errors import UserError

log = logging.getLogger(__name__)

_EPILOG = """actions:
  laitkit synth --out DIR --pages N --seed S [--base-url URL]
      write a deterministic synthetic website and its ground truth into DIR:
      site/, pages.warc.gz, urls.parquet, truth.parquet, objects.parquet, faults.json, synth.json
  laitkit synth serve DIR [--port P] [--host 127.0.0.1] [--timeout-delay SECONDS]
      serve DIR/site on loopback with the faults of DIR/faults.json (404, 500, timeouts,
      redirect loops, truncated/bomb/mistyped images, X-Robots-Tag: noai) until Ctrl-C

Serve on the port of --base-url (the default port is 8377) so the URLs in truth.parquet match."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from laitkit.datasets.synth import DEFAULT_BASE_URL, DEFAULT_TIMEOUT_DELAY  # light: no numpy/PIL yet

    p = sub.add_parser(
        "synth",
        help="generate (or serve) the synthetic web that crawl tests and the demo run against",
        description="Generate a synthetic website with known noise and ground truth, or serve one.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, help="output folder (empty, absent, or an earlier synth output)")
    p.add_argument("--pages", type=int, default=40, help="number of article pages (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        help=f"scheme://host:port used for absolute URLs in the truth, URL list and WARC (default: {DEFAULT_BASE_URL})",
    )
    actions = p.add_subparsers(dest="synth_action", metavar="ACTION")
    s = actions.add_parser("serve", help="serve a generated site on loopback with its faults")
    s.add_argument("dir", type=Path, help="a folder written by `laitkit synth --out`")
    s.add_argument("--port", type=int, default=8377, help="port (default: 8377; 0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default: 127.0.0.1)")
    s.add_argument(
        "--timeout-delay",
        type=float,
        default=DEFAULT_TIMEOUT_DELAY,
        help=f"seconds a 'timeout' URL stays silent before closing (default: {DEFAULT_TIMEOUT_DELAY:g})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "synth_action", None) == "serve":
        return _serve(args)
    return _generate(args)


def _generate(args: argparse.Namespace) -> int:
    from laitkit.datasets.synth import generate

    if args.out is None:
        raise UserError("--out DIR is required to generate (or use `laitkit synth serve DIR`)")
    if args.pages < 1:
        raise UserError(f"--pages must be >= 1, got {args.pages}")
    if not args.base_url.startswith(("http://", "https://")):
        raise UserError(f"--base-url must start with http:// or https://, got {args.base_url!r}")
    try:
        info = generate(args.out, pages=args.pages, seed=args.seed, base_url=args.base_url)
    except FileExistsError as exc:
        raise UserError(str(exc)) from exc
    log.info(
        "wrote %d pages, %d main candidates (%.0f%% clean), %d images to %s",
        info["pages"],
        info["main_candidates"],
        100 * info["kept_main_fraction"],
        info["images"],
        args.out,
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from laitkit.datasets.synth.server import SynthServer, is_loopback

    if not (args.dir / "site").is_dir():
        raise UserError(f"{args.dir} has no site/ folder; generate one with `laitkit synth --out {args.dir}`")
    if not is_loopback(args.host):
        raise UserError(f"--host must be a loopback address (the synthetic web is local only), got {args.host!r}")
    if args.timeout_delay < 0:
        raise UserError("--timeout-delay must be >= 0")
    try:
        server = SynthServer(args.dir, port=args.port, host=args.host, timeout_delay=args.timeout_delay)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {args.port} on {args.host} is already in use") from exc
        raise
    log.info("serving %s at %s/ (Ctrl-C to stop)", args.dir, server.base_url)
    if server.generated_base and server.generated_base != server.base_url:
        log.warning("truth URLs use %s; map them with SynthServer.rebase or regenerate", server.generated_base)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    return 0
