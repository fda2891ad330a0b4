"""`generate()`: plan, render and write one synthetic website with its ground truth.

Why one orchestrator: the truth table, the served files, the faults and the WARC must describe the
same site, so they are produced in one pass over the plan. Everything random comes from numpy
Generators seeded by (seed, purpose, page, slot), never from the clock or global state, so the same
seed and base URL give byte-identical outputs, and a change to one page does not reshuffle others.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from laitkit.datasets.synth import DEFAULT_BASE_URL, graphics
from laitkit.datasets.synth.captions import describe
from laitkit.datasets.synth.faults import Fault, dump_faults
from laitkit.datasets.synth.noise import EXPECTED, PagePlan, Slot, plan_site
from laitkit.datasets.synth.outputs import TruthRow, summary, write_tables
from laitkit.datasets.synth.pages import (
    AD_TEXTS,
    AUTHORS,
    SITE_CSS,
    SOCIAL,
    MainImage,
    PageDoc,
    Related,
    decoy_urls,
    intro,
    page_path,
    page_title,
    paragraph,
    render_index,
    render_page,
)
from laitkit.datasets.synth.scenes import Scene, plan_scene, render_scene
from laitkit.datasets.synth.texts import assign_texts
from laitkit.datasets.synth.warc import site_responses, write_warc

SITE_NAME = "Shapes Daily"
MIN_PHASH_DISTANCE = 12  # between any two distinct rendered scenes (on a 4x-reduced proxy)
_IMAGE_DIRS = ("/img/", "/media/uploads/", "/assets/photos/")
_BASE_HREFS = ("/", "/p/", "/media/", "/img/")
_SCENE_KINDS = {
    "clean",
    "robots_noai",
    "nsfw_caption",
    "stock_caption",
    "shuffled_caption",
    "non_english",
    "useless_alt",
    "no_alt",
    "too_small",
    "bad_aspect",
}
# Kinds whose image may be written with srcset / <picture> markup (a plain file we can downscale).
_RICH_MARKUP_KINDS = {
    "clean",
    "robots_noai",
    "nsfw_caption",
    "stock_caption",
    "shuffled_caption",
    "non_english",
    "near_duplicate",
    "unnatural_logo",
    "unnatural_chart",
    "unnatural_text",
}
_HTTP_FAULTS = {"http_404": 404, "http_500": 500}


@dataclass
class _Original:
    url: str
    data: bytes
    image: Image.Image
    scene: Scene
    image_id: str


@dataclass
class _Candidate:
    image: MainImage
    caption: str
    source: str
    image_id: str


_DCT = np.cos(np.pi * np.arange(32)[:, None] * (2 * np.arange(32)[None, :] + 1) / 64)


def _phash(img: Image.Image) -> int:
    """64-bit pHash as `imagehash.phash` computes it (DCT-II of a 32x32 grey thumbnail, low 8x8
    against their median), on a 4x-reduced copy for speed, without importing scipy."""
    small = img.reduce(4) if min(img.size) >= 128 else img
    px = np.asarray(small.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ px @ _DCT.T)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


class _SiteBuilder:
    """Holds the state of one generation: files written, faults, objects, hashes, originals."""

    def __init__(self, out: Path, pages: int, seed: int, base_url: str) -> None:
        self.out, self.site = out, out / "site"
        self.pages, self.seed, self.base_url = pages, seed, base_url.rstrip("/")
        self.faults: dict[str, Fault] = {}
        self.objects: dict[str, dict] = {}
        self.hashes: list[int] = []
        self.captions: set[str] = set()
        self.originals: dict[tuple[int, int], _Original] = {}
        self.thumbs: dict[int, Image.Image] = {}
        self.bomb: bytes | None = None
        # What a naive alt-text crawler lists for a main image whose truth caption is "".
        self.raw_alt: dict[tuple[str, str], str] = {}

    def rng(self, *parts: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *parts])

    def absolute(self, path: str) -> str:
        return self.base_url + path

    def write(self, path: str, data: bytes) -> None:
        file = self.site / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)

    # --- images ---------------------------------------------------------------------------------

    def render_unique(self, page: int, pos: int, w: int, h: int) -> tuple[Scene, Image.Image]:
        """A scene whose perceptual hash is far from every scene rendered so far."""
        for attempt in range(25):
            rng = self.rng(4, page, pos, attempt)
            scene = plan_scene(rng, w, h)
            img = render_scene(scene, rng)
            hv = _phash(img)
            if all((hv ^ o).bit_count() >= MIN_PHASH_DISTANCE for o in self.hashes):
                break
        self.hashes.append(hv)
        return scene, img

    def add_objects(self, image_id: str, scene: Scene | None, size: tuple[int, int]) -> None:
        objs = scene.objects if scene is not None else []
        rels = scene.relations if scene is not None else []
        self.objects[image_id] = {
            "image_id": image_id,
            "width": size[0],
            "height": size[1],
            "boxes": [[float(np.float32(v)) for v in o.box] for o in objs],
            "labels": [o.label for o in objs],
            "attributes": [o.attributes for o in objs],
            "relations": [{"subject": r.subject, "predicate": r.predicate, "object": r.object} for r in rels],
        }

    def unique_caption(self, scene: Scene, rng: np.random.Generator, tag: str) -> str:
        """A caption of `scene` that no other image carries (so dup_caption only fires on purpose)."""
        for _ in range(30):
            text = describe(scene, rng)
            if text not in self.captions:
                break
        else:
            text = f"{text.rstrip('.')} (no. {tag})"
        self.captions.add(text)
        return text

    def small_variant(self, m: MainImage, img: Image.Image, fmt: str) -> None:
        small = img.resize(
            (max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.BILINEAR, reducing_gap=2.0
        )
        stem, ext = m.url.rsplit(".", 1)
        m.small_url, m.small_width = f"{stem}-small.{ext}", small.width
        self.write(m.small_url, graphics.encode(small, fmt))

    # --- one main-image slot --------------------------------------------------------------------

    def build_slot(self, slot: Slot, image_dir: str) -> _Candidate:
        page, pos, noise = slot.page, slot.pos, slot.noise
        rng = self.rng(3, page, pos)
        tag = f"{page:04d}-{pos + 1}"
        m = MainImage(url=f"{image_dir}{tag}.jpg")
        image_id, img, scene, fmt = "", None, None, "JPEG"
        caption = ""  # only graphics set it here: their caption does not come from a scene

        if noise in _SCENE_KINDS:
            if noise == "too_small":
                w, h = (int(v) for v in rng.integers(180, 291, size=2))
            elif noise == "bad_aspect":
                long, short = int(rng.integers(1800, 2401)), int(rng.integers(300, 361))
                w, h = (long, short) if rng.random() < 0.7 else (short, long)
            else:
                w, h = (int(v) for v in rng.integers(320, 641, size=2))
            scene, img = self.render_unique(page, pos, w, h)
            image_id = tag
            data = graphics.encode(img, "JPEG")
            self.write(m.url, data)
            self.add_objects(image_id, scene, img.size)
            if noise == "clean":
                self.originals[(page, pos)] = _Original(m.url, data, img, scene, image_id)
        elif noise in ("exact_duplicate", "same_url", "near_duplicate"):
            assert slot.original is not None
            orig = self.originals[slot.original]
            scene = orig.scene
            if noise == "exact_duplicate":
                self.write(m.url, orig.data)
                image_id = orig.image_id
            elif noise == "same_url":
                m.url, image_id = orig.url, orig.image_id
            else:
                # Resized (never below 300 px, which would make it too_small first) and re-encoded.
                lo = max(0.6, 305 / min(orig.image.size))
                f = float(rng.uniform(lo, max(lo, 0.9)) if rng.random() < 0.5 else rng.uniform(1.1, 1.4))
                size = (round(orig.image.width * f), round(orig.image.height * f))
                img = orig.image.resize(size, Image.Resampling.LANCZOS)
                scene = orig.scene.scaled(img.width, img.height)
                image_id = tag
                self.write(m.url, graphics.encode(img, "JPEG", quality=int(rng.integers(55, 75))))
                self.add_objects(image_id, scene, img.size)
                self.hashes.append(_phash(img))
        elif noise.startswith("unnatural_"):
            fmt = "PNG"
            m.url, m.mime = f"{image_dir}{tag}.png", "image/png"
            if noise == "unnatural_logo":
                brand = str(rng.choice(["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay"]))
                img = graphics.logo_graphic(rng, brand)
                caption = f"The {brand} logo"
            elif noise == "unnatural_chart":
                kind = "bar" if rng.random() < 0.5 else "pie"
                img = graphics.chart_graphic(rng, kind)
                caption = f"A {kind} chart of our results for week {page}"
            else:
                img = graphics.text_graphic(rng)
                caption = f"Our shipping and returns policy, page {page}"
            image_id = tag
            self.write(m.url, graphics.encode(img, "PNG"))
            self.add_objects(image_id, None, img.size)
        else:
            # Broken responses: the scene exists only as a caption; nothing decodable is served.
            w, h = (int(v) for v in rng.integers(320, 641, size=2))
            scene = plan_scene(rng, w, h)
            if noise in _HTTP_FAULTS:
                self.faults[m.url] = Fault(noise, status=_HTTP_FAULTS[noise])
            elif noise == "timeout":
                self.faults[m.url] = Fault(noise, hang=True)
            elif noise == "redirect_loop":
                if rng.random() < 0.5:
                    self.faults[m.url] = Fault(noise, status=302, location=m.url)
                else:
                    other = f"{image_dir}{tag}-r.jpg"
                    self.faults[m.url] = Fault(noise, status=302, location=other)
                    self.faults[other] = Fault(noise, status=302, location=m.url)
            elif noise == "truncated_jpeg":
                data = graphics.encode(render_scene(scene, rng), "JPEG")
                self.write(m.url, graphics.truncate(data, float(rng.uniform(0.35, 0.7))))
                self.faults[m.url] = Fault(noise)
            elif noise == "wrong_content_type":
                self.write(m.url, graphics.html_error_body("Image not available"))
                self.faults[m.url] = Fault(noise, content_type="text/html; charset=utf-8")
            elif noise == "decompression_bomb":
                m.url, m.mime = f"{image_dir}{tag}.png", "image/png"
                self.bomb = self.bomb or graphics.decompression_bomb()
                self.write(m.url, self.bomb)
                self.faults[m.url] = Fault(noise)
            else:
                raise ValueError(f"unknown noise kind {noise!r}")

        if img is not None and noise in ("clean", "robots_noai", "near_duplicate") and page not in self.thumbs:
            self.thumbs[page] = img

        caption, source = assign_texts(
            m, slot, scene, rng, lambda sc, suffix: self.unique_caption(sc, rng, tag + suffix), caption
        )
        if not m.gallery and not m.paragraph and rng.random() < 0.7:
            m.paragraph = paragraph(rng)

        # --- markup ---
        if noise in _RICH_MARKUP_KINDS and img is not None:
            m.markup = str(
                rng.choice(["plain", "data-src", "srcset-w", "srcset-x", "picture"], p=[0.4, 0.2, 0.15, 0.1, 0.15])
            )
        else:
            m.markup = "plain" if rng.random() < 0.75 else "data-src"
        if img is not None:
            m.width, m.height = img.size
            m.size_attrs = m.markup == "plain" and min(img.size) >= 300 and rng.random() < 0.5
            if m.markup in ("srcset-w", "srcset-x", "picture"):
                self.small_variant(m, img, fmt)
        return _Candidate(m, caption, source, image_id)

    # --- one page -------------------------------------------------------------------------------

    def build_page(self, plan: PagePlan, titles: list[str]) -> tuple[PageDoc, list[TruthRow]]:
        page = plan.page
        rng = self.rng(2, page)
        image_dir = _IMAGE_DIRS[int(rng.integers(0, len(_IMAGE_DIRS)))]
        author = int(rng.integers(0, len(AUTHORS)))
        others = [p for p in range(1, self.pages + 1) if p != page]
        related = sorted(rng.choice(others, size=min(3, len(others)), replace=False).tolist()) if others else []
        doc = PageDoc(
            page=page,
            site_name=SITE_NAME,
            title=titles[page - 1],
            intro=intro(rng),
            author=AUTHORS[author],
            avatar_url=f"/static/avatars/{author}.jpg",
            ad_url=f"/ads/banner-{int(rng.integers(0, len(AD_TEXTS)))}.png",
            pixel_url=f"/px/t.gif?p={page:04d}",
            base_href=str(rng.choice(_BASE_HREFS)) if rng.random() < 0.25 else "",
            related=[Related(page_path(p), f"/thumbs/{p:04d}.jpg", titles[p - 1]) for p in related],
        )
        cands = [self.build_slot(s, image_dir) for s in plan.slots]
        doc.mains = [c.image for c in cands]
        # og:image only for a clean first figure: og:title is English text a crawler may fall back on,
        # which must not rescue a non-English or caption-less image.
        first = next(((c, s) for c, s in zip(cands, plan.slots, strict=True) if not c.image.gallery), None)
        if first is not None and first[1].noise in ("clean", "robots_noai") and rng.random() < 0.3:
            doc.og_image = first[0].image.url
        if plan.noai:
            self.faults[doc.path] = Fault("robots_noai", headers={"X-Robots-Tag": plan.noai})
            for c in cands:
                self.faults[c.image.url] = Fault("robots_noai", headers={"X-Robots-Tag": plan.noai})

        page_url = self.absolute(doc.path)

        def decoy_rows(kinds: list[tuple[str, str]]) -> list[TruthRow]:
            noise = "robots_noai" if plan.noai else None
            return [
                TruthRow(page_url, self.absolute(u), "", str(EXPECTED[noise or k]), noise or k, "", False)
                for k, u in kinds
            ]

        def main_row(c: _Candidate, slot: Slot) -> TruthRow:
            self.raw_alt[(page_url, self.absolute(c.image.url))] = c.image.alt or ""
            return TruthRow(
                page_url,
                self.absolute(c.image.url),
                c.caption,
                str(EXPECTED[slot.noise]),
                slot.noise,
                c.image_id,
                True,
                c.source,
                c.image.markup,
            )

        decoys = decoy_urls(doc)
        pairs = list(zip(cands, plan.slots, strict=True))
        rows = decoy_rows(decoys[:2])  # header logo and byline avatar come before the article body
        rows += [main_row(c, s) for c, s in pairs if not c.image.gallery]
        rows += [main_row(c, s) for c, s in pairs if c.image.gallery]
        rows += decoy_rows(decoys[2:])
        return doc, rows

    # --- whole site -----------------------------------------------------------------------------

    def write_static(self) -> None:
        rng = self.rng(6)
        self.write("/static/logo.png", graphics.encode(graphics.site_logo(SITE_NAME), "PNG"))
        for name, letter, colour in SOCIAL:
            self.write(f"/static/social/{name}.png", graphics.encode(graphics.social_icon(letter, colour), "PNG"))
        self.write("/static/placeholder.gif", graphics.encode(graphics.pixel(230), "GIF"))
        self.write("/px/t.gif", graphics.encode(graphics.pixel(255), "GIF"))
        for i, text in enumerate(AD_TEXTS):
            self.write(f"/ads/banner-{i}.png", graphics.encode(graphics.ad_banner(rng, text), "PNG"))
        for i in range(len(AUTHORS)):
            self.write(f"/static/avatars/{i}.jpg", graphics.encode(graphics.avatar(rng), "JPEG"))
        self.write("/static/site.css", SITE_CSS.encode())
        self.write("/robots.txt", b"User-agent: *\nAllow: /\n")

    def write_thumbs(self) -> None:
        for page in range(1, self.pages + 1):
            img = self.thumbs.get(page)
            if img is None:
                img = render_scene(plan_scene(self.rng(7, page), 150, 100), self.rng(7, page))
            thumb = img.resize((150, 100), Image.Resampling.BILINEAR, reducing_gap=2.0)
            self.write(f"/thumbs/{page:04d}.jpg", graphics.encode(thumb, "JPEG", quality=80))


def generate(out_dir: Path, pages: int, seed: int, base_url: str = DEFAULT_BASE_URL) -> dict:
    """Write a synthetic website and its truth into `out_dir`; return the `synth.json` content.

    Outputs: `site/` (served files), `pages.warc.gz`, `urls.parquet`, `truth.parquet`,
    `objects.parquet`, `faults.json`, `synth.json`. `out_dir` must be empty, absent, or a previous
    synth output (which is replaced). Same (pages, seed, base_url) -> byte-identical files.
    """
    out_dir = Path(out_dir)
    if pages < 1:
        raise ValueError(f"pages must be >= 1, got {pages}")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    _prepare(out_dir)
    # Atomic: build in a hidden sibling and swap it in at the end, so a kill midway leaves the
    # target as it was (absent, empty or the previous output), never a half-written site.
    final, out_dir = out_dir, out_dir.parent / f".{out_dir.name}.synth-tmp-{os.getpid()}"
    shutil.rmtree(out_dir, ignore_errors=True)
    (out_dir / "site").mkdir(parents=True)
    info = _build(out_dir, pages, seed, base_url)
    _swap_in(out_dir, final)
    return info


def _build(out_dir: Path, pages: int, seed: int, base_url: str) -> dict:
    b = _SiteBuilder(out_dir, pages, seed, base_url)
    plans = plan_site(pages, b.rng(1))
    title_rng = b.rng(8)
    titles = [f"{page_title(title_rng)} ({p})" for p in range(1, pages + 1)]

    docs: list[PageDoc] = []
    truth: list[TruthRow] = []
    for plan in plans:
        doc, rows = b.build_page(plan, titles)
        docs.append(doc)
        truth.extend(rows)
        b.write(doc.path, render_page(doc, b.rng(5, plan.page)).encode())
    b.write("/index.html", render_index(SITE_NAME, docs).encode())
    b.write_static()
    b.write_thumbs()
    dump_faults(b.faults, out_dir / "faults.json")

    write_tables(out_dir, truth, b.raw_alt, b.objects)
    # The WARC holds what a crawl from the index fetches: index, then each page and its images.
    images: dict[str, list[str]] = {}
    for r in truth:
        images.setdefault(r.page_url, []).append(r.img_url[len(b.base_url) :])
    paths = ["/index.html"]
    for doc in docs:
        paths += [doc.path, *images.get(b.absolute(doc.path), [])]
    n_warc = write_warc(
        out_dir / "pages.warc.gz", site_responses(b.site, b.faults, paths, b.base_url), seed, b.base_url
    )
    info = summary(truth, seed=seed, pages=pages, base_url=b.base_url, images=len(b.objects), warc_records=n_warc)
    (out_dir / "synth.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def _prepare(out_dir: Path) -> None:
    """Refuse a target that holds anything but an earlier synth output; drop dead staging folders."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file, not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "synth.json").exists():
        raise FileExistsError(f"{out_dir} is not empty and holds no synth.json; refusing to overwrite it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.synth-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            shutil.rmtree(stale, ignore_errors=True)  # staging of a killed generation


def _swap_in(staging: Path, final: Path) -> None:
    """Replace `final` (absent, empty, or an earlier synth output) by the finished `staging`."""
    old = final.parent / f".{final.name}.synth-old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
