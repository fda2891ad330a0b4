"""The Ray Data part of a job: which stages run, in which order, with how many actors.

Why one function: the order is the recipe (dedup before relevance before the expensive models),
and the actor counts are the one thing a cluster user tunes; both belong in one readable place.
Configs are built here from the job's plain dicts, so an unknown key is rejected before Ray starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    from laitkit.jobs.config import build_dataclass

    return build_dataclass(cls, data, where)


def crawl_config(data: dict[str, Any]) -> Any:
    from laitkit.pipeline.crawl import CrawlConfig

    return _build(CrawlConfig, data, "crawl")


def relevance_config(data: dict[str, Any]) -> Any:
    from laitkit.extractors.relevance import RelevanceConfig

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


def apply_stages(ds: Any, cfg: Any, dedup_path: Path) -> Any:
    """dedup → regions → relevance → text, each a `map_batches` over encoded samples."""
    import ray

    from laitkit.pipeline.dedup_stage import DedupStage
    from laitkit.pipeline.regions_stage import RegionsStage, regions_map_kwargs
    from laitkit.pipeline.relevance_stage import RelevanceStage
    from laitkit.pipeline.text_stage import TextStage

    def pool(size: int = 1) -> Any:
        return ray.data.ActorPoolStrategy(size=size)

    # Light stages ask for a fraction of a CPU so that, on a small machine, the detector actors
    # (the expensive part) get the whole cores and nothing waits for a slot.
    ds = ds.map_batches(
        DedupStage, fn_constructor_kwargs={"verdicts_path": str(dedup_path)}, batch_size=256, compute=pool(),
        num_cpus=0.1, batch_format="numpy",
    )
    rcfg = regions_config(cfg.regions)
    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 1))
    ds = ds.map_batches(
        RegionsStage, **regions_map_kwargs(rcfg, int(resources.get("GPU", 0)), cpus, cpu_actors=max(1, cpus - 1))
    )
    # Relevance after regions: the default `vse` scorer reads the boxes the regions stage stored.
    ds = ds.map_batches(
        RelevanceStage, fn_constructor_kwargs={"cfg": relevance_config(cfg.relevance)}, batch_size=64,
        compute=pool(), num_cpus=0.4, batch_format="numpy",
    )
    ds = ds.map_batches(
        TextStage, fn_constructor_kwargs={"cfg": text_config(cfg.text)}, batch_size=256, compute=pool(),
        num_cpus=0.4, batch_format="numpy",
    )
    return ds

