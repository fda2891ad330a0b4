"""The console script: every stage has a subcommand with --help, and user errors are one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from laitkit.jobs.cli import COMMANDS, main

STAGES = ("synth", "crawl", "regions", "text", "shards", "pretrain", "run", "report", "bench")


def test_help_lists_every_stage() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "laitkit.jobs.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in STAGES:
        assert f"    {name}" in out, name


@pytest.mark.parametrize("name", COMMANDS)
def test_each_subcommand_has_help(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: laitkit" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "{cfg_bad_key}"], "unknown key 'regions.max_boxs' (did you mean 'regions.max_boxes'?)"),
        (["run", "{missing}"], "config file not found"),
        (["report", "{missing}"], "not a laitkit run folder"),
        (["shards", "validate", "{missing}"], "no such"),
        (["pretrain", "{missing}", "--out", "{tmp}/p"], "no WebDataset shards"),
        (["run", "--out", "{tmp}/r", "--set", "input.kind=warc", "--set", "input.path={missing}"], "does not exist"),
    ],
)
def test_user_errors_are_one_line_without_traceback(argv, needle, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions:\n  max_boxs: 3\n")
    subs = {"{cfg_bad_key}": str(bad), "{missing}": str(tmp_path / "nope"), "{tmp}": str(tmp_path)}
    argv = [a.format_map({k.strip("{}"): v for k, v in subs.items()}) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1, err
    assert needle.lower() in err[0].lower()
    assert "Traceback" not in err[0]


def _all_parsers(parser, path=("laitkit",)):
    """(command path, parser) for the top parser and every subcommand at any depth."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, (*path, name))


def test_every_option_has_help_and_shows_its_default(capsys) -> None:
    import argparse

    from laitkit.jobs.cli import build_parser

    missing = []
    for path, parser in _all_parsers(build_parser()):
        text = parser.format_help()
        assert text.startswith("usage: "), path
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
                continue
            if not action.help:
                missing.append(f"{' '.join(path)} {action.dest}: no help")
            elif action.option_strings and "default" not in parser._get_formatter()._get_help_string(action):
                missing.append(f"{' '.join(path)} {action.option_strings[0]}: no default shown")
    assert not missing, missing


def test_set_says_it_repeats_and_run_help_lists_input_kinds(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "repeat" in out
    for kind in ("synth", "warc", "html", "urls"):
        assert f"  {kind}  " in out, kind


def test_readme_names_every_subcommand() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in COMMANDS:
        assert f"`laitkit {name}" in readme, name
    assert "laitkit config show" in readme and "laitkit config schema" in readme
