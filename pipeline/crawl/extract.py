"""One page in, one record per image candidate out: what `laitkit crawl extract-html` prints.

Why a separate function: to see why the finder calls an image main or decoy and which caption
it would take, without a job, a download or a language model. It runs the DOM step and the
caption choice exactly as the crawl does (same `CrawlConfig` fields) and stops there, so pages
in any language still show their pairs (language is the next step of the crawl).
"""

from __future__ import annotations

from typing import Any

from laitkit.pipeline.crawl.caption import choose_caption
from laitkit.pipeline.crawl.config import CrawlConfig
from laitkit.pipeline.crawl.html_images import extract_images


def extract_records(html: str, page_url: str, cfg: CrawlConfig | None = None) -> list[dict[str, Any]]:
    """Every image candidate of `html` as a JSON-ready dict (see the module doc)."""
    cfg = cfg or CrawlConfig()
    out = []
    for c in extract_images(
        html,
        page_url,
        min_declared_side=cfg.min_declared_side,
        main_threshold=cfg.main_threshold,
        surrounding_max_chars=cfg.surrounding_max_chars,
    ):
        choice = choose_caption(
            c.texts, order=cfg.caption_order, min_words=cfg.min_caption_words, max_words=cfg.max_caption_words
        )
        out.append(
            {
                "url": c.url,
                "is_main": c.is_main,
                "caption": choice.caption,
                "caption_source": choice.source,
                "caption_detail": choice.detail,
                "candidates": [{"text": t.text, "source": str(t.source)} for t in c.texts],
                "score": c.score,
                "detail": f"{c.source_attr}; {c.detail}",
            }
        )
    return out
