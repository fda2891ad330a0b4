"""Pairs for the relevance model: from laitkit shards (WebDataset tars or Parquet) or the synthetic web.

Why a pair record of its own: training, eval, captioning and arithmetic need the caption, the
image's boxes (or bytes, for the pixel encoder), the caption's POS tags from the text stage and, on
synthetic data, what the image really shows. Synthetic pairs' region features come from the
project's tiny detector once and are cached on disk (an `.npz` keyed by seed, count and detector
settings): rendering is milliseconds, the detector is the cost on a 2-core machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from laitkit.errors import UserError
from laitkit.extractors.vse_inputs import BoxSet, boxset_from_regions

log = logging.getLogger(__name__)

# The regions settings of the demo job (jobs/configs/demo.yaml), so cached features match the crawl's.
SYNTH_REGIONS = {"config": "tiny", "device": "cpu", "min_boxes": 10, "max_boxes": 36, "batch_size": 8}


@dataclass
class VSEPair:
    key: str
    caption: str
    boxes: BoxSet | None = None
    image: bytes = b""
    pos: list[str] = field(default_factory=list)  # UPOS per word of the caption, when the text stage ran
    words: list[str] = field(default_factory=list)
    objects: list[tuple[str, str]] = field(default_factory=list)  # (colour, shape): synthetic truth only
    mismatch: str = ""  # synthetic only: a caption of another scene, as synth injects them


def _samples(path: Path) -> Iterator[object]:
    from laitkit.datasets.shards import iter_parquet, iter_tar, list_shard_files

    if path.is_file():
        if path.suffix == ".parquet":
            yield from iter_parquet(path)
        elif path.suffix == ".tar":
            yield from iter_tar(path)
        else:
            raise UserError(f"{path}: expected a .tar or .parquet shard, or a shard directory")
        return
    if list_shard_files(path, "parquet"):  # completed shards of either layout (flat or tar/ + parquet/)
        yield from iter_parquet(path)
    else:
        raise UserError(f"{path}: no completed laitkit shards (a .tar/.parquet per *_stats.json) found")


def pairs_from_shards(path: str | Path, limit: int | None = None) -> list[VSEPair]:
    """Kept samples with a caption; boxes when the regions stage ran, POS when the text stage did."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"pairs {str(p)!r} do not exist")
    out: list[VSEPair] = []
    for s in _samples(p):
        if not s.caption or not s.kept:  # type: ignore[attr-defined]
            continue
        r, t = s.regions, s.text  # type: ignore[attr-defined]
        out.append(VSEPair(
            key=s.key, caption=s.caption, image=s.image,  # type: ignore[attr-defined]
            boxes=boxset_from_regions(r) if r is not None else None,
            pos=list(t.upos) if t is not None else [], words=list(t.tokens) if t is not None else [],
        ))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise UserError(f"{p}: no kept samples with a caption")
    return out


def mismatched_caption(scene: object, rng: np.random.Generator) -> str:
    """What synth's `shuffled_caption` noise writes: a caption of a scene of other classes entirely."""
    from laitkit.datasets.synth.captions import describe
    from laitkit.datasets.synth.scenes import CLASSES, plan_scene

    present = {o.label for o in scene.objects}  # type: ignore[attr-defined]
    other = plan_scene(rng, 500, 400, classes=tuple(c for c in CLASSES if c not in present))
    return describe(other, rng)


def render_synth(n: int, seed: int) -> list[VSEPair]:
    """`n` synthetic scenes as JPEG bytes (224-320 px short side, as crawled) with caption and truth."""

    from laitkit.datasets.synth.captions import describe
    from laitkit.datasets.synth.scenes import plan_scene, render_scene

    rng = np.random.default_rng([seed, 13])
    out = []
    for i in range(n):
        short = int(rng.integers(224, 321))
        long = int(rng.integers(short, int(short * 1.5) + 1))
        w, h = (long, short) if rng.random() < 0.6 else (short, long)
        scene = plan_scene(rng, w, h)
        img = render_scene(scene, np.random.default_rng(int(rng.integers(0, 2**31 - 1))))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(VSEPair(
            key=f"synth-{seed}-{i:06d}", caption=describe(scene, rng), image=buf.getvalue(),
            objects=[(o.colour, o.label) for o in scene.objects], mismatch=mismatched_caption(scene, rng),
        ))
    return out


def _cache_key(n: int, seed: int, regions: dict) -> str:
    return hashlib.sha256(json.dumps([n, seed, regions, 1], sort_keys=True).encode()).hexdigest()[:16]


def _save_boxes(path: Path, sets: list[BoxSet]) -> None:
    counts = np.array([len(s.obj_ids) for s in sets], dtype=np.int64)
    cat = (lambda name: np.concatenate([getattr(s, name) for s in sets]))  # noqa: E731
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, counts=counts, features=cat("features"), geom=cat("geom"), obj_ids=cat("obj_ids"),
             attr_ids=cat("attr_ids"))
    tmp.replace(path)


def _load_boxes(path: Path) -> list[BoxSet]:
    z = np.load(path)
    ends = np.cumsum(z["counts"])
    starts = ends - z["counts"]
    f, g, o, a = z["features"], z["geom"], z["obj_ids"], z["attr_ids"]
    return [BoxSet(f[s:e], g[s:e], o[s:e], a[s:e]) for s, e in zip(starts, ends, strict=True)]


def extract_boxes(images: list[bytes], regions: dict | None = None) -> list[BoxSet]:
    """Run the project's region extractor (the crawl's settings by default) over JPEG bytes."""
    from laitkit.extractors.regions import RegionExtractor, RegionsConfig

    ext = RegionExtractor(RegionsConfig(**(regions or SYNTH_REGIONS)))
    out = []
    for i in range(0, len(images), 64):
        for r in ext.extract(images[i : i + 64]):
            if isinstance(r, str):
                raise RuntimeError(f"synthetic image failed in the region extractor: {r}")
            out.append(boxset_from_regions(r))
    return out


def synth_pairs(n: int, seed: int, cache_dir: Path | None, *, with_boxes: bool = True) -> list[VSEPair]:
    """Rendered synthetic pairs, with region features from the cache or the tiny detector."""
    pairs = render_synth(n, seed)
    if not with_boxes:
        return pairs
    path = cache_dir / f"synth_{seed}_{n}_{_cache_key(n, seed, SYNTH_REGIONS)}.npz" if cache_dir else None
    if path is not None and path.exists():
        sets = _load_boxes(path)
    else:
        log.info("extracting region features of %d synthetic images (cached at %s)", n, path)
        sets = extract_boxes([p.image for p in pairs])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _save_boxes(path, sets)
    for p, s in zip(pairs, sets, strict=True):
        p.boxes = s
    return pairs


def default_cache() -> Path:
    import os

    return Path(os.environ.get("LAITKIT_CACHE", Path.home() / ".cache" / "laitkit")) / "vse"


def load_pairs(spec: str, cache: Path | None = None, *, with_boxes: bool = True) -> list[VSEPair]:
    """`synth:N:SEED` (rendered synthetic pairs, features cached) or a shard file / directory."""
    if spec.startswith("synth:"):
        parts = spec.split(":")
        try:
            n, seed = int(parts[1]), int(parts[2]) if len(parts) > 2 else 0
        except (IndexError, ValueError):
            raise UserError(f"pairs {spec!r}: expected synth:N or synth:N:SEED") from None
        if n < 2:
            raise UserError(f"pairs {spec!r}: need at least 2 pairs")
        return synth_pairs(n, seed, cache if cache is not None else default_cache(), with_boxes=with_boxes)
    return pairs_from_shards(spec)
