"""The job config: YAML in, typed and validated dataclasses out, unknown keys rejected.

Why here and not in each stage: each stage takes only its own frozen config (`CrawlConfig`,
`RegionsConfig`, `TextConfig`, ...), and this module is the one place that turns a user's YAML
into those objects, so a typo such as `regoins:` or `max_boxs:` is one clear error (naming the
closest valid key) before any work starts, never a silently ignored key. The sections are stdlib
dataclasses (the stage ones live in their stage modules and grow there); pydantic validates them
all through `laitkit.config_util`, so a value is coerced or refused at load time (`"1e-4"` for a
float is 0.0001; `abc` for an int is an error), not deep inside a Ray task.

Loading imports no torch, Ray or spaCy: `laitkit config show` answers at once and a config error
comes back in well under a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from laitkit.config_util import json_schema, validate
from laitkit.errors import UserError
from laitkit.extractors.regions import RegionsConfig
from laitkit.extractors.relevance_config import RelevanceConfig
from laitkit.extractors.text import TextConfig
from laitkit.pipeline.crawl.config import CrawlConfig
from laitkit.pipeline.pretrain.config import PretrainConfig

DEFAULT_CONFIG = "demo.yaml"

InputKind = Literal["synth", "warc", "wat", "html", "urls"]
INPUT_KINDS: tuple[str, ...] = ("synth", "warc", "wat", "html", "urls")


@dataclass(frozen=True, kw_only=True)
class InputConfig:
    """What to crawl: a WARC file, a folder of HTML pages, a URL list, or a synthetic web."""

    kind: InputKind = "synth"
    # file, folder, or (warc) a `warc.paths` file; local or any fsspec URI (s3://bucket/...).
    # For synth, the folder made by `laitkit synth`.
    path: str = ""
    paths_base: str = ""  # prefix for relative lines of a warc.paths file (default: its folder)
    # html: the URL the folder was saved from; a page's URL is base_url + its path in the folder
    base_url: str = ""
    pages_per_shard: int = 64

    def __post_init__(self) -> None:
        if self.pages_per_shard < 1:
            raise ValueError(f"must be >= 1, got pages_per_shard={self.pages_per_shard}")


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """For `kind: synth`: generate (if absent) and serve a synthetic web on loopback."""

    pages: int = 120
    seed: int = 0
    port: int = 0  # 0: pick a free port
    timeout_delay: float = 6.0

    def __post_init__(self) -> None:
        if self.pages < 1 or not 0 <= self.port <= 65535 or self.timeout_delay < 0:
            raise ValueError("need pages >= 1, 0 <= port <= 65535 and timeout_delay >= 0")


@dataclass(frozen=True, kw_only=True)
class StageResources:
    """`ray.stages.<name>`: what one Ray Data stage's actors ask for (unset: the stage's default)."""

    num_cpus: float | None = None
    num_gpus: float | None = None
    actors: int | None = None

    def overrides(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class RayConfig:
    """Where the job runs and with what. `local` always starts a fresh private cluster bound to
    127.0.0.1; "host:port" or "auto" joins a running cluster; `ray://…` is Ray Client."""

    address: str = "local"
    num_cpus: int | None = None  # for `local` only
    object_store_memory_mb: int = 0  # Ray Data streaming budget (0: Ray's default)
    dedup_partitions: int = 0  # hash partitions of the distributed dedup (0: one per shard, <= 16)
    connect_timeout: float = 10.0  # seconds to reach a remote `address` before failing in one line
    # per-stage resources, e.g. {"regions": {"actors": 4, "num_gpus": 1, "num_cpus": 2}}
    stages: dict[str, StageResources] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1 (or unset), got {self.num_cpus}")
        if self.connect_timeout <= 0:
            raise ValueError("connect_timeout must be > 0")


@dataclass(frozen=True, kw_only=True)
class ShardsConfig:
    """Output shards. Output shard i holds the samples of input shard i (`input.pages_per_shard`)."""

    write_rejected: bool = True
    # where workers put the shards: "" is `out/shards` (and `out/rejected`); an fsspec URI such as
    # s3://bucket/prefix gets `shards/` and `rejected/` under it (object PUTs, stats file last)
    dest: str = ""
    layout: Literal["split", "flat"] = "split"  # split: shards/tar/ + shards/parquet/; flat: one folder (old runs)


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """The whole job, every section typed; stage sections are the stage modules' own configs."""

    out: str = "out/run"
    input: InputConfig = field(default_factory=InputConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    relevance: RelevanceConfig = field(default_factory=RelevanceConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    text: TextConfig = field(default_factory=TextConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config (every default filled in), as JSON-ready plain data."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def config_hash(self) -> str:
        """Hash of everything that changes the output (not where it goes, nor where it runs)."""
        d = self.to_dict()
        d.pop("out", None)
        d.pop("ray", None)
        d["shards"].pop("layout", None)  # where files go, not what they hold
        return _hash(d)

    def stage_hash(self, stage: str) -> str:
        """Hash of the sections that stage `stage` depends on (see `STAGE_SECTIONS`): a change
        elsewhere leaves that stage's output valid, so a rerun reuses it."""
        d = self.to_dict()
        return _hash({k: _pick(d, k) for k in STAGE_SECTIONS[stage]})


# What each resumable step of a job reads from the config (dotted: one key of a section).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "crawl": (
        "input.kind", "input.paths_base", "input.base_url", "input.pages_per_shard",
        "synth.pages", "synth.seed", "crawl",
    ),
    "dedup": ("crawl",),
    "shards": ("crawl", "relevance", "regions", "text", "shards"),
    "pretrain": ("pretrain",),
}


def _pick(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = d[part]
    return d


def _hash(d: Any) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> JobConfig:
    """Load a YAML job config (None: the embedded demo) and apply dotted overrides."""
    if path is None:
        text = resources.files("laitkit.jobs").joinpath("configs", DEFAULT_CONFIG).read_text()
        where = f"<embedded {DEFAULT_CONFIG}>"
    else:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {p}")
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read config {p}: {exc}") from None
        where = str(p)
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{where}: not valid YAML ({first})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{where}: top level must be a mapping")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"--set {dotted}: {'.'.join(parents[: i + 1])} is not a section")
            node = child
        node[last] = value
    return config_from_dict(raw, where)


def config_from_dict(raw: dict[str, Any], where: str = "config") -> JobConfig:
    """Validate plain data into a `JobConfig`; every problem is one line of one `UserError`."""
    raw = {k: ({} if v is None and k != "out" else v) for k, v in raw.items()}
    section = raw.get("pretrain")
    if isinstance(section, dict) and (section.get("style") or section.get("size")):
        raw["pretrain"] = _expand_style(section)
    return validate(JobConfig, raw)


def _expand_style(section: dict[str, Any]) -> dict[str, Any]:
    """`pretrain.style` / `pretrain.size` filled into the section's keys before validation.

    Why here: pydantic builds the dataclass without calling its `__init__` (where code that builds
    a PretrainConfig directly gets the same expansion), and the user's own keys must win.
    """
    from laitkit.pipeline.pretrain.styles import expand

    try:
        return expand(section)
    except ValueError as exc:
        raise UserError(f"pretrain: {exc}") from None


def schema() -> dict[str, Any]:
    """The JSON Schema of a job config (`laitkit config schema`)."""
    return json_schema(JobConfig)
