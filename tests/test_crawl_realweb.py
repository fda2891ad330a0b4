"""The DOM finder on pages it was not generated with: the real-web corpus, extract-html, hostile markup."""

from __future__ import annotations

import json
import subprocess
import sys

from laitkit.datasets.realweb import ROOT, evaluate, load_truth
from laitkit.datasets.schema import Reason
from laitkit.jobs.cli import main
from laitkit.pipeline.crawl import CrawlConfig, Page, caption_step, page_samples
from laitkit.pipeline.crawl.caption import useless_reason, word_count


def test_corpus_is_large_and_varied() -> None:
    pages = load_truth()
    assert len(pages) >= 60
    assert len({p["kind"] for p in pages}) >= 12
    assert {"chinese", "japanese", "arabic", "russian", "amp", "javascript"} <= {p["kind"] for p in pages}
    for p in pages:
        assert (ROOT / p["file"]).is_file() and p["main"], p["file"]


def test_finder_is_right_on_the_real_web_corpus() -> None:
    r = evaluate(CrawlConfig())
    assert r["main_f1"] >= 0.95, r["misses"]
    assert r["caption_exact"] >= 0.9, r["misses"]
    for kind, k in r["per_kind"].items():
        assert k["f1"] >= 0.8, (kind, k)


def test_extract_html_prints_one_json_line_per_candidate(tmp_path, capsys) -> None:
    page = next(p for p in load_truth() if p["file"].endswith("travel_01.html"))
    assert main(["crawl", "extract-html", "--input", str(ROOT / page["file"]), "--base-url", page["url"]]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"url", "is_main", "caption", "caption_source", "candidates", "score", "detail"} <= set(lines[0])
    hero = next(r for r in lines if r["url"].endswith("lisbon-hero.jpg"))  # a CSS background hero
    assert hero["is_main"] and hero["caption"] == "Yellow tram climbing a steep street in Lisbon"
    assert hero["caption_source"] == "alt" and "css" in hero["detail"]
    maps = [r for r in lines if "mapbox" in r["url"]]
    assert maps and not any(r["is_main"] for r in maps)
    pixels = [r for r in lines if "facebook.com/tr" in r["url"]]
    assert pixels and not pixels[0]["is_main"] and "declared 1x1" in pixels[0]["detail"]
    for r in lines:  # the fields' types, on every line
        assert isinstance(r["url"], str) and r["url"].startswith(("http://", "https://"))
        assert isinstance(r["is_main"], bool) and isinstance(r["score"], (int, float))
        assert all(set(c) == {"text", "source"} and c["text"] for c in r["candidates"])
        assert r["caption"] == "" or r["caption_source"] in {c["source"] for c in r["candidates"]}
    # a page in a script written without spaces still yields its pair (language is a later step)
    page = next(p for p in load_truth() if p["kind"] == "chinese")
    assert main(["crawl", "extract-html", "--input", str(ROOT / page["file"]), "--base-url", page["url"]]) == 0
    mains = [json.loads(line) for line in capsys.readouterr().out.splitlines() if json.loads(line)["is_main"]]
    assert {(r["url"], r["caption"]) for r in mains} >= {(m["url"], m["caption"]) for m in page["main"]}


