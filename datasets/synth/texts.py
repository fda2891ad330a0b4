"""Which texts a main image carries on its page, and which one a crawler should pick as caption.

Why its own module: this is where the truth's `caption` and `caption_source` are decided, and the
rule must be stated once: the chosen caption is the first *useful English* text among alt, title
and figcaption, in that order (ImageBERT's LAIT starts from alt text). Clean images exercise each
fallback — plain alt, empty alt with a figcaption, no alt but a title, a file-name alt with a good
figcaption — while each noisy kind gets texts that make its one verdict unambiguous.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from laitkit.datasets.synth.noise import STOCK_CAPTIONS, Slot, non_english, nsfw, useless_alt
from laitkit.datasets.synth.pages import MainImage
from laitkit.datasets.synth.scenes import CLASSES, Scene, plan_scene

#: caption_of(scene, suffix) -> an English caption of `scene` that no other image carries.
CaptionOf = Callable[[Scene, str], str]


def assign_texts(
    m: MainImage, slot: Slot, scene: Scene | None, rng: np.random.Generator, caption_of: CaptionOf, given: str = ""
) -> tuple[str, str]:
    """Set `m`'s alt/title/figcaption (and gallery placement); return (expected caption, its source).

    `scene` is what the image shows (None for graphics, whose caption arrives as `given`). The
    expected caption is "" when no English caption should be chosen (non-English, useless or
    missing alt), and then the source is "" too.
    """
    noise = slot.noise
    if noise in ("clean", "robots_noai"):
        assert scene is not None
        caption = caption_of(scene, "")
        roll = rng.random()
        if roll < 0.7:
            m.alt = caption
            m.title = caption if rng.random() < 0.15 else ""
            fig = rng.random()
            # Sometimes the figcaption repeats the alt, sometimes it words the scene differently.
            m.figcaption = caption if fig < 0.2 else (caption_of(scene, "f") if fig < 0.5 else "")
            return caption, "alt"
        if roll < 0.82:
            m.alt, m.figcaption = "", caption
            return caption, "figcaption"
        if roll < 0.9:
            m.alt, m.title = None, caption
            return caption, "title"
        m.alt, m.figcaption = useless_alt(rng), caption
        return caption, "figcaption"
    if noise == "non_english":
        lang, m.alt, m.paragraph = non_english(rng)
        m.lang = lang
        m.figcaption = non_english(rng, lang)[1] if rng.random() < 0.4 else ""
        return "", ""
    if noise in ("useless_alt", "no_alt"):
        # In a text-free gallery block: nothing near the image could serve as its caption.
        m.alt = useless_alt(rng) if noise == "useless_alt" else None
        m.gallery = True
        return "", ""
    if noise == "stock_caption":
        m.alt = STOCK_CAPTIONS[slot.stock % len(STOCK_CAPTIONS)]
        return m.alt, "alt"
    if noise == "shuffled_caption":
        assert scene is not None
        present = {o.label for o in scene.objects}
        other = plan_scene(rng, 500, 400, classes=tuple(c for c in CLASSES if c not in present))
        m.alt = caption_of(other, "")
        return m.alt, "alt"
    if noise == "nsfw_caption":
        assert scene is not None
        m.alt = nsfw(caption_of(scene, ""), rng)
        return m.alt, "alt"
    # Every other kind is about the bytes or the response: a good caption that does not matter.
    if not given:
        assert scene is not None
        given = caption_of(scene, "")
    m.alt = given
    m.figcaption = given if rng.random() < 0.3 else ""
    return given, "alt"
