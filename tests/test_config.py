"""Job config: the embedded default loads, unknown keys and bad values are one clear error."""

from __future__ import annotations

import json

import pytest

from laitkit.errors import UserError
from laitkit.jobs.config import config_from_dict, load_config


def test_embedded_default_loads() -> None:
    cfg = load_config(None)
    assert cfg.input.kind == "synth"
    assert cfg.pretrain.steps > 0
    assert len(cfg.config_hash()) == 16


def test_overrides_change_hash_but_out_does_not() -> None:
    base = load_config(None)
    moved = load_config(None, {"out": "elsewhere"})
    changed = load_config(None, {"pretrain.steps": 3})
    assert moved.config_hash() == base.config_hash()
    assert changed.config_hash() != base.config_hash()
    assert changed.pretrain.steps == 3


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"regoins": {}}, "regoins"),
        ({"input": {"knd": "warc"}}, "knd"),
        ({"input": {"kind": "ftp"}}, "input.kind"),
        ({"pretrain": {"tasks": ["mlm", "dance"]}}, "dance"),
        ({"shards": 3}, "mapping"),
    ],
)
def test_bad_config_is_one_clear_error(raw: dict, needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        config_from_dict(raw)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_resuming_into_a_run_of_another_config_is_refused(tmp_path) -> None:
    from laitkit.datasets.schema import Sample
    from laitkit.datasets.shards import write_shard
    from laitkit.pipeline.runner import run_job

    out = tmp_path / "run"
    first = load_config(None, {"out": str(out)})
    (out / "shards").mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"config_hash": first.config_hash()}))
    write_shard(out / "shards", 0, [Sample(key="k", url="http://x/k.jpg")], config_hash=first.config_hash())
    with pytest.raises(UserError, match="another config"):
        run_job(load_config(None, {"out": str(out), "regions.max_boxes": 20}))
