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


class TwoLogits(torch.nn.Module):
    """Two logits [not, yes] from brightness: the softmax's index 1 is the positive class."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = (x.mean() - 0.5) * 20.0
        return torch.stack([-b, b]).reshape(1, 2)


def test_torchscript_two_logit_unnatural_and_callable_nsfw_classifiers(tmp_path) -> None:
    path = tmp_path / "two.pt"
    torch.jit.script(TwoLogits()).save(str(path))
    bright, dark = _sample("bright", (235, 235, 235)), _sample("dark", (30, 30, 30))
    image_step([bright, dark], CrawlConfig(unnatural_classifier=str(path)))
    assert bright.status == Reason.UNNATURAL and str(path) in bright.verdicts[-1].detail
    assert bright.unnatural_score > 0.99 and dark.unnatural_score < 0.01  # softmax of the logits, stored
    assert dark.status == Reason.KEEP
    # a callable as the NSFW classifier (here the unnatural heuristic, ~0.15 on this noisy grey image):
    # its score is stored, and the threshold decides
    spec = "laitkit.pipeline.crawl.image_filters:heuristic_unnatural"
    expected = heuristic_unnatural(Image.open(io.BytesIO(_sample("g", (128, 128, 128)).image)).convert("RGB"))
    assert 0.05 < expected < 0.5
    for threshold, reason in ((expected / 2, Reason.NSFW), (min(1.0, expected * 2), Reason.KEEP)):
        grey = _sample("grey", (128, 128, 128))
        grey.nsfw_score = 0.0  # the caption keywords found nothing
        image_step([grey], CrawlConfig(nsfw_image_classifier=spec, max_nsfw_score=threshold, max_unnatural_score=1.0))
        assert grey.nsfw_score == pytest.approx(expected) and grey.status == reason, grey.verdicts
