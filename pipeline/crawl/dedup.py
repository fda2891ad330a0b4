"""Duplicate removal: the one stateful step of crawl + filter.

Why stateful, and why two passes: whether a sample is a duplicate depends on the samples before
it, so a `Deduper` remembers what it has kept (URLs, sha256s, perceptual hashes). Boilerplate
captions ("Click to enlarge") are different: a caption is rejected when more than K distinct
images carry it, which is only known after seeing them all — hence `count(samples)` over every
sample first (call it once per batch, any order), then `apply(samples)`.

Determinism: `apply` visits samples sorted by (page_url, url, key), so the copy on the earliest
page is the one kept, whatever order the input came in. To dedup a corpus in several batches,
feed `apply` the batches in that global order (or everything at once; the state holds only
strings and ints, ~100 bytes per kept image).

Only samples still kept are compared and remembered: an image first seen with a useless or
boilerplate caption does not make a later, well-captioned copy a duplicate. Checks run in the
order of `Reason`: DUP_URL, DUP_SHA256, DUP_PHASH (Hamming distance <= d against every earlier
kept image), DUP_CAPTION. Perceptual hashes are indexed by d+1 bit blocks: two 64-bit hashes
within distance d agree exactly on at least one block (pigeonhole), so a lookup only compares
against hashes sharing a block instead of all n.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from laitkit.datasets.schema import Reason, Sample
from laitkit.pipeline.crawl.canonical import canonical_url

STAGE = "dedup"


def caption_key(caption: str) -> str:
    """Case- and whitespace-insensitive form of a caption, for counting."""
    return " ".join(caption.casefold().split())


class PhashIndex:
    """Multi-index over 64-bit hashes for 'any earlier hash within Hamming distance d' queries."""

    def __init__(self, max_distance: int, bits: int = 64) -> None:
        if not 0 <= max_distance < bits:
            raise ValueError(f"max_distance must be in [0, {bits}), got {max_distance}")
        self.max_distance = max_distance
        n = max_distance + 1
        sizes = [bits // n + (1 if i < bits % n else 0) for i in range(n)]
        self._blocks: list[tuple[int, int]] = []
        shift = 0
        for size in sizes:
            self._blocks.append((shift, (1 << size) - 1))
            shift += size
        self._tables: list[dict[int, list[tuple[int, str]]]] = [{} for _ in sizes]

    def find(self, h: int) -> tuple[str, int] | None:
        """(label, distance) of the first stored hash within `max_distance`, or None."""
        checked: set[int] = set()
        for (shift, mask), table in zip(self._blocks, self._tables, strict=True):
            for other, label in table.get((h >> shift) & mask, ()):
                if other in checked:
                    continue
                checked.add(other)
                d = (h ^ other).bit_count()
                if d <= self.max_distance:
                    return label, d
        return None

    def add(self, h: int, label: str) -> None:
        for (shift, mask), table in zip(self._blocks, self._tables, strict=True):
            table.setdefault((h >> shift) & mask, []).append((h, label))


class Deduper:
    """Rejects DUP_URL / DUP_SHA256 / DUP_PHASH / DUP_CAPTION; keeps the first copy (see module doc)."""

    def __init__(self, *, phash_max_distance: int = 4, max_images_per_caption: int = 5) -> None:
        self.max_images_per_caption = max_images_per_caption
        self._caption_images: dict[str, set[str]] = {}
        self._caption_counts: dict[str, int] | None = None
        self._urls: dict[str, str] = {}
        self._sha256: dict[str, str] = {}
        self._phash = PhashIndex(phash_max_distance)

    @classmethod
    def from_config(cls, cfg: Any) -> Deduper:
        return cls(phash_max_distance=cfg.phash_max_distance, max_images_per_caption=cfg.max_images_per_caption)

    def count(self, samples: Iterable[Sample]) -> None:
        """Pass 1: which distinct images (sha256, else URL) carry each caption. Every sample counts,
        rejected or not — a boilerplate caption is boilerplate wherever it appears. Sets are capped
        at K+1 entries, so memory stays bounded by the number of distinct captions."""
        cap = self.max_images_per_caption + 1
        for s in samples:
            if not s.caption:
                continue
            images = self._caption_images.setdefault(caption_key(s.caption), set())
            if len(images) < cap:
                images.add(s.sha256 or s.url)

    def set_caption_counts(self, counts: dict[str, int]) -> None:
        """Use caption counts computed elsewhere (the distributed dedup counts them by hash
        partition) instead of pass 1; keys are `caption_key`s, missing ones count 0."""
        self._caption_counts = dict(counts)

    def caption_images(self, caption: str) -> int:
        """How many distinct images carry `caption` (capped at K+1)."""
        if self._caption_counts is not None:
            return self._caption_counts.get(caption_key(caption), 0)
        return len(self._caption_images.get(caption_key(caption), ()))

    def apply(self, samples: Iterable[Sample]) -> None:
        """Pass 2: append a dedup verdict to every still-kept sample, in (page_url, url, key) order."""
        for s in sorted(samples, key=lambda s: (s.page_url, s.url, s.key)):
            if not s.kept:
                continue
            url = canonical_url(s.url)  # one spelling per URL: case, default port, tracking parameters
            reason, detail = self._check(s, url)
            if reason is Reason.KEEP:
                self._remember(s, url)
                s.accept(STAGE)
            else:
                s.reject(STAGE, reason, detail)

    def _check(self, s: Sample, url: str) -> tuple[Reason, str]:
        if url in self._urls:
            return Reason.DUP_URL, f"same URL as {self._urls[url]}"
        if s.sha256 and s.sha256 in self._sha256:
            return Reason.DUP_SHA256, f"same sha256 as {self._sha256[s.sha256]}"
        if s.phash:
            hit = self._phash.find(int(s.phash, 16))
            if hit is not None:
                return Reason.DUP_PHASH, f"phash distance {hit[1]} to {hit[0]}"
        n = self.caption_images(s.caption) if s.caption else 0
        if n > self.max_images_per_caption:
            return Reason.DUP_CAPTION, f"caption shared by > {self.max_images_per_caption} images"
        return Reason.KEEP, ""

    def _remember(self, s: Sample, url: str) -> None:
        label = f"{s.key} ({s.page_url or s.url})"
        self._urls.setdefault(url, label)
        if s.sha256:
            self._sha256.setdefault(s.sha256, label)
        if s.phash:
            self._phash.add(int(s.phash, 16), label)
