"""`laitkit config show [CONFIG] [--set …]` and `laitkit config schema`: the resolved job config.

Why a command: with typed sections and their defaults spread over stage modules, a user needs one
place that says what a run would actually use (every default filled in, every `--set` applied,
every value checked) without starting a cluster, and a JSON Schema for editors and CI checks.
"""

from __future__ import annotations

import argparse
import json

import yaml


def show(args: argparse.Namespace) -> int:
    from laitkit.jobs.cmd_run import parse_overrides
    from laitkit.jobs.config import load_config

    overrides = parse_overrides(args.set)
    if args.out:
        overrides["out"] = args.out
    cfg = load_config(args.config, overrides)
    data = cfg.to_dict()
    if args.format == "json":
        print(json.dumps(data, indent=2, sort_keys=False))
    else:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100), end="")
    return 0


def schema(args: argparse.Namespace) -> int:
    from laitkit.jobs.config import schema as job_schema

    print(json.dumps(job_schema(), indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from laitkit.jobs.cmd_run import add_common

    p = sub.add_parser("config", help="print the resolved job config (defaults filled in) or its JSON Schema",
                       description="Inspect job configs without running anything.")  # fmt: skip
    actions = p.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    s = actions.add_parser("show", help="validate CONFIG, apply --set, print every value the run would use",
                           description="Validate a job config and print it resolved (defaults filled in).")  # fmt: skip
    s.add_argument("config", nargs="?", help="job YAML (default: the embedded demo config)")
    add_common(s)
    s.add_argument("--format", choices=("yaml", "json"), default="yaml", help="output format (default: yaml)")
    s.set_defaults(func=show)
    c = actions.add_parser("schema", help="print the JSON Schema of a job config",
                           description="Print the JSON Schema of a job config.")  # fmt: skip
    c.set_defaults(func=schema)
