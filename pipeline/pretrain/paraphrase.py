"""Rule-based caption paraphrases: UNIMO's positive rewrites without a translation model.

Why rules: UNIMO makes positive texts for its cross-modal contrastive loss by back-translation
(English -> another language -> English), which needs two translation models; none is reachable
here (no model weights are downloaded, ever). A paraphrase that keeps the caption true of its
image is what the loss needs from a positive, and for captions of scenes a short hand-written list
gets most of the way:
- `synonym`: one word or phrase swapped for a synonym ("beside" <-> "next to", "large" -> "big");
- `hypernym`: one shape noun replaced by "shape" / "shapes" (less specific, still true);
- `determiner`: "a red circle" -> "one red circle", "two" <-> "a pair of";
- `template`: a framing prefix removed ("there is", "a photo of", ...) or added ("there is a
  ...", "there are two ...", "a photo of ...").
Each rule either rewrites the caption or does not apply; `paraphrase` tries them in random order
and returns the first rewrite that differs from the caption, or None. It works on lower-case words
(laitkit's tokenizer is uncased) and never touches a word it has no rule for, so nothing false is
introduced. It stands in for back-translation; it does not vary syntax the way a translation does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

# Bidirectional where both directions keep the meaning; each entry: (from words, to words).
SYNONYMS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("beside",), ("next", "to")),
    (("next", "to"), ("beside",)),
    (("beneath",), ("below",)),
    (("below",), ("beneath",)),
    (("under",), ("below",)),
    (("above",), ("over",)),
    (("large",), ("big",)),
    (("big",), ("large",)),
    (("small",), ("little",)),
    (("little",), ("small",)),
    (("photo",), ("picture",)),
    (("picture",), ("photo",)),
    (("to", "the", "left", "of"), ("left", "of")),
    (("on", "the", "left", "of"), ("left", "of")),
    (("to", "the", "right", "of"), ("right", "of")),
    (("on", "the", "right", "of"), ("right", "of")),
    (("on", "top", "of"), ("on",)),
    (("sitting", "on"), ("on",)),
    (("resting", "on"), ("on",)),
)
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "pentagon", "diamond", "cross", "arrow", "heart")
PLURAL_SHAPES = {s + ("es" if s.endswith(("s", "x", "sh", "ch")) else "s"): s for s in SHAPES}
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white", "grey", "gray", "brown", "pink")
SIZES = ("small", "large", "big", "little", "tiny")
NUMBERS = ("two", "three", "four", "five")
# Framing prefixes: the rest of the caption is the description either way.
PREFIXES: tuple[tuple[str, ...], ...] = (
    ("a", "photo", "of"), ("a", "picture", "of"), ("here", "we", "see"), ("close", "-", "up", "of"),
    ("there", "is"), ("there", "are"), ("a", "still", "life", "with"), ("shapes", ":"),
)
_DESCRIPTORS = frozenset((*SHAPES, *PLURAL_SHAPES, *COLOURS, *SIZES))
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")

Rule = Callable[[list[str], np.random.Generator], "list[str] | None"]


def words_of(text: str) -> list[str]:
    """Lower-case words and punctuation marks, the units the rules read."""
    return _WORD.findall(text.lower())


def _matches(words: list[str], phrase: tuple[str, ...]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(words) - n + 1) if tuple(words[i : i + n]) == phrase]


def synonym(words: list[str], rng: np.random.Generator) -> list[str] | None:
    """One occurrence of one listed phrase swapped for its synonym."""
    hits = [(i, src, dst) for src, dst in SYNONYMS for i in _matches(words, src)]
    if not hits:
        return None
    i, src, dst = hits[int(rng.integers(len(hits)))]
    return words[:i] + list(dst) + words[i + len(src) :]


def hypernym(words: list[str], rng: np.random.Generator) -> list[str] | None:
    """One shape noun replaced by "shape" (a plural by "shapes")."""
    hits = [i for i, w in enumerate(words) if w in SHAPES or w in PLURAL_SHAPES]
    if not hits:
        return None
    i = hits[int(rng.integers(len(hits)))]
    out = words[:i] + ["shapes" if words[i] in PLURAL_SHAPES else "shape"] + words[i + 1 :]
    if i and out[i - 1] == "an":  # "an arrow" -> "a shape"
        out[i - 1] = "a"
    return out


def determiner(words: list[str], rng: np.random.Generator) -> list[str] | None:
    """"a"/"an" before a described thing -> "one"; "two" <-> "a pair of"."""
    hits: list[tuple[int, int, list[str]]] = []
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in ("a", "an") and nxt in _DESCRIPTORS:
            hits.append((i, 1, ["one"]))
        elif w == "two" and nxt in _DESCRIPTORS:
            hits.append((i, 1, ["a", "pair", "of"]))
    hits += [(i, 3, ["two"]) for i in _matches(words, ("a", "pair", "of"))]
    if not hits:
        return None
    i, n, new = hits[int(rng.integers(len(hits)))]
    return words[:i] + new + words[i + n :]


def template(words: list[str], rng: np.random.Generator) -> list[str] | None:
    """A framing prefix removed, or, when there is none, "there is/are" or "a photo of" added."""
    for p in PREFIXES:
        if tuple(words[: len(p)]) == p and len(words) > len(p):
            return words[len(p) :]
    if not words:
        return None
    if words[0] in ("a", "an", "one") and len(words) > 1 and words[1] in _DESCRIPTORS:
        return ["there", "is", *words] if rng.random() < 0.5 else ["a", "photo", "of", *words]
    if words[0] in NUMBERS:
        return ["there", "are", *words]
    return None


RULES: dict[str, Rule] = {"synonym": synonym, "hypernym": hypernym, "determiner": determiner, "template": template}


def paraphrase(text: str, rng: np.random.Generator, rules: tuple[str, ...] = tuple(RULES)) -> str | None:
    """A rewrite of `text` by the first of `rules` (tried in random order) that changes it; None
    when none applies. Words are joined by spaces (the tokenizer splits punctuation again)."""
    words = words_of(text)
    for k in rng.permutation(len(rules)):
        out = RULES[rules[int(k)]](words, rng)
        if out is not None and out != words:
            return " ".join(out)
    return None
