"""A WordPiece tokenizer trained on the corpus's own captions, serialisable into a checkpoint.

Why our own: the relevance model must know the words of the pairs it was trained on and nothing
may be fetched from a hub, so the vocabulary is learnt from the captions (`tokenizers`' WordPiece
trainer, BERT-style lower-casing and punctuation splitting) and stored as its JSON string inside
the model checkpoint: a checkpoint is one file that carries its own vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SPECIALS = (PAD, UNK, BOS, EOS)


class WordPiece:
    """Thin wrapper: encode captions to padded id tensors; round-trips through `to_json()`."""

    def __init__(self, tok: object) -> None:
        self.tok = tok
        self.pad_id = int(tok.token_to_id(PAD))  # type: ignore[attr-defined]

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 1) -> WordPiece:
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        tok = Tokenizer(models.WordPiece(unk_token=UNK))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIALS)
        )
        tok.train_from_iterator(list(texts), trainer=trainer)
        return cls(tok)

    @classmethod
    def from_json(cls, data: str) -> WordPiece:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(data))

    def to_json(self) -> str:
        return str(self.tok.to_str())  # type: ignore[attr-defined]

    @property
    def vocab_size(self) -> int:
        return int(self.tok.get_vocab_size())  # type: ignore[attr-defined]

    def token_id(self, token: str) -> int | None:
        tid = self.tok.token_to_id(token)  # type: ignore[attr-defined]
        return None if tid is None else int(tid)

    def ids(self, text: str) -> list[int]:
        return list(self.tok.encode(text).ids) or [self.pad_id]  # type: ignore[attr-defined]

    def batch(self, texts: Sequence[str], max_len: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, L) padded with [PAD], lengths (B,)), every length >= 1."""
        seqs = [self.ids(t)[:max_len] for t in texts]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        return ids, torch.tensor([len(s) for s in seqs], dtype=torch.long)
