"""Job config: typed sections, values coerced or refused up front, unknown keys named with the
closest valid one, one line per error, and loading imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from laitkit.errors import UserError
from laitkit.jobs.config import config_from_dict, load_config, schema


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


def test_values_are_coerced_to_their_types() -> None:
    # YAML reads 1e-4 as a string and 5.0 as a float: both mean what the user wrote
    cfg = load_config(None, {"pretrain.lr": "1e-4", "pretrain.steps": 5.0, "crawl.allowed_networks": ["10.0.0.0/8"]})
    same = load_config(None, {"pretrain.lr": 1e-4, "pretrain.steps": 5, "crawl.allowed_networks": ("10.0.0.0/8",)})
    assert cfg.pretrain.lr == pytest.approx(1e-4) and isinstance(cfg.pretrain.lr, float)
    assert cfg.pretrain.steps == 5 and isinstance(cfg.pretrain.steps, int)
    assert cfg.crawl.allowed_networks == ("10.0.0.0/8",)
    assert cfg.config_hash() == same.config_hash()


def test_stage_sections_are_typed_configs_and_stage_hashes_split() -> None:
    from laitkit.extractors.regions import RegionsConfig
    from laitkit.pipeline.crawl.config import CrawlConfig

    cfg = load_config(None)
    assert isinstance(cfg.regions, RegionsConfig) and isinstance(cfg.crawl, CrawlConfig)
    other = load_config(None, {"pretrain.steps": 7})
    assert other.stage_hash("crawl") == cfg.stage_hash("crawl")
    assert other.stage_hash("shards") == cfg.stage_hash("shards")
    assert other.stage_hash("pretrain") != cfg.stage_hash("pretrain")
    assert load_config(None, {"regions.max_boxes": 20}).stage_hash("crawl") == cfg.stage_hash("crawl")
    assert load_config(None, {"regions.max_boxes": 20}).stage_hash("shards") != cfg.stage_hash("shards")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"regoins": {}}, "unknown key 'regoins' (did you mean 'regions'?)"),
        ({"input": {"knd": "warc"}}, "unknown key 'input.knd' (did you mean 'input.kind'?)"),
        ({"regions": {"max_boxs": 3}}, "did you mean 'regions.max_boxes'?"),
        ({"input": {"kind": "ftp"}},
         "input.kind: Input should be 'synth', 'warc', 'wat', 'html' or 'urls' (got 'ftp')"),
        ({"pretrain": {"lr": "fast"}}, "pretrain.lr: Input should be a valid number"),
        ({"regions": {"max_boxes": "abc"}}, "regions.max_boxes: Input should be a valid integer"),
        ({"ray": {"num_cpus": "abc"}}, "ray.num_cpus: Input should be a valid integer"),
        ({"shards": {"samples_per_shard": "abc"}}, "unknown key 'shards.samples_per_shard'"),
        ({"ray": {"stages": {"regions": {"gpus": 1}}}}, "did you mean 'ray.stages.regions.num_gpus'?"),
        ({"pretrain": {"steps": 5.5}}, "pretrain.steps: Input should be a valid integer"),
        ({"shards": 3}, "shards: expected a mapping, got int"),
        ({"regions": {"min_boxes": 50, "max_boxes": 10}}, "min_boxes (50) <= max_boxes (10)"),
    ],
)
def test_bad_config_is_one_clear_error(raw: dict, needle: str) -> None:
    with pytest.raises(UserError) as info:
        config_from_dict(raw)
    assert needle in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_every_error_gets_its_own_line() -> None:
    with pytest.raises(UserError) as info:
        config_from_dict({"regions": {"max_boxs": 3}, "ray": {"num_cpus": "abc"}, "pretrain": {"lr": "x"}})
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert any(line.startswith("ray.num_cpus:") for line in lines)


def test_unknown_task_is_checked_when_the_run_starts() -> None:
    cfg = config_from_dict({"pretrain": {"tasks": ["mlm", "dance"]}})  # loading stays torch-free
    with pytest.raises(ValueError, match="dance"):
        cfg.pretrain.check_tasks()


def test_default_tasks_are_registered_objectives() -> None:
    from laitkit.pipeline.pretrain.config import DEFAULT_TASKS
    from laitkit.pipeline.pretrain.objectives import TASKS

    assert set(DEFAULT_TASKS) <= set(TASKS)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_set_into_a_scalar_is_an_error() -> None:
    with pytest.raises(UserError, match="is not a section"):
        load_config(None, {"out.x": 1})


def test_schema_lists_every_section_and_forbids_extra_keys() -> None:
    s = schema()
    assert set(s["properties"]) >= {"input", "synth", "ray", "crawl", "relevance", "regions", "text", "shards",
                                    "pretrain"}  # fmt: skip
    assert s["$defs"]["RegionsConfig"]["additionalProperties"] is False
    assert "max_boxes" in s["$defs"]["RegionsConfig"]["properties"]


def test_loading_a_config_imports_no_torch() -> None:
    code = ("import sys\nfrom laitkit.jobs.config import load_config\n"
            "c = load_config(None, {'pretrain.lr': '1e-4'})\n"
            "from laitkit.jobs.cli import main\nmain(['config', 'show', '--format', 'json'])\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nassert 'ray' not in sys.modules\n")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["regions"]["max_boxes"] == 36  # the demo's value, with every default filled in
    assert shown["regions"]["nms_thresh"] == 0.3


def test_pretrain_style_in_a_job_config_fills_in_the_keys_the_user_did_not_set() -> None:
    """The typed loader builds PretrainConfig without its `__init__`; the style must still apply."""
    from laitkit.jobs.config import load_config

    # the whole section replaced: the demo's own pretrain keys (task_weights, layers) would win over the style's
    p = load_config(None, {"pretrain": {"style": "uniter", "size": "tiny", "mixing": "sum"}}).pretrain
    assert p.tasks == ("mlm", "mrfr", "mrc_kl", "itm", "wra")
    assert p.conditional_masking is True and p.task_weights["mlm"] == 2.0
    assert p.mixing == "sum"  # the user's key wins over the style's `sample`
    assert p.hidden == 64  # size tiny
    with pytest.raises(UserError, match="unknown pretrain style 'nope'"):
        load_config(None, {"pretrain.style": "nope"})
