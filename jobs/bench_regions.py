"""`laitkit bench regions`: batched Ray extraction vs detectron2's DefaultPredictor, and tiny-detector quality.

Why these numbers: the issue's claim is that batching many images per forward pass (and one
single-threaded model per Ray actor) beats the usual `DefaultPredictor` loop, with the same
config, weights, images and total thread count; and that the shipped tiny detector really finds
the synthetic objects (map50, attribute accuracy on held-out scenes). With a GPU, the BUTD R101-C4
layout at 600/1000 is timed as well (random weights: speed does not depend on them).

The predictor baseline decodes each image with PIL inside the loop, as the batched path does, and
only runs detection (no feature pooling), so the ratio is conservative.
"""

from __future__ import annotations

import dataclasses
import io
import sys
import time
from typing import Any

import numpy as np


def _say(msg: str) -> None:
    print(f"[bench regions] {msg}", file=sys.stderr, flush=True)


def _images(n: int, seed: int) -> list[bytes]:
    from laitkit.extractors.regions_synth import held_out_images

    return [b for b, _ in held_out_images(n, seed)]


def _predictor_loop(ext: Any, images: list[bytes], threads: int) -> float:
    """images/s of `DefaultPredictor` over `images`, same detector config and weights as `ext`."""
    import torch
    from detectron2.engine import DefaultPredictor
    from PIL import Image

    torch.set_num_threads(threads)
    cfg = ext.det_cfg.clone()
    cfg.MODEL.DEVICE = ext.device
    cfg.MODEL.WEIGHTS = ""
    cfg.INPUT.MIN_SIZE_TEST = ext.min_size
    cfg.INPUT.MAX_SIZE_TEST = ext.max_size
    import logging

    logging.getLogger("fvcore.common.checkpoint").setLevel(logging.ERROR)
    pred = DefaultPredictor(cfg)
    unfused = type(ext)(dataclasses.replace(ext.cfg, fuse_bn=False))  # same weights, as a checkpoint has them
    pred.model.load_state_dict(unfused.model.state_dict())
    del unfused
    pred.model.eval()

    def run(data: bytes) -> None:
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        pred(np.ascontiguousarray(rgb[:, :, ::-1]))  # DefaultPredictor takes BGR

    run(images[0])  # warm-up
    t0 = time.perf_counter()
    for data in images:
        run(data)
    return len(images) / (time.perf_counter() - t0)


