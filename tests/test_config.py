"""Job config: the embedded default loads, unknown keys and bad values are one clear error."""

from __future__ import annotations

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
