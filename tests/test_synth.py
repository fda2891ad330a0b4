"""Tests of the synthetic web's files: determinism, gold scenes, captions, noise labels, HTML, WARC.

One 40-page site is generated per module (about 2 s) and inspected from many angles; the
determinism tests use small separate sites so they stay cheap.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import numpy as np
import pyarrow.parquet as pq
import pytest
from lxml import html as lxml_html
from PIL import Image
from warcio.archiveiterator import ArchiveIterator

from laitkit.datasets.schema import Reason
from laitkit.datasets.synth import DEFAULT_BASE_URL, generate
from laitkit.datasets.synth.builder import _phash
from laitkit.datasets.synth.captions import describe
from laitkit.datasets.synth.faults import load_faults
from laitkit.datasets.synth.noise import DECOY_KINDS, EXPECTED, MAIN_KINDS, STOCK_MIN_USES, plan_site
from laitkit.datasets.synth.scenes import CLASSES, COLOURS, plan_scene, relation_holds
from laitkit.jobs import cli

PAGES = 40
SEED = 11


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "web"
    generate(out, pages=PAGES, seed=SEED)
    return out


@pytest.fixture(scope="module")
def truth(site: Path) -> list[dict]:
    return pq.read_table(site / "truth.parquet").to_pylist()


@pytest.fixture(scope="module")
def objects(site: Path) -> dict[str, dict]:
    return {r["image_id"]: r for r in pq.read_table(site / "objects.parquet").to_pylist()}


def _file(site: Path, url: str) -> Path:
    return site / "site" / urlsplit(url).path.lstrip("/")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- determinism -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", pages=10, seed=5)
    generate(tmp_path / "b", pages=10, seed=5)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert {"pages.warc.gz", "urls.parquet", "truth.parquet", "objects.parquet", "faults.json", "synth.json"} <= set(a)
    differing = [k for k in a if a[k] != b[k]]
    assert differing == []


def test_different_seed_or_base_url_changes_output(tmp_path: Path) -> None:
    generate(tmp_path / "a", pages=10, seed=5)
    generate(tmp_path / "c", pages=10, seed=6)
    generate(tmp_path / "d", pages=10, seed=5, base_url="http://127.0.0.1:9999")
    a, c, d = _tree(tmp_path / "a"), _tree(tmp_path / "c"), _tree(tmp_path / "d")
    assert a["truth.parquet"] != c["truth.parquet"]
    assert a["site/p/0001.html"] != c["site/p/0001.html"]
    # The base URL only enters the absolute URLs of the truth, the URL list and the WARC ...
    assert a["truth.parquet"] != d["truth.parquet"] and a["pages.warc.gz"] != d["pages.warc.gz"]
    # ... never the served site, which uses relative URLs and so works on any host.
    assert {k: v for k, v in a.items() if k.startswith("site/")} == {
        k: v for k, v in d.items() if k.startswith("site/")
    }


def test_regenerating_into_a_previous_output_replaces_it(tmp_path: Path) -> None:
    generate(tmp_path / "a", pages=12, seed=1)
    generate(tmp_path / "a", pages=4, seed=1)
    assert not (tmp_path / "a" / "site" / "p" / "0012.html").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate(tmp_path / "other", pages=2, seed=1)


# --- scenes and captions ---------------------------------------------------------------------------


def test_scenes_cover_classes_and_colours(objects: dict[str, dict]) -> None:
    labels = Counter(lab for o in objects.values() for lab in o["labels"])
    colours = Counter(a[0] for o in objects.values() for a in o["attributes"])
    sizes = {a[1] for o in objects.values() for a in o["attributes"]}
    assert len(labels) >= 8 and set(labels) <= set(CLASSES)
    assert len(colours) >= 6 and set(colours) <= set(COLOURS)
    assert sizes == {"small", "large"}
    predicates = {r["predicate"] for o in objects.values() for r in o["relations"]}
    assert {"left of", "right of", "above", "below", "next to"} <= predicates


def test_gold_boxes_and_relations_hold(objects: dict[str, dict]) -> None:
    n_rel = 0
    for o in objects.values():
        assert len(o["boxes"]) == len(o["labels"]) == len(o["attributes"])
        for x0, y0, x1, y1 in o["boxes"]:
            assert 0 <= x0 < x1 <= o["width"] and 0 <= y0 < y1 <= o["height"]
        for r in o["relations"]:
            assert relation_holds(o["boxes"][r["subject"]], o["boxes"][r["object"]], r["predicate"]), (o, r)
            n_rel += 1
    assert n_rel > 20


def test_relation_rule_rejects_false_relations() -> None:
    a, b = (10, 10, 50, 50), (100, 10, 140, 50)
    assert relation_holds(a, b, "left of") and relation_holds(b, a, "right of")
    assert not relation_holds(b, a, "left of") and not relation_holds(a, b, "above")


def test_rendered_images_match_gold_size_and_look_photographic(site: Path, truth: list[dict], objects: dict) -> None:
    clean = [r for r in truth if r["noise"] == "clean"]
    for r in clean[:12]:
        img = Image.open(_file(site, r["img_url"]))
        o = objects[r["image_id"]]
        assert img.size == (o["width"], o["height"])
        assert 320 <= min(img.size) and max(img.size) <= 640
        arr = np.asarray(img.convert("RGB"))
        # Photo-like: many distinct colours and no large perfectly flat area.
        packed = (arr[..., 0].astype(np.int32) << 16) | (arr[..., 1].astype(np.int32) << 8) | arr[..., 2]
        assert len(np.unique(packed)) > 2000
        x0, y0, x1, y1 = (int(v) for v in o["boxes"][0])
        box = arr[y0:y1, x0:x1].astype(int)
        assert box.std() > 2


_CAPTION_WORDS = re.compile(r"[a-z]+")


def test_clean_captions_are_english_and_true_of_their_image(truth: list[dict], objects: dict[str, dict]) -> None:
    plural = {c + ("es" if c.endswith("s") else "s"): c for c in CLASSES}
    checked = 0
    for r in truth:
        if r["expected"] != Reason.KEEP:
            continue
        words = _CAPTION_WORDS.findall(r["caption"].lower())
        assert words and r["caption"].isascii()
        o = objects[r["image_id"]]
        named = {plural.get(w, w) for w in words} & set(CLASSES)
        assert named and named <= set(o["labels"]), (r["caption"], o["labels"])
        assert set(words) & set(COLOURS) <= {a[0] for a in o["attributes"]}, (r["caption"], o["attributes"])
        checked += 1
    assert checked >= 30


def test_shuffled_captions_name_nothing_in_the_image(truth: list[dict], objects: dict[str, dict]) -> None:
    rows = [r for r in truth if r["noise"] == "shuffled_caption"]
    assert rows
    for r in rows:
        words = set(_CAPTION_WORDS.findall(r["caption"].lower()))
        assert words & set(CLASSES)
        assert not (words & set(objects[r["image_id"]]["labels"]))


def test_captions_count_and_pluralise() -> None:
    seen = set()
    for seed in range(300):
        rng = np.random.default_rng(seed)
        text = describe(plan_scene(rng, 600, 600, n_objects=4), rng).lower()
        seen.update(w for w in ("two", "three", "circles", "squares", "triangles", "stars") if w in text.split())
    assert "two" in seen and len(seen - {"two", "three"}) >= 2


# --- noise labels ----------------------------------------------------------------------------------


def test_every_noise_kind_present_with_its_reason(truth: list[dict]) -> None:
    noise = Counter(r["noise"] for r in truth)
    assert set(MAIN_KINDS) <= set(noise), set(MAIN_KINDS) - set(noise)
    assert set(DECOY_KINDS) <= set(noise)
    reasons = {str(r) for r in Reason}
    for r in truth:
        assert r["expected"] in reasons
        assert r["expected"] == EXPECTED[r["noise"]]
        if r["is_main"]:
            assert r["noise"] in MAIN_KINDS
        else:  # decoys, which on an opted-out page are labelled robots_noai like everything there
            assert r["noise"] in DECOY_KINDS or r["noise"] == "robots_noai"


def test_clean_fraction_is_realistic(truth: list[dict]) -> None:
    main = [r for r in truth if r["is_main"]]
    kept = sum(r["expected"] == Reason.KEEP for r in main) / len(main)
    assert 0.45 <= kept <= 0.55


def test_plan_is_balanced_for_other_sizes() -> None:
    for pages in (30, 120):
        slots = [s for p in plan_site(pages, np.random.default_rng(pages)) for s in p.slots]
        noise = Counter(s.noise for s in slots)
        assert 0.45 <= noise["clean"] / len(slots) <= 0.55
        assert set(MAIN_KINDS) <= set(noise)


def test_truth_rows_reference_served_files(site: Path, truth: list[dict], objects: dict) -> None:
    faults = load_faults(site / "faults.json")
    for r in truth:
        path = urlsplit(r["img_url"]).path
        assert _file(site, r["img_url"]).is_file() or faults[path].status != 200 or faults[path].hang, r
        if r["image_id"]:
            assert r["image_id"] in objects
            with Image.open(_file(site, r["img_url"])) as img:
                assert img.size == (objects[r["image_id"]]["width"], objects[r["image_id"]]["height"])
        if r["expected"] in (Reason.NOT_ENGLISH, Reason.USELESS_CAPTION, Reason.NO_CAPTION, Reason.DECOY):
            assert r["caption"] == ""
        elif r["is_main"]:
            assert r["caption"]


def test_size_and_aspect_noise(site: Path, truth: list[dict]) -> None:
    for r in truth:
        if r["noise"] not in ("too_small", "bad_aspect", "clean"):
            continue
        w, h = Image.open(_file(site, r["img_url"])).size
        if r["noise"] == "too_small":
            assert min(w, h) < 300 and max(w, h) / min(w, h) < 2
        elif r["noise"] == "bad_aspect":
            assert min(w, h) >= 300 and max(w, h) / min(w, h) > 5  # never also too small
        else:
            assert min(w, h) >= 300 and max(w, h) / min(w, h) <= 2


def test_duplicates_follow_their_clean_original(site: Path, truth: list[dict]) -> None:
    main = [r for r in truth if r["is_main"]]
    first_by_sha: dict[str, dict] = {}
    first_by_url: dict[str, dict] = {}
    for r in main:
        path = _file(site, r["img_url"])
        sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        if r["noise"] == "exact_duplicate":
            orig = first_by_sha[sha]
            assert (
                orig["expected"] == Reason.KEEP and orig["img_url"] != r["img_url"] and orig["page_url"] < r["page_url"]
            )
        elif r["noise"] == "same_url":
            orig = first_by_url[r["img_url"]]
            assert orig["expected"] == Reason.KEEP and orig["page_url"] < r["page_url"]
        elif r["noise"] == "near_duplicate":
            assert sha not in first_by_sha
            img = Image.open(path)
            dists = sorted(
                ((_phash(img) ^ _phash(Image.open(_file(site, o["img_url"])))).bit_count(), o["page_url"])
                for o in first_by_url.values()
                if o["noise"] == "clean"
            )
            assert dists[0][0] <= 4 and dists[0][1] < r["page_url"]
        first_by_sha.setdefault(sha, r)
        first_by_url.setdefault(r["img_url"], r)
    # No accidental duplicates among kept images: distinct bytes and far-apart perceptual hashes.
    kept = [r for r in main if r["expected"] == Reason.KEEP]
    assert len({hashlib.sha256(_file(site, r["img_url"]).read_bytes()).digest() for r in kept}) == len(kept)
    hashes = [_phash(Image.open(_file(site, r["img_url"]))) for r in kept]
    assert min((a ^ b).bit_count() for i, a in enumerate(hashes) for b in hashes[:i]) >= 10


def test_caption_sharing(truth: list[dict]) -> None:
    main = [r for r in truth if r["is_main"] and r["caption"]]
    by_caption = defaultdict(set)
    for r in main:
        by_caption[r["caption"]].add(r["img_url"])
    for r in main:
        n = len(by_caption[r["caption"]])
        if r["noise"] == "stock_caption":
            assert n >= STOCK_MIN_USES
        else:
            assert n < STOCK_MIN_USES, r["caption"]
    kept = [r["caption"] for r in main if r["expected"] == Reason.KEEP]
    assert len(set(kept)) == len(kept)


_FOREIGN_WORDS = r"\b(un|une|de|des|le|la|les|der|die|das|ein|eine|einem|diese|man|und|mit|el|los|las|una|se|con|del)\b"


def test_nsfw_and_foreign_texts(site: Path, truth: list[dict]) -> None:
    urls = pq.read_table(site / "urls.parquet").to_pylist()
    listed = {(u["page_url"], u["url"]): u["caption"] for u in urls}
    for r in truth:
        if r["noise"] == "nsfw_caption":
            assert re.search(r"\b(nude|xxx|porn)\b", r["caption"])
        if r["noise"] == "non_english":
            raw = listed[(r["page_url"], r["img_url"])]
            assert re.search(_FOREIGN_WORDS, raw.lower()), raw
            assert not re.search(r"\b(the|and|of|with|is)\b", raw.lower()), raw
        if r["noise"] == "useless_alt":
            raw = listed[(r["page_url"], r["img_url"])]
            assert re.fullmatch(r"(IMG_\d+\.jpg|DSC\d+\.JPG|[Ii]mage|[Pp]hoto|picture|img|untitled)", raw), raw
        if r["expected"] == Reason.KEEP:
            assert not re.search(r"\b(nude|xxx|porn)\b", r["caption"].lower())


def test_url_list_matches_main_truth_rows(site: Path, truth: list[dict]) -> None:
    urls = pq.read_table(site / "urls.parquet")
    assert urls.column_names == ["url", "caption", "page_url"]
    main = [(r["url"], r["page_url"]) for r in urls.to_pylist()]
    assert main == [(r["img_url"], r["page_url"]) for r in truth if r["is_main"]]
    for u, t in zip(urls.to_pylist(), [r for r in truth if r["is_main"]], strict=True):
        if t["caption"]:
            assert u["caption"] == t["caption"]
    assert all(u.startswith(DEFAULT_BASE_URL + "/") for u, _ in main)


def test_synth_json_counts(site: Path, truth: list[dict]) -> None:
    info = json.loads((site / "synth.json").read_text())
    assert info["seed"] == SEED and info["pages"] == PAGES and info["base_url"] == DEFAULT_BASE_URL
    assert info["counts"] == dict(Counter(r["expected"] for r in truth))
    assert info["main_candidates"] == sum(r["is_main"] for r in truth)


# --- HTML ------------------------------------------------------------------------------------------


def _pages(site: Path) -> list[tuple[str, lxml_html.HtmlElement]]:
    files = sorted((site / "site" / "p").glob("*.html"))
    return [(f"{DEFAULT_BASE_URL}/p/{f.name}", lxml_html.fromstring(f.read_bytes())) for f in files]


def _largest(srcset: str) -> str:
    best = max(
        (c.strip().split() for c in srcset.split(",") if c.strip()),
        key=lambda parts: float(parts[1][:-1]) if len(parts) > 1 else 1.0,
    )
    return best[0]


def _main_image_urls(page_url: str, doc: lxml_html.HtmlElement) -> list[str]:
    """A reference mini-crawler: article images, data-src / largest srcset / <picture>, <base>-aware."""
    bases = doc.xpath("//base/@href")
    base = urljoin(page_url, bases[0]) if bases else page_url
    out = []
    for img in doc.xpath("//article//img[not(contains(@class, 'avatar'))]"):
        # libxml2's HTML parser does not know <source> is void, so <img> may end up inside it.
        pictures = img.xpath("ancestor::picture")
        if pictures:
            src = _largest(pictures[-1].xpath(".//source/@srcset")[0])
        elif img.get("data-src"):
            src = img.get("data-src")
        elif img.get("srcset"):
            src = _largest(img.get("srcset"))
        else:
            src = img.get("src")
        out.append(urljoin(base, src))
    return out


def test_html_main_images_resolve_to_truth(site: Path, truth: list[dict]) -> None:
    expected = defaultdict(list)
    for r in truth:
        if r["is_main"]:
            expected[r["page_url"]].append(r["img_url"])
    pages = _pages(site)
    assert len(pages) == PAGES
    for page_url, doc in pages:
        assert _main_image_urls(page_url, doc) == expected[page_url], page_url


def test_html_has_decoys_and_lazy_loading_variants(site: Path) -> None:
    features: Counter[str] = Counter()
    for _, doc in _pages(site):
        assert doc.xpath("//header//img[@class='site-logo']")
        assert doc.xpath("//img[@class='avatar']")
        assert doc.xpath("//img[@width='1' and @height='1']")
        assert doc.xpath("//aside//img[@width='728' and @height='90']")
        assert doc.xpath("//aside[@class='related']//img[@width='150']")
        assert len(doc.xpath("//footer//img[@class='social-icon']")) == 3
        features["base"] += bool(doc.xpath("//base[@href]"))
        features["og"] += bool(doc.xpath("//meta[@property='og:image']"))
        features["data-src"] += bool(doc.xpath("//img[@data-src]"))
        features["srcset-w"] += bool(doc.xpath("//img[contains(@srcset, 'w,')]"))
        features["srcset-x"] += bool(doc.xpath("//img[contains(@srcset, ' 2x')]"))
        features["picture"] += bool(doc.xpath("//picture/source[@srcset]"))
        features["figcaption"] += bool(doc.xpath("//figcaption"))
        features["relative"] += any(not s.startswith("/") for s in doc.xpath("//img/@src"))
        features["root-relative"] += any(s.startswith("/") for s in doc.xpath("//img/@src"))
        # No host anywhere: the site must work on whatever port it is served.
        for attr in doc.xpath("//@src | //@href | //@srcset | //@data-src | //meta/@content"):
            assert "://" not in attr and not attr.startswith("//"), attr
    for k in ("base", "og", "data-src", "srcset-w", "srcset-x", "picture", "figcaption", "relative", "root-relative"):
        assert 0 < features[k], k
    assert features["base"] < PAGES and features["og"] < PAGES


def test_gallery_images_have_no_text(site: Path, truth: list[dict]) -> None:
    docs = dict(_pages(site))
    rows = [r for r in truth if r["noise"] in ("useless_alt", "no_alt")]
    assert rows
    for r in rows:
        doc = docs[r["page_url"]]
        name = urlsplit(r["img_url"]).path.rsplit("/", 1)[1]
        imgs = [i for i in doc.xpath("//img") if (i.get("data-src") or i.get("src") or "").endswith(name)]
        assert len(imgs) == 1
        img = imgs[0]
        assert img.getparent().text_content().strip() == ""
        assert not img.get("title")
        assert (img.get("alt") is None) == (r["noise"] == "no_alt")


# --- faults and WARC -------------------------------------------------------------------------------


def test_noai_pages_and_their_images_carry_the_header(site: Path, truth: list[dict]) -> None:
    faults = load_faults(site / "faults.json")
    noai_pages = {r["page_url"] for r in truth if r["noise"] == "robots_noai"}
    assert noai_pages
    for r in truth:
        if r["page_url"] in noai_pages:
            assert r["expected"] == Reason.ROBOTS_NOAI
            assert "noai" in faults[urlsplit(r["page_url"]).path].headers["X-Robots-Tag"]
            if r["is_main"]:
                assert "noai" in faults[urlsplit(r["img_url"]).path].headers["X-Robots-Tag"]


def test_warc_holds_every_page_with_headers(site: Path, truth: list[dict]) -> None:
    info = json.loads((site / "synth.json").read_text())
    noai_pages = {r["page_url"] for r in truth if r["noise"] == "robots_noai"}
    pages, n, statuses = {}, 0, Counter()
    with (site / "pages.warc.gz").open("rb") as fh:
        for rec in ArchiveIterator(fh):
            n += 1
            assert rec.rec_type == "response"
            uri = rec.rec_headers.get_header("WARC-Target-URI")
            statuses[rec.http_headers.get_statuscode()] += 1
            body = rec.content_stream().read()
            if uri.endswith(".html") and "/p/" in uri:
                pages[uri] = (rec.http_headers.get_header("X-Robots-Tag"), body)
            if (
                rec.http_headers.get_header("Content-Type") == "image/jpeg"
                and rec.http_headers.get_statuscode() == "200"
            ):
                assert int(rec.http_headers.get_header("Content-Length")) == len(body)
    assert n == info["warc_records"]
    assert len(pages) == PAGES
    for uri, (tag, body) in pages.items():
        assert (tag is not None) == (uri in noai_pages)
        assert body == _file(site, uri).read_bytes()
    assert statuses["404"] and statuses["500"] and statuses["302"]


def test_decode_error_files_are_broken(site: Path, truth: list[dict]) -> None:
    for r in truth:
        if r["noise"] == "truncated_jpeg":
            with pytest.raises(OSError):
                Image.open(_file(site, r["img_url"])).load()
        elif r["noise"] == "decompression_bomb":
            data = _file(site, r["img_url"]).read_bytes()
            assert len(data) < 200_000
            with pytest.raises(Image.DecompressionBombError):
                Image.open(io.BytesIO(data))
        elif r["noise"] == "wrong_content_type":
            assert _file(site, r["img_url"]).read_bytes().startswith(b"<!DOCTYPE html>")


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_generates_and_reports_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert cli.main(["synth", "--out", str(out), "--pages", "3", "--seed", "2"]) == 0
    assert json.loads((out / "synth.json").read_text())["pages"] == 3
    capsys.readouterr()
    assert cli.main(["synth", "--pages", "3"]) == 2
    assert "--out" in capsys.readouterr().err
    assert cli.main(["synth", "serve", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no site/ folder" in err


def test_cli_help_explains_both_actions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["synth", "--help"])
    text = capsys.readouterr().out
    assert "serve" in text and "--out" in text and "--timeout-delay" in text