def _extractor_rate(ext: Any, images: list[bytes], threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    ext.extract(images[: ext.cfg.batch_size])  # warm-up
    t0 = time.perf_counter()
    res = ext.extract(images)
    dt = time.perf_counter() - t0
    bad = [r for r in res if isinstance(r, str)]
    if bad:
        raise RuntimeError(f"bench images failed: {bad[:2]}")
    return len(images) / dt


def _ray_rate(cfg: Any, images: list[bytes], actors: int) -> tuple[float, float]:
    """(steady-state, end-to-end) images/s through Ray Data with `actors` single-threaded RegionsStage actors.

    Ray Data hands results back in bursts, so steady state is measured differentially: a run over
    `2 * actors * ray_batch` images (actor start-up, model loading, first batches) and a run over all
    images, on the same warm Ray instance; rate = extra images / extra seconds. End-to-end is the
    full run including start-up, as a one-off job would see it.
    """
    import ray

    from laitkit.datasets.codec import to_row
    from laitkit.datasets.schema import Sample
    from laitkit.pipeline.regions_stage import RegionsStage, regions_map_kwargs

    rows = []
    for i, data in enumerate(images):
        s = Sample(key=f"bench-{i:05d}", url=f"http://bench/{i}.jpg", image=data)
        rows.append(to_row(s))
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=actors, num_gpus=0, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        started = True
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        kwargs = regions_map_kwargs(cfg, 0, num_cpus_available=actors)

        def timed(part: list[dict]) -> float:
            ds = ray.data.from_items(part, override_num_blocks=max(len(part) // kwargs["batch_size"], 1))
            t0 = time.perf_counter()
            out = ds.map_batches(RegionsStage, **kwargs).select_columns(["status"]).take_all()
            dt = time.perf_counter() - t0
            bad = sum(r["status"] != "keep" for r in out)
            if bad or len(out) != len(part):
                raise RuntimeError(f"{bad} bench rows were rejected, {len(out)} of {len(part)} came back")
            return dt

        small = rows[: 2 * actors * kwargs["batch_size"]]
        timed(small)  # first use of the cluster: worker processes, imports
        t_small = timed(small)
        t_full = timed(rows)
        extra = len(rows) - len(small)
        steady = extra / (t_full - t_small) if t_full > t_small and extra > 0 else len(rows) / t_full
        return steady, len(rows) / t_full
    finally:
        if started:
            ray.shutdown()


def run_regions_bench(
    *, config: str = "tiny", weights: str | None = None, images: int = 320, threads: int = 2, batch_size: int = 8,
    eval_images: int = 200, use_ray: bool = True, gpu_images: int = 200, seed: int = 7,
) -> dict[str, Any]:
    """Run the benchmark; progress on stderr; returns the JSON-able result (the issue's keys first)."""
    import torch

    from laitkit.extractors.regions import RegionExtractor, RegionsConfig
    from laitkit.extractors.regions_synth import evaluate_synthetic

    torch.set_num_threads(threads)
    cfg = RegionsConfig(config=config, weights=weights, device="cpu", batch_size=batch_size)
    _say(f"building {config} detector on cpu, {threads} threads")
    ext = RegionExtractor(cfg)
    imgs = _images(images, seed)
    _say(f"DefaultPredictor loop over {len(imgs)} synthetic JPEGs")
    pred_rate = _predictor_loop(ext, imgs, threads)
    _say(f"predictor: {pred_rate:.2f} img/s; in-process batched extractor")
    ext_rate = _extractor_rate(ext, imgs, threads)
    _say(f"extractor: {ext_rate:.2f} img/s")
    mode = "in-process"
    batched = ext_rate
    ray_total = None
    if use_ray:
        try:
            _say(f"Ray Data, {threads} single-threaded actors")
            batched, ray_total = _ray_rate(cfg, imgs, threads)
            mode = f"ray x{threads} single-thread actors, steady state (differential)"
            _say(f"ray: {batched:.2f} img/s steady, {ray_total:.2f} img/s with actor start-up")
        except Exception as exc:  # report the in-process number rather than nothing
            _say(f"ray path failed ({type(exc).__name__}: {exc}); reporting the in-process extractor")
    torch.set_num_threads(threads)
    metrics: dict[str, Any] = {}
    if eval_images:
        _say(f"map50 on {eval_images} held-out scenes")
        metrics = evaluate_synthetic(weights, n_images=eval_images, config=config)
    result: dict[str, Any] = {
        "batched_images_per_s": round(batched, 3),
        "predictor_images_per_s": round(pred_rate, 3),
        "ratio": round(batched / pred_rate, 3) if pred_rate else None,
        "device": "cpu",
        "map50": metrics.get("map50"),
        "attr_accuracy": metrics.get("attr_accuracy"),
        "batched_mode": mode,
        "extractor_images_per_s": round(ext_rate, 3),
        "ray_end_to_end_images_per_s": round(ray_total, 3) if ray_total else None,
        "threads": threads,
        "images": len(imgs),
        "config": ext.detector,
    }
    if torch.cuda.is_available():
        result.update(_gpu_r101(gpu_images, seed))
    return result


def _gpu_r101(n: int, seed: int) -> dict[str, Any]:
    """R101-C4 (BUTD VG layout, random weights) images/s at 600/1000 on the first GPU."""
    import torch

    from laitkit.extractors.regions import RegionExtractor, RegionsConfig

    _say(f"R101-C4 600/1000 on {torch.cuda.get_device_name(0)}")
    rng = np.random.default_rng(seed)
    imgs = [rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8) for _ in range(min(n, 64))]
    imgs = (imgs * (n // len(imgs) + 1))[:n]
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0)}
    for bs in (8, 16):
        ext = RegionExtractor(RegionsConfig(config="random-r101-c4", device="cuda", batch_size=bs))
        ext.extract(imgs[: bs * 2])
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        ext.extract(imgs)
        torch.cuda.synchronize()
        rate = n / (time.perf_counter() - t0)
        _say(f"R101-C4 batch {bs}: {rate:.1f} img/s")
        out[f"r101_c4_images_per_s_bs{bs}"] = round(rate, 2)
    out["r101_c4_images_per_s"] = max(v for k, v in out.items() if k.startswith("r101_c4_images_per_s_bs"))
    return out


def run_selection_bench(*, images: int = 24, seed: int = 7, proposals: int = 300, classes: int = 1600,
                        repeats: int = 5) -> dict[str, Any]:
    """Caffe vs refined selection: how often the kept sets agree on the tiny detector's held-out scenes
    (the issue measured 7 of 24 demo images), and the time of `caffe_select` at the VG size
    (300 proposals x 1600 classes) on CPU."""
    import torch

    from laitkit.extractors.regions import RegionExtractor, RegionsConfig, caffe_select

    torch.set_num_threads(1)
    imgs = _images(images, seed)
    caffe = RegionExtractor(RegionsConfig(config="tiny", device="cpu", selection="caffe", box_mode="proposal"))
    refined = RegionExtractor(RegionsConfig(config="tiny", device="cpu", selection="refined", box_mode="proposal"))
    same_set = same_order = 0
    for a, b in zip(caffe.extract(imgs), refined.extract(imgs), strict=True):
        if isinstance(a, str) or isinstance(b, str):
            raise RuntimeError(f"bench image failed: {a if isinstance(a, str) else b}")
        ka = [tuple(np.round(x, 2)) for x in a.boxes]
        kb = [tuple(np.round(x, 2)) for x in b.boxes]
        same_set += set(ka) == set(kb)
        same_order += ka == kb
    rng = np.random.default_rng(seed)
    c = rng.uniform(50, 550, (proposals, 2))
    wh = rng.uniform(20, 200, (proposals, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    logits = rng.normal(0, 3, (proposals, classes + 1))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p = (p / p.sum(1, keepdims=True))[:, 1:].astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(repeats):
        caffe_select(boxes, p, conf_thresh=0.2, nms_thresh=0.3, min_boxes=10, max_boxes=100)
    ms = (time.perf_counter() - t0) / repeats * 1000
    _say(f"caffe vs refined: same kept set on {same_set}/{images}, same order {same_order}; select {ms:.1f} ms")
    return {"images": images, "caffe_refined_same_set": same_set, "caffe_refined_same_order": same_order,
            "caffe_select_ms_300x1600_cpu": round(ms, 2), "detector": caffe.detector}