def test_extract_html_user_errors_are_one_line(tmp_path) -> None:
    page = tmp_path / "p.html"
    page.write_text("<html><body><img src='a.jpg'></body></html>")
    for argv, needle in (
        (["--input", str(page), "--base-url", "ftp://x/"], "--base-url must be an http(s) URL"),
        (["--input", str(tmp_path / "missing.html"), "--base-url", "http://x/"], "--input is not a file"),
    ):
        proc = subprocess.run([sys.executable, "-m", "laitkit.jobs.cli", "crawl", "extract-html", *argv],
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode != 0 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_metadata_only_page_yields_its_share_image() -> None:
    page = next(p for p in load_truth() if p["file"].endswith("spa_03.html"))  # JSON-LD ImageObject only
    samples = page_samples(Page(url=page["url"], html=(ROOT / page["file"]).read_text()), CrawlConfig())
    caption_step(samples, CrawlConfig())
    kept = [s for s in samples if s.kept]
    assert [s.url for s in kept] == [page["main"][0]["url"]]
    assert kept[0].caption == page["main"][0]["caption"]
    hidden_pixel = [s for s in samples if "bing" in s.url]
    assert hidden_pixel and hidden_pixel[0].status == Reason.DECOY


def test_50000_deep_nesting_loses_no_candidate() -> None:
    n = 50_000
    html = ("<html><body><article>" + "<div>" * n + '<img src="/deep.jpg" alt="A red fox in deep snow">'
            + "</div>" * n + '<img src="/after.jpg" alt="After the deep block"></article></body></html>')  # fmt: skip
    samples = page_samples(Page(url="http://example.org/p.html", html=html), CrawlConfig())
    assert sorted(s.url for s in samples) == ["http://example.org/after.jpg", "http://example.org/deep.jpg"]
    assert all(s.status == Reason.BAD_HTML and "depth" in s.verdicts[-1].detail for s in samples)


def test_captions_in_scripts_without_spaces_are_not_one_word() -> None:
    assert word_count("春天的西湖边柳树发芽") == 5
    assert useless_reason("春天的西湖边柳树发芽游客泛舟湖上") == ""
    assert useless_reason("满开の桜") == "2 words < 3"
    assert useless_reason("Заснеженная улица Москвы") == ""


def test_relative_images_of_a_saved_page_without_base_url_get_a_verdict(tmp_path) -> None:
    from laitkit.pipeline.crawl import readers

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "p.html").write_text('<html><body><article><img src="img/a.jpg" alt="A red boat in the '
                                              'harbour at dawn"></article></body></html>')  # fmt: skip
    (page,) = readers.iter_html_dir(tmp_path / "site")
    (s,) = page_samples(page, CrawlConfig())
    assert s.status == Reason.NO_BASE_URL and s.url.startswith("file://") and "input.base_url" in s.verdicts[-1].detail
    (page,) = readers.iter_html_dir(tmp_path / "site", base_url="https://boats.example/")
    (s,) = page_samples(page, CrawlConfig())
    assert s.status == Reason.KEEP and s.url == "https://boats.example/img/a.jpg"


def test_malformed_image_urls_get_a_verdict_and_crash_nothing(tmp_path) -> None:
    from laitkit.pipeline.crawl import crawl_url_rows

    html = ("<html><head><base href='http://[::1'></head><body><article>"
            "<img src='http://[::1' alt='A broken address in the source'>"
            "<img data-src='http://h.example:99999/a.jpg' alt='A port number out of range'>"
            "<img src='//cdn.example/fine.jpg' alt='A fine protocol relative image'></article></body></html>")
    samples = page_samples(Page(url="http://x.example/p.html", html=html), CrawlConfig())
    by_url = {s.url: s for s in samples}
    broken = by_url["http://[::1"]
    assert broken.status == Reason.BAD_HTML and "malformed" in broken.verdicts[-1].detail
    assert by_url["http://cdn.example/fine.jpg"].kept  # the malformed <base> is ignored, as browsers do
    rows = [
        {"url": "http://[::1/a.jpg", "caption": "A red boat in the old harbour", "page_url": "http://[bad"},
        {"url": "http://h.example:99999/a.jpg", "caption": "A red boat in the harbour at dusk", "page_url": ""},
    ]
    got = crawl_url_rows(rows, CrawlConfig(), tmp_path)
    assert [s.status for s in got] == [Reason.DOWNLOAD_ERROR] * 2
    assert "malformed URL" in got[0].verdicts[-1].detail and "bad port" in got[1].verdicts[-1].detail
