"""`CrawlConfig`: every threshold of crawl + filter, in one frozen, validated dataclass.

Why one object: the job's YAML `crawl:` mapping is built into this class (unknown keys fail
before any work starts), and each step reads only its own fields. Defaults follow LAIT where it
says something (alt text first, 300 px shorter side, 3:1 aspect) and img2dataset's defaults for
downloading; the rest is documented next to each field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from laitkit.pipeline.crawl.caption import DEFAULT_ORDER
from laitkit.pipeline.crawl.lang import DEFAULT_LANGUAGES
from laitkit.pipeline.crawl.netguard import parse_networks
from laitkit.pipeline.crawl.robots import DEFAULT_DISALLOWED
from laitkit.pipeline.crawl.text_filters import DEFAULT_NSFW_WORDS

_RESIZE_MODES = ("no", "keep_ratio", "center_crop", "border", "keep_ratio_largest")
_SOURCES = ("alt", "figcaption", "title", "surrounding", "og", "list", "wat")


@dataclass(frozen=True, kw_only=True)
class CrawlConfig:
    """Thresholds and download settings for `crawl_pages` / `crawl_url_rows`."""

    # robots: X-Robots-Tag / meta robots directives that forbid use, and our user-agent token
    disallowed_directives: tuple[str, ...] = DEFAULT_DISALLOWED
    user_agent_token: str = "laitkit"
    # DOM: declared width/height below this marks a decoy; main images score >= main_threshold
    min_declared_side: int = 300
    main_threshold: float = 0.0
    surrounding_max_chars: int = 300
    # caption: LAIT order (alt first); usable texts have min..max words
    caption_order: tuple[str, ...] = DEFAULT_ORDER
    min_caption_words: int = 3
    max_caption_words: int = 80
    # language: detector restricted to these languages; English needs this confidence and may trail
    # the most likely language by lang_margin (high-accuracy confidences are spread out; see lang.py)
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    min_lang_score: float = 0.15
    lang_margin: float = 0.1
    lang_low_accuracy: bool = False
    # a caption of at most this many words that lingua gives to another language is kept when its
    # words' frequencies (wordfreq) vote English; 0 turns the vote off (lang.py says why)
    lang_vote_words: int = 8
    # a caption of >= 3 words, all in English's word list, whose words lead every other language by
    # at least this many nats per word is English without asking lingua (lang.py: words first; 0 = off)
    lang_word_margin: float = 1.5
    # NSFW keywords on caption + URL; reject when 1 - 0.5**hits >= max_nsfw_score
    nsfw_words: tuple[str, ...] = DEFAULT_NSFW_WORDS
    max_nsfw_score: float = 0.5
    # network guard (netguard.py): refused unless globally routable or inside allowed_networks (CIDRs;
    # empty by default, the demo and tests allow 127.0.0.0/8); image hosts' robots.txt is honoured;
    # `timeout` is a total deadline per fetch (redirects included), bodies are capped at max_download_bytes
    allowed_networks: tuple[str, ...] = ()
    robots_txt: bool = True
    page_robots_txt: bool = True  # also ask the page's robots.txt (explicit rules only: robots_txt.py)
    max_download_bytes: int = 32 * 1024 * 1024
    # download (img2dataset): see download.img2dataset_kwargs for why each value
    image_size: int = 640
    resize_mode: str = "keep_ratio"
    encode_quality: int = 95
    timeout: float = 10.0
    retries: int = 0
    processes_count: int = 1
    thread_count: int = 32
    urls_per_shard: int = 1000
    max_image_pixels: int = 89_478_485  # Pillow's bomb threshold; also passed to OpenCV's decoder
    # image filters, on the original size reported by img2dataset
    min_image_side: int = 300
    max_aspect_ratio: float = 3.0
    max_unnatural_score: float = 0.6
    # pluggable image classifiers (image_filters.load_classifier): '' = the default (the unnatural
    # heuristic; no image NSFW check), a TorchScript .pt path, or 'package.module:function'
    unnatural_classifier: str = ""
    nsfw_image_classifier: str = ""
    # dedup: run it inside crawl_pages/crawl_url_rows (a job with a global dedup pass may turn it off)
    dedup: bool = True
    phash_max_distance: int = 4
    max_images_per_caption: int = 5

    def __post_init__(self) -> None:
        checks = [
            (self.min_declared_side >= 0, "min_declared_side must be >= 0"),
            (self.surrounding_max_chars > 0, "surrounding_max_chars must be > 0"),
            (all(s in _SOURCES for s in self.caption_order), f"caption_order entries must be in {_SOURCES}"),
            (0 < self.min_caption_words <= self.max_caption_words, "need 0 < min_caption_words <= max_caption_words"),
            ("en" in self.languages and len(set(self.languages)) >= 2, "languages must include 'en' and one more"),
            (0.0 <= self.min_lang_score <= 1.0, "min_lang_score must be in [0, 1]"),
            (0.0 <= self.lang_margin <= 1.0, "lang_margin must be in [0, 1]"),
            (self.lang_vote_words >= 0, "lang_vote_words must be >= 0"),
            (self.lang_word_margin >= 0, "lang_word_margin must be >= 0"),
            (0.0 < self.max_nsfw_score <= 1.0, "max_nsfw_score must be in (0, 1]"),
            (self.image_size > 0, "image_size must be > 0"),
            (self.resize_mode in _RESIZE_MODES, f"resize_mode must be one of {_RESIZE_MODES}"),
            (0 <= self.encode_quality <= 100, "encode_quality must be in [0, 100]"),
            (self.timeout > 0, "timeout must be > 0"),
            (self.max_download_bytes > 0, "max_download_bytes must be > 0"),
            (self.retries >= 0, "retries must be >= 0"),
            (self.processes_count >= 1 and self.thread_count >= 1, "processes_count and thread_count must be >= 1"),
            (self.urls_per_shard >= 1, "urls_per_shard must be >= 1"),
            (self.max_image_pixels > 0, "max_image_pixels must be > 0"),
            (self.min_image_side >= 0, "min_image_side must be >= 0"),
            (self.max_aspect_ratio >= 1.0, "max_aspect_ratio must be >= 1"),
            (0.0 < self.max_unnatural_score <= 1.0, "max_unnatural_score must be in (0, 1]"),
            (0 <= self.phash_max_distance <= 16, "phash_max_distance must be in [0, 16]"),
            (self.max_images_per_caption >= 1, "max_images_per_caption must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        parse_networks(self.allowed_networks)  # a bad CIDR fails before any work starts
        for name in ("unnatural_classifier", "nsfw_image_classifier"):
            spec = getattr(self, name).strip()
            if spec.lower().endswith((".pt", ".pth", ".ts")):
                if not Path(spec).is_file():
                    raise ValueError(f"{name}: no such TorchScript file: {spec}")
            elif spec and ":" not in spec:
                raise ValueError(f"{name} must be a .pt path or 'package.module:function', got {spec!r}")
