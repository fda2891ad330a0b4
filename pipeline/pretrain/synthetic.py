"""Pretraining shards straight from the synthetic web's scene plans, with oracle region features.

Why: tests and `laitkit bench pretrain` need thousands of samples whose captions are true of
their regions, on 2 CPU cores, in seconds. Running the crawler and a detector for that costs
minutes; instead each scene is planned (datasets/synth, which also writes the captions), and each
gold object becomes a region whose feature is a fixed random code of its class + colour + size
plus noise (what a perfect detector's features would separate), with one or two background
regions of pure noise; each object's colour is its attribute, and a soft class distribution
(background first) stands in for the detector's. The samples are ordinary `Sample`s written by
`datasets.shards`, so the loader reads them exactly as it reads a crawled corpus. Captions can be annotated by the real
text stage (spaCy) so scene-graph spans are real too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from laitkit.datasets.schema import Regions, Sample, make_key


def _codes(dim: int) -> dict[str, np.ndarray]:
    from laitkit.datasets.synth.scenes import CLASSES, COLOURS, SIZES

    rng = np.random.default_rng(1234)
    return {name: rng.normal(size=dim).astype(np.float32) for name in (*CLASSES, *COLOURS, *SIZES)}


def synthetic_samples(
    n: int, *, seed: int = 0, dim: int = 32, noise: float = 0.3, start: int = 0, images: bool = False
) -> list[Sample]:
    """`n` accepted samples (caption, regions) planned from synthetic scenes; `images` also renders
    each scene to JPEG bytes (Pixel-BERT trains on pixels)."""
    from laitkit.datasets.synth.captions import describe
    from laitkit.datasets.synth.scenes import CLASSES, COLOURS, plan_scene

    codes = _codes(dim)
    out = []
    for i in range(start, start + n):
        rng = np.random.default_rng([seed, i])
        scene = plan_scene(rng, 320, 240)
        caption = describe(scene, rng)
        url = f"http://synth.test/img/{seed}-{i}.jpg"
        s = Sample(key=make_key(url, caption), url=url, caption=caption, width=320, height=240)
        s.accept("synthetic")
        if images:
            from laitkit.datasets.synth.graphics import encode
            from laitkit.datasets.synth.scenes import render_scene

            s.image = encode(render_scene(scene, np.random.default_rng([seed, i, 1])), "JPEG")
        feats, boxes, names, ids, attrs = [], [], [], [], []
        for obj in scene.objects:
            attrs.append(list(COLOURS).index(obj.colour))
            code = codes[obj.label] + codes[obj.colour] + codes[obj.size]
            feats.append(code + noise * rng.normal(size=dim))
            boxes.append(obj.box)
            names.append(obj.label)
            ids.append(CLASSES.index(obj.label))
        for _ in range(int(rng.integers(1, 3))):
            x, y = float(rng.uniform(0, 200)), float(rng.uniform(0, 150))
            feats.append(rng.normal(size=dim))
            boxes.append((x, y, x + 80.0, y + 60.0))
            names.append("background")
            ids.append(len(CLASSES))
            attrs.append(-1)
        k = len(feats)
        soft_ids, soft_probs = _soft_labels(np.asarray(ids), len(CLASSES) + 1, np.random.default_rng([seed, i, 7]))
        s.regions = Regions(
            detector="synthetic-oracle", image_h=240, image_w=320, boxes=np.asarray(boxes, np.float32),
            features=np.asarray(feats, np.float32), obj_ids=np.asarray(ids), obj_conf=np.ones(k),
            attr_ids=np.asarray(attrs), attr_conf=(np.asarray(attrs) >= 0).astype(np.float32), obj_names=names,
            attr_names=[list(COLOURS)[a] if a >= 0 else "" for a in attrs], soft_ids=soft_ids, soft_probs=soft_probs,
        )
        out.append(s)
    return out


def _soft_labels(ids: np.ndarray, classes: int, rng: np.random.Generator, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A detector-like top-k class distribution per region (background column first, then the
    true class most likely and k-1 random others), for MRC-kl. Its own generator: adding it left
    every other draw of the synthetic corpus unchanged."""
    n = len(ids)
    sid = np.zeros((n, k + 1), np.int32)
    sp = np.zeros((n, k + 1), np.float32)
    for r, c in enumerate(ids):
        others = rng.choice([x for x in range(classes) if x != c], size=k - 1, replace=False)
        sid[r, 1:] = [c + 1, *(others + 1)]
        p = rng.dirichlet(np.ones(k + 1))
        sp[r] = 0.3 * p + 0.7 * np.eye(k + 1)[1]
    return sid, sp


def write_synthetic_shards(
    out_dir: Path, shards: int, per_shard: int, *, seed: int = 0, dim: int = 32, annotate: bool = False,
    images: bool = False,
) -> list[Path]:
    """Write `shards` shards of `per_shard` samples; `annotate` runs the real text stage on captions."""
    from laitkit.datasets.shards import write_shard

    nlp = None
    if annotate:
        from laitkit.extractors.text import TextExtractor

        nlp = TextExtractor()
    paths = []
    for sh in range(shards):
        samples = synthetic_samples(per_shard, seed=seed, dim=dim, start=sh * per_shard, images=images)
        if nlp is not None:
            for s, ann in zip(samples, nlp.annotate([s.caption for s in samples]), strict=True):
                s.text = ann
        info = write_shard(out_dir, sh, samples, config_hash=f"synthetic-{seed}", feature_dim=dim)
        paths.append(info.tar)
    return paths
