"""Each user error: one line `laitkit CMD: error: ...`, non-zero exit, no traceback, nothing deleted,
config errors in under 10 s. The command runs as a user runs it (the console script, a subprocess)
except where a Ray cluster is needed: those cases share one private local cluster in this process."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from laitkit.jobs.cli import main


def laitkit(*argv: str, timeout: float = 120) -> tuple[int, list[str], float]:
    """(exit code, stderr lines, seconds) of `laitkit ARGV` in a fresh process."""
    t0 = time.perf_counter()
    env = {**os.environ, "LAITKIT_PROGRESS": "0"}
    res = subprocess.run([sys.executable, "-m", "laitkit.jobs.cli", *argv], capture_output=True, text=True,
                         timeout=timeout, env=env)  # fmt: skip
    return res.returncode, [line for line in res.stderr.splitlines() if line.strip()], time.perf_counter() - t0


def run_main(capsys, *argv: str) -> tuple[int, list[str]]:
    """(exit code, stderr lines) of `laitkit ARGV` in this process (cheap: imports are warm)."""
    code = main(list(argv))
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def assert_one_line(code: int, err: list[str], needle: str, command: str = "run") -> None:
    assert code != 0
    assert "Traceback" not in "\n".join(err), err
    errors = [line for line in err if line.startswith(f"laitkit {command}: error: ")]
    assert errors and errors == err[-len(errors):], err
    assert any(needle in line for line in errors), (needle, err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_config_errors_are_fast_one_line_each_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, err, seconds = laitkit("run", "--out", str(out), "--set", "regions.max_boxs=3", "--set", "ray.num_cpus=abc",
                                 "--set", "input.kind=ftp")  # fmt: skip
    assert_one_line(code, err, "unknown key 'regions.max_boxs' (did you mean 'regions.max_boxes'?)")
    assert len(err) == 3, err
    assert seconds < 10, seconds
    assert not out.exists()


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["pretrain.lr=fast"], "pretrain.lr: Input should be a valid number"),
        (["regions.max_boxes=abc"], "regions.max_boxes: Input should be a valid integer"),
        (["ray.num_cpus=abc"], "ray.num_cpus: Input should be a valid integer"),
        (["shards.samples_per_shard=abc"], "unknown key 'shards.samples_per_shard'"),
        (["pretrain.tasks=[mlm, itm, dance]"], "pretrain.tasks: unknown pretraining task(s) ['dance']"),
    ],
)
def test_bad_values_write_nothing(tmp_path: Path, capsys, sets: list[str], needle: str) -> None:
    out = tmp_path / "run"
    code, err = run_main(capsys, "run", "--out", str(out), *[a for s in sets for a in ("--set", s)])
    assert_one_line(code, err, needle)
    assert len(err) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("command", ["run", "demo"])
def test_a_folder_of_user_files_is_never_touched(tmp_path: Path, capsys, command: str) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "config.json").write_text('{"something": "else"}')  # not a laitkit run's config
    code, err = run_main(capsys, command, "--out", str(mine))
    assert_one_line(code, err, "is not a laitkit run folder", command)
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "thesis.tex"]
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_output_under_a_file(tmp_path: Path, capsys) -> None:
    f = tmp_path / "a_file"
    f.write_text("x")
    code, err = run_main(capsys, "run", "--out", str(f / "run"))
    assert_one_line(code, err, f"cannot write the output folder {f / 'run'}: Not a directory")
    assert f.read_text() == "x"


def test_output_is_a_file(tmp_path: Path, capsys) -> None:
    f = tmp_path / "a_file"
    f.write_text("x")
    code, err = run_main(capsys, "run", "--out", str(f))
    assert_one_line(code, err, "is a file, not a folder")
    assert f.read_text() == "x"


def test_output_where_writing_is_refused(capsys) -> None:
    # chmod does not stop root (these tests run as root): the kernel refuses folders in /sys to anyone
    target = "/sys/laitkit-test-run"
    assert not os.path.exists(target)
    code, err = run_main(capsys, "run", "--out", target)
    assert_one_line(code, err, f"cannot write the output folder {target}: ")


def test_unreachable_ray_address_fails_fast(tmp_path: Path) -> None:
    # a fresh process: in this one an earlier test may have left a Ray connection open
    port = free_port()  # nothing listens there
    code, err, seconds = laitkit("run", "--out", str(tmp_path / "r"), "--set", f"ray.address=127.0.0.1:{port}",
                                 "--set", "ray.connect_timeout=3")  # fmt: skip
    assert_one_line(code, err, f"cannot reach the Ray cluster at '127.0.0.1:{port}' within 3 s")
    assert seconds < 30, seconds


def test_unreachable_ray_client_fails_fast(tmp_path: Path) -> None:
    port = free_port()  # a fresh process, as above
    code, err, seconds = laitkit("run", "--out", str(tmp_path / "r"), "--set", f"ray.address=ray://127.0.0.1:{port}")
    assert_one_line(code, err, f"cannot reach the Ray Client server at 'ray://127.0.0.1:{port}'")
    assert seconds < 30, seconds


def test_synth_port_in_use(tmp_path: Path, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run_main(capsys, "run", "--out", str(tmp_path / "r"), "--set", f"synth.port={port}")
    assert_one_line(code, err, f"synth.port {port} is already in use on 127.0.0.1")


def test_synth_serve_port_in_use(tmp_path: Path, capsys) -> None:
    assert run_main(capsys, "synth", "--out", str(tmp_path / "web"), "--pages", "1")[0] == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run_main(capsys, "synth", "serve", str(tmp_path / "web"), "--port", str(port))
    assert_one_line(code, err, f"port {port} on 127.0.0.1 is already in use", "synth")


def test_report_of_a_folder_that_is_no_run(tmp_path: Path, capsys) -> None:
    code, err = run_main(capsys, "report", str(tmp_path))
    assert_one_line(code, err, "is not a laitkit run folder", "report")


# --- cases that need a cluster: one private local cluster for all of them -----------------------


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from laitkit.jobs.config import load_config
    from laitkit.pipeline.runner import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(load_config(None, {"ray.num_cpus": 1}))
    yield ray
    ray.shutdown()


def _write_dev_full() -> None:
    with open("/dev/full", "wb") as f:  # every write to /dev/full fails with ENOSPC, a real full disk
        f.write(b"x" * 65536)
        f.flush()


def test_disk_full_inside_a_ray_task_is_one_line(ray_session) -> None:
    from laitkit.jobs.cli import describe, user_cause

    with pytest.raises(Exception) as info:
        ray_session.get(ray_session.remote(_write_dev_full).remote())
    cause = user_cause(info.value)
    assert cause is not None, info.value
    assert describe(cause).startswith("disk full"), describe(cause)
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC


def test_url_list_without_url_column(ray_session, tmp_path: Path, capsys) -> None:
    csv = tmp_path / "urls.csv"
    csv.write_text("link,caption\nhttp://127.0.0.1:9/a.jpg,a red circle on a table\n")
    out = tmp_path / "run"
    code = main(["run", "--out", str(out), "--set", "input.kind=urls", "--set", f"input.path={csv}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert_one_line(code, err, "a URL list needs a 'url' column (has ['link', 'caption'])")
    assert csv.read_text().startswith("link,caption")


def test_warc_paths_naming_a_missing_file(ray_session, tmp_path: Path, capsys) -> None:
    paths = tmp_path / "warc.paths"
    paths.write_text("crawl/missing-00000.warc.gz\n")
    code = main(["run", "--out", str(tmp_path / "run"), "--set", "input.kind=warc", "--set", f"input.path={paths}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert_one_line(code, err, f"no such file or folder: {tmp_path / 'crawl' / 'missing-00000.warc.gz'}")
