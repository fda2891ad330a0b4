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
        (["run", "{cfg_bad_key}"], "unknown config key(s) in"),
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
