"""WordPiece sub-words for captions and tags, trained from the shards or read from a BERT `vocab.txt`.

Why WordPiece via Hugging Face `tokenizers`: it is what BERT-initialised VLP models (UNITER,
LXMERT, Oscar, VisualBERT) use, a user's `vocab.txt` drops in unchanged, and the trainer consumes
an iterator, so building the vocabulary is one streaming pass that never holds the corpus in RAM.
Why offsets matter: the text stage annotates spaCy tokens (POS, scene-graph node spans), the model
sees sub-words; `align` maps one onto the other by character offsets, so ERNIE-ViL-style masking
of a node masks exactly that node's sub-words.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.txt"


@dataclass(frozen=True)
class Encoded:
    """A caption as sub-words: ids, character offsets into the caption, and source word per sub-word."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int]  # the pre-tokenizer's word index of each sub-word


def _bert_pipeline(model: models.Model) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return tok


class TextTokenizer:
    """A BERT-style uncased WordPiece tokenizer plus the special ids the batches need."""

    def __init__(self, tok: Tokenizer) -> None:
        self.tok = tok
        missing = [s for s in SPECIALS if tok.token_to_id(s) is None]
        if missing:
            raise ValueError(f"vocabulary lacks the special token(s) {', '.join(missing)}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (tok.token_to_id(s) for s in SPECIALS)
        self.special_ids = frozenset((self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id))

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode_raw(self, text: str) -> Any:
        """The `tokenizers.Encoding` itself (no specials): the loader reads only the lists it needs."""
        return self.tok.encode(text, add_special_tokens=False)

    def encode(self, text: str) -> Encoded:
        enc = self.tok.encode(text, add_special_tokens=False)
        words = [-1 if w is None else int(w) for w in enc.word_ids]
        return Encoded(list(enc.ids), [tuple(o) for o in enc.offsets], words)

    def encode_words(self, words: list[str]) -> list[int]:
        """Sub-word ids of already separate words (detector tags), no specials."""
        if not words:
            return []
        return list(self.tok.encode(words, is_pretokenized=True, add_special_tokens=False).ids)

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode(list(ids))

    def save(self, out_dir: Path) -> None:
        """`tokenizer.json` (the full pipeline) and `vocab.txt` (one token per line, by id)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.tok.save(str(out_dir / TOKENIZER_FILE))
        vocab = sorted(self.tok.get_vocab().items(), key=lambda kv: kv[1])
        (out_dir / VOCAB_FILE).write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TextTokenizer:
        """From a folder (its `tokenizer.json`, else its `vocab.txt`), a `tokenizer.json` or a `vocab.txt`."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE if (path / TOKENIZER_FILE).exists() else path / VOCAB_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer at {path}")
        if path.suffix == ".json":
            return cls(Tokenizer.from_file(str(path)))
        return from_vocab_txt(path)


def from_vocab_txt(path: Path) -> TextTokenizer:
    """A user's BERT `vocab.txt` (uncased), with BERT's normaliser and pre-tokenizer."""
    vocab: dict[str, int] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        token = line.rstrip("\n")
        if token and token not in vocab:
            vocab[token] = len(vocab)
    return TextTokenizer(_bert_pipeline(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100)))


def train_wordpiece(texts: Iterator[str], vocab_size: int = 8000, min_frequency: int = 1) -> TextTokenizer:
    """Train an uncased WordPiece vocabulary from a stream of texts (consumed once, never stored)."""
    tok = _bert_pipeline(models.WordPiece(unk_token="[UNK]"))
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIALS), show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return TextTokenizer(tok)


def word_char_spans(caption: str, words: list[str]) -> list[tuple[int, int] | None]:
    """Character span of each text-stage token in the caption (tokens are substrings, in order)."""
    spans: list[tuple[int, int] | None] = []
    pos = 0
    low = caption.lower()
    for w in words:
        at = caption.find(w, pos)
        if at < 0:
            at = low.find(w.lower(), pos)
        if at < 0 or not w:
            spans.append(None)
            continue
        spans.append((at, at + len(w)))
        pos = at + len(w)
    return spans


def align(offsets: list[tuple[int, int]], char_span: tuple[int, int]) -> tuple[int, int] | None:
    """[first, last+1) of the sub-words that overlap `char_span`; None when none does."""
    a, b = char_span
    hit = [i for i, (s, e) in enumerate(offsets) if s < b and e > a]
    return (hit[0], hit[-1] + 1) if hit else None


def subword_words(offsets: list[tuple[int, int]], spans: list[tuple[int, int] | None]) -> list[int]:
    """Per sub-word, the index of the text-stage token it overlaps (-1 when none); one linear pass."""
    out = [-1] * len(offsets)
    w = 0
    for i, (s, e) in enumerate(offsets):
        while w < len(spans) and (spans[w] is None or spans[w][1] <= s):
            w += 1
        if w < len(spans) and spans[w][0] < e:
            out[i] = w
    return out


def write_info(out_dir: Path, info: dict) -> None:
    (out_dir / "tokenizer_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
