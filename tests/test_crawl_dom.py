"""Crawl inputs and the DOM: readers (WARC, HTML files, URL lists), robots opt-outs, main images vs
decoys, lazy-loading and srcset variants, <base href> resolution, and the texts around each image."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from laitkit.datasets.schema import CaptionSource, Reason
from laitkit.pipeline.crawl import CrawlConfig, page_samples, readers
from laitkit.pipeline.crawl.html_images import (
    document_base,
    extract_images,
    parse_html,
    parse_srcset,
    surrounding_text,
)
from laitkit.pipeline.crawl.readers import Page
from laitkit.pipeline.crawl.robots import line_disallows, page_opt_out

PAGE_URL = "http://example.org/blog/post/1.html"
MEDIA = "http://example.org/blog/media/"

ARTICLE = """<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8">
<base href="../media/">
<meta property="og:image" content="photos/hero.jpg">
<meta property="og:description" content="A red kite above the dunes, shot at sunset">
<title>Kites</title>
</head><body>
<header class="site-header"><a href="/"><img class="site-logo" src="/static/logo.png" alt="Kite Blog"
 width="180" height="48"></a><nav><a href="/">Home</a></nav></header>
<main><article>
<h1>Kites on the beach</h1>
<div class="byline"><img class="avatar" src="/static/avatars/ann.jpg" alt="Ann" width="48" height="48"> By Ann</div>
<p>Intro paragraph about a windy day.</p>
<figure class="post-image">
  <img src="photos/hero.jpg" alt="A red kite flying high over sand dunes" title="Red kite" width="800" height="600">
  <figcaption>The red kite at dusk, seen from the dunes</figcaption>
</figure>
<p>We walked along the beach for hours before the wind picked up.</p>
<figure><img class="lazyload" src="/static/placeholder.gif" data-src="photos/lazy.jpg" alt="Two kites tangled
 in the wind"></figure>
<figure><img src="photos/small.jpg" srcset="photos/small.jpg 400w, photos/big.jpg 1600w, photos/mid.jpg 800w"
 sizes="100vw" alt="A kite surfer on the waves"></figure>
<figure><img src="x1.jpg" srcset="x1.jpg 1x, x2.jpg 2x" alt="A child holding a kite string"></figure>
<figure><picture><source type="image/webp" srcset="pic-large.webp 1200w, pic-small.webp 600w">
 <img src="pic-fallback.jpg" alt="Kites drying on a fence"></picture></figure>
<p>Last paragraph before the gallery, which must not caption the gallery photos.</p>
<section class="gallery"><div class="photo"><img src="//cdn.example.net/g/IMG_2041.jpg" alt="IMG_2041.jpg"></div>
<div class="photo"><img src="g/no-alt.jpg"></div></section>
<img data-lazy-src="lazy2.jpg" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<noscript><img src="photos/lazy.jpg"></noscript>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="only a data URI">
</article>
<aside class="related"><h2>Related</h2><ul><li><a href="/p/2.html"><img src="/posts/2/cover.jpg" alt="Other post"
 width="150" height="100"></a></li></ul></aside>
<aside class="ad"><a href="/ads/click"><img src="/promo/summer.png" alt="Advertisement" width="728"
 height="90"></a></aside>
