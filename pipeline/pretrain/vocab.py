"""A word-level vocabulary built from the corpus itself.

Why not a BERT WordPiece vocab: no tokenizer files can be fetched at run time, and the captions of
a crawled corpus (plus the detector's object tags, Oscar-style) define what the model must
predict. The vocabulary is saved next to the checkpoint so a run can be resumed or evaluated.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIALS))
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation; the same rule at build and at use time."""
    return _WORD.findall(text.lower())


class Vocab:
    def __init__(self, words: Iterable[str]) -> None:
        self.itos: list[str] = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, words: Iterable[str]) -> list[int]:
        return [self.stoi.get(w, UNK) for w in words]

    @classmethod
    def build(cls, texts: Iterable[Iterable[str]], min_count: int = 1, max_size: int = 30000) -> Vocab:
        counts: Counter[str] = Counter()
        for words in texts:
            counts.update(words)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked[: max_size - len(SPECIALS)])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.itos))

    @classmethod
    def load(cls, path: Path) -> Vocab:
        itos = json.loads(path.read_text())
        return cls(itos[len(SPECIALS) :])
