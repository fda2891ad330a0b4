"""`report.html` opened in a real browser (headless Chromium): the gallery's images load, the page
is not blank, and it shows what a reader needs (boxes drawn, rejection examples with their verdict
detail, the charts). The run folder is written with the real shard writer from hand-made samples,
so this test needs no pipeline run."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from laitkit.datasets.schema import Reason, Regions, Sample, SceneNode, TextAnnotation
from laitkit.datasets.shards import write_shard
from laitkit.pipeline.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _jpeg(seed: int, size: tuple[int, int] = (200, 150)) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(60, 200, 3)))
    d = ImageDraw.Draw(img)
    d.ellipse((30, 30, 110, 110), fill=(220, 40, 40))
    d.rectangle((120, 40, 180, 120), fill=(40, 40, 220))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


def _kept(i: int) -> Sample:
    s = Sample(key=f"k{i:03d}", url=f"http://127.0.0.1:9/img/{i}.jpg", page_url=f"http://127.0.0.1:9/p/{i}.html",
               caption="a red circle next to a blue square", caption_source="alt", image=_jpeg(i), width=200,
               height=150, relevance_score=0.5 + i / 100)  # fmt: skip
    s.regions = Regions(
        detector="test", image_h=150, image_w=200,
        boxes=np.array([[30, 30, 110, 110], [120, 40, 180, 120]], dtype=np.float32),
        features=np.zeros((2, 8), dtype=np.float16), obj_ids=np.array([0, 1]),
        obj_conf=np.array([0.9, 0.8], np.float32),
        attr_ids=np.array([0, -1]), attr_conf=np.array([0.7, 0.0], np.float32),
        obj_names=["circle", "square"], attr_names=["red", ""],
    )  # fmt: skip
    s.text = TextAnnotation(
        model="test", tokens=["a", "red", "circle", "next", "to", "a", "blue", "square"],
        upos=["DET", "ADJ", "NOUN", "ADV", "ADP", "DET", "ADJ", "NOUN"], tags=[""] * 8, lemmas=[""] * 8,
        graph=[SceneNode(kind="object", lemma="circle", tokens=(2,)), SceneNode(kind="attribute", lemma="red",
               tokens=(1,), subject=0), SceneNode(kind="object", lemma="square", tokens=(7,)),
               SceneNode(kind="relation", lemma="next to", tokens=(3, 4), subject=0, object=2)],
    )  # fmt: skip
    s.accept("test")
    return s


def _rejected(i: int, reason: Reason, detail: str) -> Sample:
    s = Sample(key=f"r{i:03d}", url=f"http://127.0.0.1:9/bad/{i}.jpg", page_url="http://127.0.0.1:9/p/1.html",
               caption="click here", image=_jpeg(100 + i) if reason == Reason.LOW_RELEVANCE else b"",
               relevance_score=0.1 if reason == Reason.LOW_RELEVANCE else float("nan"))  # fmt: skip
    s.reject("test", reason, detail)
    return s


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    write_shard(out / "shards", 0, [_kept(i) for i in range(5)], config_hash="t", feature_dim=8)
    rejected = [_rejected(0, Reason.LOW_RELEVANCE, "score 0.100 < threshold 0.400"),
                _rejected(1, Reason.USELESS_CAPTION, "boilerplate caption 'click here'"),
                _rejected(2, Reason.DOWNLOAD_ERROR, "HTTP 404")]  # fmt: skip
    write_shard(out / "rejected", 0, rejected, config_hash="t", feature_dim=8)
    (out / "config.json").write_text(json.dumps({"config_hash": "t", "pretrain": {"enabled": True, "steps": 50,
                                                                                 "batch_size": 8}}))  # fmt: skip
    (out / "run.json").write_text(json.dumps({"stage_seconds": {"crawl": 3.5, "dedup": 1.0, "featurise+shards": 9.0}}))
    (out / "pretrain").mkdir()
    (out / "pretrain" / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "mlm": 5.0 / s, "itm": 0.7 - s / 200}) + "\n" for s in range(1, 51)))  # fmt: skip
    write_report(out)
    return out


def test_report_html_holds_what_a_reader_needs(run_dir: Path) -> None:
    text = (run_dir / "report.html").read_text()
    assert text.count('class="gallery"') == 5
    assert "score 0.100 &lt; threshold 0.400" in text and "HTTP 404" in text  # verdict details, escaped
    assert "red → circle" in text and "circle —next to→ square" in text  # scene graph
    assert "red/ADJ" in text  # POS
    assert "tiny corpus: 5 kept samples" in text  # the warning instead of a silent loss curve
    assert "<polyline" in text and "after low_relevance" in text  # loss curves; funnel
    assert "src=\"http" not in text  # self-contained: nothing fetched from anywhere
    md = (run_dir / "report.md").read_text()
    assert "**warning:** tiny corpus" in md


_PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.querySelectorAll('img.gallery')];
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = 'PROBE ' + JSON.stringify(imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight]));
  document.body.appendChild(out);
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "chromium is missing: `make setup` installs the Debian package"
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", *args], capture_output=True, text=True, timeout=120)  # fmt: skip


def test_gallery_images_load_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text((run_dir / "report.html").read_text().replace("</body>", _PROBE + "</body>"))
    res = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    m = re.search(r"PROBE (\[.*?\])\s*<", res.stdout, re.S)
    assert m, res.stderr[-2000:]
    images = json.loads(m.group(1))
    assert len(images) == 5
    assert all(done and w > 0 and h > 0 for done, w, h in images), images


def test_screenshot_is_not_blank(run_dir: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1200,1600", "--hide-scrollbars", f"--screenshot={shot}",
              (run_dir / "report.html").as_uri())  # fmt: skip
    assert shot.exists()
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (1600, 1200)
    assert pixels.std() > 20  # text, charts and photos, not one flat colour
    assert (pixels < 100).mean() > 0.01  # dark pixels: text and drawn boxes rendered