</main>
<footer><ul class="social"><li><img class="social-icon" src="/static/social/twitter.png" width="32" height="32"></li>
</ul><img src="/px/t.gif?p=1" width="1" height="1" alt="" style="display:none"></footer>
</body></html>
"""

MAINS = {
    MEDIA + "photos/hero.jpg": "src",
    MEDIA + "photos/lazy.jpg": "data-src",
    MEDIA + "photos/big.jpg": "srcset",
    MEDIA + "x2.jpg": "srcset",
    MEDIA + "pic-large.webp": "picture",
    "http://cdn.example.net/g/IMG_2041.jpg": "src",
    MEDIA + "g/no-alt.jpg": "src",
    MEDIA + "lazy2.jpg": "data-lazy-src",
}
DECOYS = {
    "http://example.org/static/logo.png": "in header",
    "http://example.org/static/avatars/ann.jpg": "hint 'avatar'",
    "http://example.org/posts/2/cover.jpg": "aside",
    "http://example.org/promo/summer.png": "aside",
    "http://example.org/static/social/twitter.png": "in footer",
    "http://example.org/px/t.gif?p=1": "declared 1x1",
}


@pytest.fixture(scope="module")
def candidates():
    return {c.url: c for c in extract_images(ARTICLE, PAGE_URL)}


def test_main_images_and_decoys_are_separated(candidates):
    assert {u for u, c in candidates.items() if c.is_main} == set(MAINS)
    assert {u for u, c in candidates.items() if not c.is_main} == set(DECOYS)
    for url, signal in DECOYS.items():
        assert signal in candidates[url].detail, (url, candidates[url].detail)


def test_lazy_loading_srcset_and_picture_pick_the_full_size_url(candidates):
    for url, how in MAINS.items():
        assert candidates[url].source_attr == how, url
    # placeholders, smaller srcset entries, the picture fallback and data: URIs are never candidates
    for url in candidates:
        assert "placeholder" not in url and "small" not in url and "mid" not in url and "fallback" not in url
        assert not url.startswith("data:")


def test_noscript_copy_of_a_lazy_image_is_not_a_second_candidate():
    urls = [c.url for c in extract_images(ARTICLE, PAGE_URL)]
    assert urls.count(MEDIA + "photos/lazy.jpg") == 1
    assert len(urls) == len(set(urls)) == len(MAINS) + len(DECOYS)


def test_texts_of_a_figure_image(candidates):
    texts = {(str(t.source), t.text) for t in candidates[MEDIA + "photos/hero.jpg"].texts}
    assert texts == {
        ("alt", "A red kite flying high over sand dunes"),
        ("title", "Red kite"),
        ("figcaption", "The red kite at dusk, seen from the dunes"),
        ("surrounding", "We walked along the beach for hours before the wind picked up."),
        ("og", "A red kite above the dunes, shot at sunset"),
    }
    # whitespace inside attributes is normalised; og text only goes to the og:image
    lazy = candidates[MEDIA + "photos/lazy.jpg"]
    assert ("alt", "Two kites tangled in the wind") in {(str(t.source), t.text) for t in lazy.texts}
    assert all(t.source != CaptionSource.OG for t in lazy.texts)


def test_gallery_images_do_not_borrow_the_previous_paragraph(candidates):
    assert [str(t.source) for t in candidates["http://cdn.example.net/g/IMG_2041.jpg"].texts] == ["alt"]
    assert candidates[MEDIA + "g/no-alt.jpg"].texts == []


def test_surrounding_text_of_an_image_inside_a_paragraph():
    doc = parse_html("<html><body><article><p>Look: <a href='x'><img src='a.jpg'></a> a kite in the sky.</p>"
                     "</article></body></html>")  # fmt: skip
    img = next(doc.iter("img"))
    assert surrounding_text(img) == "Look: a kite in the sky."
    long = "word " * 200
    doc = parse_html(f"<html><body><div><img src='a.jpg'>{long}</div></body></html>")
    text = surrounding_text(next(doc.iter("img")), max_chars=50)
    assert len(text) <= 50 and text.endswith("word")


@pytest.mark.parametrize(
    ("base", "page", "expected"),
    [
        ("", "http://h.org/a/b.html", "http://h.org/a/"),
        ("/media/", "http://h.org/a/b.html", "http://h.org/media/"),
        ("../up/", "http://h.org/a/b/c.html", "http://h.org/a/up/"),
        ("https://cdn.h.org/x/", "http://h.org/a/b.html", "https://cdn.h.org/x/"),
    ],
)
def test_base_href_resolution(base, page, expected):
    head = f'<base href="{base}">' if base else ""
    html = f"<html><head>{head}</head><body><article><img src='i.jpg' alt='x'></article></body></html>"
    doc = parse_html(html)
    assert document_base(doc, page).rsplit("/", 1)[0] + "/" == expected
    assert [c.url for c in extract_images(html, page)] == [expected + "i.jpg"]


def test_parse_srcset_edge_cases():
    assert parse_srcset("a.jpg 100w,b.jpg 300w , c.jpg") == [("a.jpg", "w", 100.0), ("b.jpg", "w", 300.0),
                                                              ("c.jpg", "x", 1.0)]  # fmt: skip
    # commas inside a data: URI belong to the URL; a URL ending in a comma has no descriptor
    assert parse_srcset("data:image/gif;base64,AAA, d.jpg 2x")[1] == ("d.jpg", "x", 2.0)
    assert parse_srcset("e.jpg, f.jpg 1.5x") == [("e.jpg", "x", 1.0), ("f.jpg", "x", 1.5)]
    assert parse_srcset("") == []


def test_only_http_urls_and_unparseable_pages():
    html = "<html><body><img src='file:///etc/passwd' alt='x'><img src='javascript:alert(1)'></body></html>"
    assert extract_images(html, "http://h.org/") == []
    assert extract_images("", "http://h.org/") == []
    assert extract_images("   ", "http://h.org/") == []
    xml_decl = '<?xml version="1.0" encoding="utf-8"?><html><body><img src="a.jpg" alt="k"></body></html>'
    assert [c.url for c in extract_images(xml_decl, "http://h.org/")] == ["http://h.org/a.jpg"]


def test_bare_image_without_signals_is_main_and_small_declared_is_decoy():
    html = "<html><body><img src='a.jpg'><img src='b.jpg' width='120' height='90'></body></html>"
    cands = extract_images(html, "http://h.org/")
    assert [(c.url.rsplit("/", 1)[1], c.is_main) for c in cands] == [("a.jpg", True), ("b.jpg", False)]
    # a word in the URL counts less than the same word in the author's class: an article photo survives it
    html = ("<html><body><img src='/icons/share.png'><article><figure><img src='/up/banner-sunset.jpg'></figure>"
            "<figure><img class='banner' src='/up/sunset.jpg'></figure></article></body></html>")  # fmt: skip
    cands = extract_images(html, "http://h.org/")
    assert [(c.url.rsplit("/", 1)[1], c.is_main) for c in cands] == [
        ("share.png", False), ("banner-sunset.jpg", True), ("sunset.jpg", False)]  # fmt: skip
    assert "url hint 'banner'" in cands[1].detail and "hint 'banner'" in cands[2].detail


# --- robots -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("noai", True),
        ("noindex, nofollow", True),
        ("noimageai", True),
        ("nofollow", False),
        ("otherbot: noai", False),
        ("laitkit: noai", True),
        ("LaitKit: NoImageAI", True),
        ("max-image-preview:large, noai", True),
        ("max-image-preview:large", False),
    ],
)
def test_x_robots_tag_lines(line, expected):
    assert line_disallows(line, "laitkit", ("noai", "noimageai", "noindex", "noimageindex")) is expected


def test_page_opt_out_by_header_or_meta_rejects_every_image_even_decoys():
    cfg = CrawlConfig()
    page = Page(url=PAGE_URL, html=ARTICLE, headers={"X-Robots-Tag": "otherbot: noindex\nnoai"})
    assert page_opt_out(page) == "X-Robots-Tag: noai"
    samples = page_samples(page, cfg)
    assert len(samples) == len(MAINS) + len(DECOYS)
    assert {s.status for s in samples} == {Reason.ROBOTS_NOAI}
    meta = ARTICLE.replace("<title>", '<meta name="robots" content="max-image-preview:large, noai"><title>')
    assert page_opt_out(Page(url=PAGE_URL, html=meta)) == '<meta name="robots" content="max-image-preview:large, noai">'
    assert page_opt_out(Page(url=PAGE_URL, html=ARTICLE, headers={"X-Robots-Tag": "otherbot: noai"})) == ""
    # an empty directive set disables the check
    assert page_opt_out(page, disallowed=()) == ""


def test_page_samples_verdicts_and_unique_keys():
    samples = page_samples(Page(url=PAGE_URL, html=ARTICLE), CrawlConfig())
    by_url = {s.url: s for s in samples}
    assert {u for u, s in by_url.items() if s.status == Reason.DECOY} == set(DECOYS)
    assert {u for u, s in by_url.items() if s.kept} == set(MAINS)
    assert by_url[MEDIA + "photos/hero.jpg"].verdicts[0].stage == "dom"
    assert all(s.page_url == PAGE_URL for s in samples)
    # the same logo on another page is another sample with another key
    other = page_samples(Page(url="http://example.org/blog/post/2.html", html=ARTICLE), CrawlConfig())
    assert len({s.key for s in samples + other}) == 2 * len(samples)


# --- readers ----------------------------------------------------------------------------------------


def _warc(path: Path, records: list[tuple[str, str, list[tuple[str, str]], bytes, str]]) -> None:
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for uri, status, headers, body, rec_type in records:
            http = StatusAndHeaders(status, headers, protocol="HTTP/1.1") if rec_type == "response" else None
            rec = writer.create_warc_record(uri, rec_type, payload=io.BytesIO(body), length=len(body),
                                            http_headers=http)  # fmt: skip
            writer.write_record(rec)


def test_iter_warc_yields_html_responses_with_headers(tmp_path):
    path = tmp_path / "pages.warc.gz"
    page = "<html><body><p>café</p></body></html>".encode("iso-8859-1")
    _warc(
        path,
        [
            ("http://h.org/a.html", "200 OK",
             [("Content-Type", "text/html; charset=iso-8859-1"), ("X-Robots-Tag", "noai"),
              ("X-Robots-Tag", "bot: noindex")], page, "response"),
            ("http://h.org/i.jpg", "200 OK", [("Content-Type", "image/jpeg")], b"\xff\xd8\xff", "response"),
            ("http://h.org/missing.html", "404 Not Found", [("Content-Type", "text/html")], b"<html></html>",
             "response"),
            ("http://h.org/b.html", "", [], b"GET /b.html HTTP/1.1\r\n\r\n", "request"),
        ],
    )  # fmt: skip
    with gzip.open(path) as fh:  # a real gzip WARC
        assert fh.read(4) == b"WARC"
    pages = list(readers.iter_warc(path))
    assert [p.url for p in pages] == ["http://h.org/a.html"]
    assert "café" in pages[0].html
    assert pages[0].header("X-Robots-Tag") == ["noai", "bot: noindex"]
    assert pages[0].headers["content-type"].startswith("text/html")


def test_iter_html_dir_urls(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.html").write_text("<html><body><img src='x.jpg' alt='a b c'></body></html>")
    (tmp_path / "sub" / "b.htm").write_text(
        '<html><head><link rel="canonical" href="https://site.org/b"></head><body></body></html>'
    )
    (tmp_path / "notes.txt").write_text("not html")
    with_base = list(readers.iter_html_dir(tmp_path, base_url="http://site.org/saved/"))
    assert [p.url for p in with_base] == ["http://site.org/saved/a.html", "http://site.org/saved/sub/b.htm"]
    plain = list(readers.iter_html_dir(tmp_path))
    assert plain[0].url.startswith("file://") and plain[1].url == "https://site.org/b"
    # a file:// page yields no fetchable image
    assert extract_images(plain[0].html, plain[0].url) == []


def test_iter_url_rows_parquet_and_csv(tmp_path):
    pq.write_table(pa.table({"url": ["http://h.org/1.jpg", None, "http://h.org/2.jpg"],
                             "caption": ["a red kite", "x", None]}), tmp_path / "list.parquet")  # fmt: skip
    (tmp_path / "list.csv").write_text("url,caption,page_url\nhttp://h.org/3.jpg,a blue kite,http://h.org/p\n")
    rows = list(readers.iter_url_rows(tmp_path))
    assert rows == [
        {"url": "http://h.org/3.jpg", "caption": "a blue kite", "page_url": "http://h.org/p", "ref": "list.csv#0"},
        {"url": "http://h.org/1.jpg", "caption": "a red kite", "page_url": "", "ref": "list.parquet#0"},
        {"url": "http://h.org/2.jpg", "caption": "", "page_url": "", "ref": "list.parquet#2"},  # row 1 has no URL
    ]
    s = readers.sample_from_url_row(rows[0])
    assert [(str(t.source), t.text) for t in s.candidates] == [("list", "a blue kite")]
    assert readers.sample_from_url_row(rows[2]).candidates == []
    with pytest.raises(ValueError, match="url"):
        pq.write_table(pa.table({"link": ["x"]}), tmp_path / "bad.parquet")
        list(readers.iter_url_rows(tmp_path / "bad.parquet"))
