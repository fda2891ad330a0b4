"""The Ray Data part of a job: which stages run, in which order, with how many actors.

Why one function: the order is the recipe (dedup before the expensive models; relevance after
regions, whose boxes its scorer reads), and the actor counts are the one thing a cluster user
tunes; both belong in one readable place.
Configs are built here from the job's plain dicts, so an unknown key is rejected before Ray starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from laitkit.errors import UserError


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    from laitkit.config_util import build_dataclass

    return build_dataclass(cls, data, where)


def crawl_config(data: dict[str, Any]) -> Any:
    from laitkit.pipeline.crawl import CrawlConfig

    return _build(CrawlConfig, data, "crawl")


def relevance_config(data: dict[str, Any]) -> Any:
    from laitkit.extractors.relevance_config import RelevanceConfig

    return _build(RelevanceConfig, data, "relevance")


def regions_config(data: dict[str, Any]) -> Any:
    from laitkit.extractors.regions import RegionsConfig

    return _build(RegionsConfig, data, "regions")


def text_config(data: dict[str, Any]) -> Any:
    from laitkit.extractors.text import TextConfig

    return _build(TextConfig, data, "text")


def validate(cfg: Any) -> None:
    """Build every stage config once so that bad keys fail before any work starts."""
    for build, data in (
        (crawl_config, cfg.crawl),
        (relevance_config, cfg.relevance),
        (regions_config, cfg.regions),
        (text_config, cfg.text),
    ):
        build(data)
    validate_stage_overrides(cfg)


@dataclass(frozen=True)
class StageSpec:
    """One Ray Data stage of the job: its callable class, how to build its constructor kwargs from
    the job config, and its default resources (a user overrides them in `ray.stages.<name>`)."""

    name: str
    cls: Callable[[], type]
    kwargs: Callable[[Any, dict[str, Any]], dict[str, Any]]
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    actors: int = 1


def _dedup_cls() -> type:
    from laitkit.pipeline.dedup_stage import DedupStage

    return DedupStage


def _relevance_cls() -> type:
    from laitkit.pipeline.relevance_stage import RelevanceStage

    return RelevanceStage


def _regions_cls() -> type:
    from laitkit.pipeline.regions_stage import RegionsStage

    return RegionsStage


def _text_cls() -> type:
    from laitkit.pipeline.text_stage import TextStage

    return TextStage


def _write_cls() -> type:
    from laitkit.pipeline.write_stage import WriteShardStage

    return WriteShardStage


# The recipe, in order. Light stages ask for a fraction of a CPU so that, on a small machine, the
# detector actors (the expensive part) get the whole cores and nothing waits for a slot: all the
# light actors together fit in one core (0.8), so two one-CPU nodes run the whole pipeline. The
# regions defaults (one actor per GPU, else per core but one) are filled in by `regions_resources`.
STAGES: tuple[StageSpec, ...] = (
    StageSpec("dedup", _dedup_cls, lambda cfg, ctx: {"verdicts_dir": ctx["dedup_dir"]}, num_cpus=0.1),
    StageSpec("regions", _regions_cls, lambda cfg, ctx: {"cfg": regions_config(cfg.regions)}, num_cpus=1.0),
    # Relevance after regions: the default `vse` scorer reads the boxes the regions stage stored.
    StageSpec("relevance", _relevance_cls, lambda cfg, ctx: {"cfg": relevance_config(cfg.relevance)}, num_cpus=0.3),
    StageSpec("text", _text_cls, lambda cfg, ctx: {"cfg": text_config(cfg.text)}, num_cpus=0.3),
    StageSpec("write", _write_cls, lambda cfg, ctx: {
        "out": ctx["out"], "config_hash": ctx["config_hash"], "write_rejected": cfg.shards.write_rejected,
        "expected": ctx["expected"], "dest": cfg.shards.dest, "layout": cfg.shards.layout}, num_cpus=0.1),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
RESOURCE_KEYS = ("num_cpus", "num_gpus", "actors")


def stage_resources(spec: StageSpec, cfg: Any, cluster: dict[str, float]) -> dict[str, Any]:
    """Defaults of `spec`, then the regions rule for GPUs / cores, then `ray.stages.<name>`."""
    res: dict[str, Any] = {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus, "actors": spec.actors}
    if spec.name == "regions":
        from laitkit.pipeline.regions_stage import regions_map_kwargs

        kw = regions_map_kwargs(regions_config(cfg.regions), int(cluster.get("GPU", 0)), int(cluster.get("CPU", 1)),
                                cpu_actors=max(1, int(cluster.get("CPU", 1)) - 1))  # fmt: skip
        res = {"num_cpus": kw["num_cpus"], "num_gpus": kw.get("num_gpus", 0), "actors": kw["compute"].max_size,
               "num_threads": kw["fn_constructor_kwargs"]["num_threads"]}  # fmt: skip
    given = (getattr(cfg.ray, "stages", None) or {}).get(spec.name) or {}
    overrides = dict(given.overrides() if hasattr(given, "overrides") else given)  # typed or a plain dict
    unknown = sorted(set(overrides) - set(RESOURCE_KEYS))
    if unknown:
        known = ", ".join(RESOURCE_KEYS)
        raise UserError(f"ray.stages.{spec.name}: unknown key(s) {', '.join(unknown)} (known: {known})")
    res.update(overrides)
    return res


def validate_stage_overrides(cfg: Any) -> None:
    unknown = sorted(set(getattr(cfg.ray, "stages", None) or {}) - set(STAGE_NAMES))
    if unknown:
        raise UserError(f"ray.stages: unknown stage(s) {', '.join(unknown)} (known: {', '.join(STAGE_NAMES)})")


def apply_stages(ds: Any, cfg: Any, ctx: dict[str, Any]) -> Any:
    """Every stage of `STAGES` as a `map_batches` over whole-shard blocks, in order.

    `batch_size=None`: each block is one input shard (see `runner.featurise`), and every stage
    sees it whole, so the write stage gets complete shards without a shuffle.
    """
    import ray

    cluster = ray.cluster_resources()
    for spec in STAGES:
        res = stage_resources(spec, cfg, cluster)
        kwargs = spec.kwargs(cfg, ctx)
        if "num_threads" in res:
            kwargs["num_threads"] = res.pop("num_threads")
        extra = {"num_gpus": res["num_gpus"]} if res["num_gpus"] else {}
        ds = ds.map_batches(
            spec.cls(), fn_constructor_kwargs=kwargs, batch_size=None, compute=ray.data.ActorPoolStrategy(
                size=int(res["actors"])), num_cpus=res["num_cpus"], batch_format="numpy", **extra)  # fmt: skip
    return ds
