"""The job config: YAML in, typed and validated dataclasses out, unknown keys rejected.

Why here and not in each stage: each stage takes only its own frozen config (`CrawlConfig`,
`RegionsConfig`, `TextConfig`, ...), and this module is the one place that turns a user's YAML
into those objects, so a typo such as `regoins:` or `max_boxs:` is one clear error before any
work starts, never a silently ignored key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from laitkit.config_util import build_dataclass
from laitkit.errors import UserError
from laitkit.pipeline.pretrain.train import PretrainConfig

DEFAULT_CONFIG = "demo.yaml"


@dataclass(frozen=True, kw_only=True)
class InputConfig:
    """What to crawl: a WARC file, a folder of HTML pages, a URL list, or a synthetic web."""

    kind: str = "synth"  # synth | warc | html | urls
    # file, folder, or (warc) a `warc.paths` file; local or any fsspec URI (s3://bucket/...).
    # For synth, the folder made by `laitkit synth`.
    path: str = ""
    paths_base: str = ""  # prefix for relative lines of a warc.paths file (default: its folder)
    pages_per_shard: int = 64

    def __post_init__(self) -> None:
        if self.kind not in ("synth", "warc", "html", "urls"):
            raise UserError(f"input.kind must be one of synth, warc, html, urls (got {self.kind!r})")
        if self.pages_per_shard < 1:
            raise UserError("input.pages_per_shard must be >= 1")


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """For `kind: synth`: generate (if absent) and serve a synthetic web on loopback."""

    pages: int = 120
    seed: int = 0
    port: int = 0  # 0: pick a free port
    timeout_delay: float = 6.0


@dataclass(frozen=True, kw_only=True)
class RayConfig:
    """Where the job runs and with what. `local` always starts a fresh private cluster bound to
    127.0.0.1; "host:port" or "auto" joins a running cluster; `ray://…` is Ray Client."""

    address: str = "local"
    num_cpus: int | None = None  # for `local` only
    object_store_memory_mb: int = 0  # Ray Data streaming budget (0: Ray's default)
    dedup_partitions: int = 0  # hash partitions of the distributed dedup (0: one per shard, <= 16)
    # per-stage resources, e.g. {"regions": {"actors": 4, "num_gpus": 1, "num_cpus": 2}}
    stages: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ShardsConfig:
    samples_per_shard: int = 1000
    write_rejected: bool = True
    # where workers put the shards: "" is `out/shards` (and `out/rejected`); an fsspec URI such as
    # s3://bucket/prefix gets `shards/` and `rejected/` under it (object PUTs, stats file last)
    dest: str = ""
    layout: str = "split"  # split: tars in shards/tar/, Parquet in shards/parquet/; flat: one folder (old runs)

    def __post_init__(self) -> None:
        if self.layout not in ("split", "flat"):
            raise UserError(f"shards.layout must be split or flat (got {self.layout!r})")


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """The whole job. Stage sections hold plain dicts until the stage module builds its config."""

    out: str = "out/run"
    input: InputConfig = field(default_factory=InputConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    crawl: dict[str, Any] = field(default_factory=dict)
    relevance: dict[str, Any] = field(default_factory=dict)
    regions: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """Hash of everything that changes the output (not where it goes)."""
        d = self.to_dict()
        d.pop("out", None)
        d.pop("ray", None)
        d["shards"].pop("layout", None)  # where files go, not what they hold: an old flat run resumes
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


_SECTIONS = {
    "input": InputConfig,
    "synth": SynthConfig,
    "ray": RayConfig,
    "shards": ShardsConfig,
    "pretrain": PretrainConfig,
}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> JobConfig:
    """Load a YAML job config (None: the embedded demo) and apply dotted overrides."""
    if path is None:
        text = resources.files("laitkit.jobs").joinpath("configs", DEFAULT_CONFIG).read_text()
        where = f"<embedded {DEFAULT_CONFIG}>"
    else:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {p}")
        text = p.read_text()
        where = str(p)
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{where}: top level must be a mapping")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config_from_dict(raw, where)


def config_from_dict(raw: dict[str, Any], where: str = "config") -> JobConfig:
    top = {f.name for f in fields(JobConfig)}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise UserError(f"unknown config key(s) in {where}: {', '.join(unknown)} (known: {', '.join(sorted(top))})")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECTIONS:
            kwargs[key] = build_dataclass(_SECTIONS[key], value, f"{where}: {key}")
        elif key == "out":
            kwargs[key] = str(value)
        else:
            if value is not None and not isinstance(value, dict):
                raise UserError(f"{where}: {key} must be a mapping")
            kwargs[key] = dict(value or {})
    return JobConfig(**kwargs)
