"""The Ray Data regions stage, called directly on a numpy batch (no Ray cluster needed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from laitkit.datasets.codec import from_row, to_row
from laitkit.datasets.schema import Reason, Sample
from laitkit.extractors.regions import RegionsConfig
from laitkit.extractors.regions_synth import render_gold
from laitkit.pipeline.regions_stage import RegionsStage, regions_map_kwargs

torch.set_num_threads(1)


def _batch(samples: list[Sample]) -> dict[str, np.ndarray]:
    rows = [to_row(s) for s in samples]
    out = {}
    for col in ("key", "status", "jpg", "txt", "json", "npz"):
        arr = np.empty(len(rows), dtype=object)
        arr[:] = [r[col] for r in rows]
        out[col] = arr
    return out


def test_stage_fills_kept_rejects_bad_and_passes_others_through() -> None:
    g = render_gold(np.random.default_rng(5))
    buf = io.BytesIO()
    Image.fromarray(g.rgb).save(buf, format="JPEG")
    good = Sample(key="good", url="http://x/good.jpg", caption="a red circle", image=buf.getvalue())
    corrupt = Sample(key="corrupt", url="http://x/c.jpg", image=b"\xff\xd8\xff garbage")
    rejected = Sample(key="rej", url="http://x/r.jpg", image=buf.getvalue())
    rejected.reject("lang", Reason.NOT_ENGLISH, "fr")
    tiny_buf = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tiny_buf, format="PNG")
    tiny = Sample(key="tiny", url="http://x/t.png", image=tiny_buf.getvalue())
    batch = _batch([good, corrupt, rejected, tiny])
    before = {k: v.copy() for k, v in batch.items()}
    stage = RegionsStage(RegionsConfig(config="random-tiny", device="cpu", min_boxes=4, max_boxes=4), num_threads=1)
    out = stage(batch)
    assert list(out["key"]) == ["good", "corrupt", "rej", "tiny"]
    assert list(out["status"]) == ["keep", "regions_error", "not_english", "too_small"]
    s3 = from_row({c: out[c][3] for c in ("jpg", "txt", "json", "npz")})
    assert s3.regions is None and s3.verdicts[-1].detail == "too_small: 1x1 image, shorter side below 32 px"
    s0 = from_row({c: out[c][0] for c in ("jpg", "txt", "json", "npz")})
    assert s0.regions is not None and s0.regions.num_boxes == 4 and s0.regions.features.dtype == np.float16
    assert s0.caption == "a red circle" and s0.image == good.image
    s1 = from_row({c: out[c][1] for c in ("jpg", "txt", "json", "npz")})
    assert s1.regions is None and s1.verdicts[-1].stage == "regions" and "decode_error" in s1.verdicts[-1].detail
    for col in ("jpg", "txt", "json", "npz", "status"):  # the rejected row is untouched, byte for byte
        assert out[col][2] == before[col][2]
        assert batch[col][0] == before[col][0]  # and the input batch was not mutated


@pytest.mark.parametrize("gpus", [0, 2])
def test_map_kwargs(gpus: int) -> None:
    cfg = RegionsConfig(config="random-tiny", batch_size=4)
    kw = regions_map_kwargs(cfg, gpus, num_cpus_available=3)
    assert kw["fn_constructor_kwargs"]["cfg"] is cfg
    assert kw["batch_format"] == "numpy" and kw["batch_size"] >= cfg.batch_size
    if gpus:
        assert kw["num_gpus"] == 1 and kw["compute"].min_size == kw["compute"].max_size == 2
    else:
        assert "num_gpus" not in kw and kw["num_cpus"] == 1 and kw["compute"].max_size == 3
        assert kw["fn_constructor_kwargs"]["num_threads"] == 1
    cpu_forced = regions_map_kwargs(RegionsConfig(device="cpu"), gpus, num_cpus_available=2)
    assert "num_gpus" not in cpu_forced
