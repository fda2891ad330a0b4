"""Crawl + filter as plain Python: pages or URL lists in, one `Sample` with verdicts per candidate out.

Why plain Python: the Ray job runs these functions inside tasks, tests and notebooks run them
directly; nothing here imports Ray. The order is the recipe's (and `Reason`'s): cheap text checks
run before anything is downloaded, and a rejected candidate is not checked further — its first
rejecting verdict is its `status` — but it is never dropped: every `<img>` with a URL and every
URL-list row comes back as a sample, keeping everything learned about it.

    robots (page opt-out) → DOM (main vs decoy, texts) → caption → language → NSFW
    → download (img2dataset) → image filters (size, aspect, unnatural; phash) → dedup

Relevance scoring is a later stage; `relevance_score` stays NaN here.

    from laitkit.pipeline.crawl import CrawlConfig, crawl_pages, readers
    samples = crawl_pages(readers.iter_warc("pages.warc.gz"), CrawlConfig(timeout=3), "work/crawl")
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from laitkit.datasets.schema import Reason, Sample, make_key
from laitkit.pipeline.crawl import image_filters, lang, text_filters
from laitkit.pipeline.crawl.caption import choose_caption
from laitkit.pipeline.crawl.config import CrawlConfig
from laitkit.pipeline.crawl.dedup import Deduper
from laitkit.pipeline.crawl.download import download_samples
from laitkit.pipeline.crawl.html_images import ImageCandidate, extract_images
from laitkit.pipeline.crawl.phases import Phases, span
from laitkit.pipeline.crawl.readers import BAD_RECORD_HEADER, Page, sample_from_url_row
from laitkit.pipeline.crawl.robots import page_opt_out

__all__ = [
    "CrawlConfig",
    "Deduper",
    "ImageCandidate",
    "Page",
    "Phases",
    "caption_step",
    "crawl_pages",
    "crawl_samples",
    "crawl_url_rows",
    "dedup_step",
    "download_samples",
    "extract_images",
    "image_step",
    "lang_step",
    "nsfw_step",
    "page_samples",
    "page_sample_key",
]


def page_sample_key(img_url: str, page_url: str, index: int, ref: str = "") -> str:
    """Key of the `index`-th `<img>` of a page: unique even when one image and alt text recur on
    many pages (a logo), stable across reruns of the same input. `ref` is where the page sits in
    the input (WARC file and record offset): the same page archived twice gives two samples (the
    copy becomes a DUP_URL verdict in dedup) instead of two samples with one key."""
    return make_key(img_url, page_url, str(index), ref)


def page_samples(page: Page, cfg: CrawlConfig) -> list[Sample]:
    """Robots + DOM: one sample per `<img>`; opted-out pages and decoys come back rejected.

    A corrupt WARC record (readers.BAD_RECORD_HEADER) comes back as one `bad_record` sample.
    """
    bad = page.header(BAD_RECORD_HEADER)
    if bad:
        s = Sample(key=make_key(page.url, "bad_record\n" + bad[0]), url=page.url, page_url=page.url)
        s.reject("read", Reason.BAD_RECORD, bad[0])
        return [s]
    opt_out = page_opt_out(page, token=cfg.user_agent_token, disallowed=cfg.disallowed_directives)
    out: list[Sample] = []
    for c in extract_images(
        page.html,
        page.url,
        min_declared_side=cfg.min_declared_side,
        main_threshold=cfg.main_threshold,
        surrounding_max_chars=cfg.surrounding_max_chars,
    ):
        key = page_sample_key(c.url, page.url, c.index, page.ref)
        s = Sample(key=key, url=c.url, page_url=page.url, candidates=c.texts)
        if opt_out:
            s.reject("robots", Reason.ROBOTS_NOAI, opt_out)
        elif c.unparsed:
            s.reject("dom", Reason(c.unparsed_reason), c.unparsed)
        elif not c.is_main:
            s.reject("dom", Reason.DECOY, c.detail)
        else:
            s.accept("dom", f"{c.source_attr}; {c.detail}")
        out.append(s)
    return out


def caption_step(samples: Iterable[Sample], cfg: CrawlConfig) -> None:
    """LAIT caption choice on every kept sample (see `caption.choose_caption`)."""
    for s in samples:
        if not s.kept:
            continue
        choice = choose_caption(
            s.candidates, order=cfg.caption_order, min_words=cfg.min_caption_words, max_words=cfg.max_caption_words
        )
        if choice.reason is Reason.KEEP:
            s.caption, s.caption_source = choice.caption, choice.source
            s.accept("caption", choice.detail)
        else:
            s.reject("caption", choice.reason, choice.detail)


def lang_step(samples: Iterable[Sample], cfg: CrawlConfig) -> None:
    """Language of the caption; NOT_ENGLISH unless its words leave no doubt that it is English, or
    lingua's English is confident enough and (nearly) the most likely, or the caption is short and
    its words vote English (lang.decide)."""
    for s in samples:
        if not s.kept:
            continue
        d = lang.decide(s.caption, tuple(cfg.languages), cfg.lang_low_accuracy, cfg.min_lang_score,
                        cfg.lang_margin, cfg.lang_vote_words, cfg.lang_word_margin)  # fmt: skip
        s.lang, s.lang_score = d.lang, d.score
        if d.english:
            s.accept("lang", d.detail)
        else:
            s.reject("lang", Reason.NOT_ENGLISH, d.detail)


def nsfw_step(samples: Iterable[Sample], cfg: CrawlConfig) -> None:
    """NSFW keywords in caption and URL."""
    for s in samples:
        if not s.kept:
            continue
        hits = text_filters.nsfw_hits(s.caption, s.url, cfg.nsfw_words)
        s.nsfw_score = text_filters.nsfw_score(hits)
        if s.nsfw_score >= cfg.max_nsfw_score:
            s.reject("nsfw", Reason.NSFW, f"score {s.nsfw_score:.2f}: {', '.join(hits)}")
        else:
            s.accept("nsfw", f"score {s.nsfw_score:.2f}")


def image_step(samples: Iterable[Sample], cfg: CrawlConfig, measured: Mapping[str, tuple] | None = None) -> None:
    """Decode the stored image; phash and unnatural score for every decodable one, then the first
    failing check of TOO_SMALL → BAD_ASPECT → UNNATURAL → NSFW (image classifier, when configured)
    decides. A configured unnatural classifier replaces the heuristic's score; its score is stored.

    `measured` (by sample key) holds the measurements img2dataset's workers already took of the
    stored images (measure_writer.py; this step in the parent was the crawl's largest cost over
    img2dataset alone). Samples without one, and all samples when a classifier is configured, are
    measured here in threads (`image_filters.analyse_many`); verdicts are then given in order.
    """
    unnatural_clf = image_filters.load_classifier(cfg.unnatural_classifier)
    nsfw_clf = image_filters.load_classifier(cfg.nsfw_image_classifier)
    todo = [s for s in samples if s.kept and s.image]
    known = {} if unnatural_clf is not None or nsfw_clf is not None else dict(measured or {})
    missing = [s for s in todo if s.key not in known]
    workers = max(1, min(8, os.cpu_count() or 1))
    fresh = image_filters.analyse_many([s.image for s in missing], workers, unnatural_clf, nsfw_clf)
    known.update({s.key: r for s, r in zip(missing, fresh, strict=True)})
    for s in todo:
        error, unnatural, unnatural_detail, nsfw_image, phash = known[s.key]
        if error:
            s.reject("image", Reason.DECODE_ERROR, error)
            continue
        s.unnatural_score, s.phash = unnatural, phash
        if unnatural_clf is not None:
            unnatural_detail = f"unnatural {unnatural:.2f} ({cfg.unnatural_classifier})"
        if nsfw_clf is not None:  # the stored NSFW score is the larger of text keywords and image
            s.nsfw_score = nsfw_image if not s.nsfw_score >= nsfw_image else s.nsfw_score
        too_small = image_filters.size_reason(s.orig_width, s.orig_height, cfg.min_image_side)
        bad_aspect = image_filters.aspect_reason(s.orig_width, s.orig_height, cfg.max_aspect_ratio)
        if too_small:
            s.reject("image", Reason.TOO_SMALL, too_small)
        elif bad_aspect:
            s.reject("image", Reason.BAD_ASPECT, bad_aspect)
        elif s.unnatural_score >= cfg.max_unnatural_score:
            s.reject("image", Reason.UNNATURAL, unnatural_detail)
        elif nsfw_image >= cfg.max_nsfw_score:
            s.reject("image", Reason.NSFW, f"image classifier {nsfw_image:.2f} ({cfg.nsfw_image_classifier})")
        else:
            s.accept("image", unnatural_detail)


def dedup_step(samples: list[Sample], cfg: CrawlConfig) -> None:
    """Both dedup passes over `samples` with a fresh `Deduper`."""
    deduper = Deduper.from_config(cfg)
    deduper.count(samples)
    deduper.apply(samples)


def crawl_samples(
    samples: list[Sample], cfg: CrawlConfig, work_dir: str | Path, phases: Phases | None = None
) -> list[Sample]:
    """Run the checks after the DOM on candidate samples, in place; returns `samples`.

    `phases`, when given, receives the wall-clock seconds of each step (phases.py)."""
    with span(phases, "caption"):
        caption_step(samples, cfg)
    with span(phases, "lang"):
        lang_step(samples, cfg)
    with span(phases, "nsfw_text"):
        nsfw_step(samples, cfg)
    measured = download_samples(samples, cfg, work_dir, phases)
    with span(phases, "image_verdicts"):
        image_step(samples, cfg, measured)
    if cfg.dedup:
        with span(phases, "dedup"):
            dedup_step(samples, cfg)
    return samples


def crawl_pages(
    pages: Iterable[Page], cfg: CrawlConfig | None = None, work_dir: str | Path = "crawl_work"
) -> list[Sample]:
    """Every image candidate of `pages` as a sample with verdicts, in page then document order.

    `work_dir` holds img2dataset's URL list and output (reused when rerun on the same candidates).
    """
    cfg = cfg or CrawlConfig()
    samples = [s for page in pages for s in page_samples(page, cfg)]
    return crawl_samples(samples, cfg, work_dir)


def crawl_url_rows(
    rows: Iterable[dict[str, str]],
    cfg: CrawlConfig | None = None,
    work_dir: str | Path = "crawl_work",
    phases: Phases | None = None,
) -> list[Sample]:
    """Like `crawl_pages` for an img2dataset-style URL list: each row is already a candidate pair
    (caption source "list"), so robots and DOM steps do not apply."""
    cfg = cfg or CrawlConfig()
    with span(phases, "read_rows"):
        samples = [sample_from_url_row(r) for r in rows]
    return crawl_samples(samples, cfg, work_dir, phases)
