"""Pluggable image classifiers: a TorchScript file or a callable replaces the default heuristics."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from laitkit.datasets.schema import Reason, Sample
from laitkit.pipeline.crawl import CrawlConfig, image_step
from laitkit.pipeline.crawl.image_filters import heuristic_unnatural, load_classifier


class Brightness(torch.nn.Module):
    """Mean brightness as the 'probability': a white image scores ~1, a black one ~0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean().reshape(1)


def _sample(key: str, rgb: tuple[int, int, int]) -> Sample:
    rng = np.random.default_rng(0)
    a = np.clip(np.array(rgb, dtype=np.float32) + rng.normal(0, 20, (400, 400, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=90)
    s = Sample(key=key, url=f"http://example.org/{key}.jpg")
    s.image, s.width, s.height, s.orig_width, s.orig_height = buf.getvalue(), 400, 400, 400, 400
    return s


def test_torchscript_nsfw_classifier_rejects_and_stores_its_score(tmp_path) -> None:
    path = tmp_path / "bright.pt"
    torch.jit.script(Brightness()).save(str(path))
    cfg = CrawlConfig(nsfw_image_classifier=str(path), max_nsfw_score=0.6)
    bright, dark = _sample("bright", (235, 235, 235)), _sample("dark", (30, 30, 30))
    image_step([bright, dark], cfg)
    assert bright.status == Reason.NSFW and "image classifier" in bright.verdicts[-1].detail
    assert bright.nsfw_score > 0.8 and dark.nsfw_score < 0.2
    assert dark.status == Reason.KEEP and not math.isnan(dark.unnatural_score)  # default heuristic still ran


def test_callable_unnatural_classifier_replaces_the_heuristic() -> None:
    spec = "laitkit.pipeline.crawl.image_filters:heuristic_unnatural"
    assert load_classifier(spec) is heuristic_unnatural
    s = _sample("grey", (128, 128, 128))
    image_step([s], CrawlConfig(unnatural_classifier=spec))
    assert spec in s.verdicts[-1].detail and 0.0 <= s.unnatural_score <= 1.0
    with pytest.raises(ValueError, match="module:function"):
        CrawlConfig(unnatural_classifier="not-a-spec")
    with pytest.raises(ValueError, match="no such TorchScript file"):
        CrawlConfig(nsfw_image_classifier="/nonexistent/model.pt")
    with pytest.raises(ValueError, match="cannot be imported"):
        load_classifier("laitkit.nope:fn")
