"""The structure-content neural language model (SC-NLM, Kiros et al. §4): captions from the embedding.

Why structure variables: the paper factors a sentence into content (the image's embedding) and
structure (the part-of-speech sequence, from the text stage's spaCy tags) and decodes words given
both. Here a GRU reads at step t the previous word and the POS tag of word t, starts from a state
computed from the image vector and is modulated by it at every step (the multiplicative content
gate standing in for the paper's factored three-way layer). At caption time the structure is the
POS template whose training captions lie nearest to the image in the joint space (the paper also
borrows structure from retrieved sentences), and words are decoded greedily, one per tag.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_WORD = re.compile(r"[a-z]+|[^\sa-z]")
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def words_of(caption: str) -> list[str]:
    """Lower-cased word tokens, punctuation split off: the decoder's units (a fallback to spaCy's)."""
    return _WORD.findall(caption.lower())


@dataclass(frozen=True)
class SCNLMConfig:
    dim: int = 128  # the embedding's width (the VSE model's)
    hidden: int = 192
    word_dim: int = 64
    pos_dim: int = 16
    max_len: int = 24


class SCNLM(nn.Module):
    def __init__(self, cfg: SCNLMConfig, vocab: list[str], tags: list[str]) -> None:
        super().__init__()
        self.cfg, self.vocab, self.tags = cfg, vocab, tags
        self.w2i = {w: i for i, w in enumerate(vocab)}
        self.t2i = {t: i for i, t in enumerate(tags)}
        self.templates: list[list[str]] = []  # POS structures seen in training
        self.template_vecs = torch.zeros(0, cfg.dim)  # mean caption embedding of each structure
        self.word = nn.Embedding(len(vocab), cfg.word_dim)
        self.pos = nn.Embedding(len(tags), cfg.pos_dim)
        self.init = nn.Linear(cfg.dim, cfg.hidden)
        self.gate = nn.Linear(cfg.dim, cfg.hidden)
        self.gru = nn.GRU(cfg.word_dim + cfg.pos_dim + cfg.dim, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, len(vocab))

    def forward(self, image: torch.Tensor, prev: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """Logits (B, L, V) of word t given words < t, tag t and the image vector (B, dim)."""
        length = prev.shape[1]
        content = image.unsqueeze(1).expand(-1, length, -1)
        x = torch.cat([self.word(prev), self.pos(tags), content], dim=-1)
        h, _ = self.gru(x, torch.tanh(self.init(image)).unsqueeze(0))
        return self.out(h * torch.sigmoid(self.gate(image)).unsqueeze(1))

    def encode(self, words: Sequence[str], tags: Sequence[str]) -> tuple[list[int], list[int], list[int]]:
        """(previous-word ids, tag ids, target ids) of one caption, ending in </s> under tag EOS."""
        w = [self.w2i.get(x, self.w2i[UNK]) for x in words][: self.cfg.max_len - 1] + [self.w2i[EOS]]
        t = [self.t2i.get(x, 0) for x in tags][: self.cfg.max_len - 1] + [self.t2i[EOS]]
        return [self.w2i[BOS]] + w[:-1], t, w

    @torch.no_grad()
    def structure_for(self, image: torch.Tensor) -> list[str]:
        """The POS template whose training captions are nearest to this image in the joint space."""
        return self.templates[int((self.template_vecs @ image).argmax())]

    @torch.no_grad()
    def generate(self, image: torch.Tensor, structure: Sequence[str] | None = None) -> str:
        """Greedy decoding, one word per structure tag; `image` is one embedding (dim,)."""
        self.eval()
        tags = list(structure if structure is not None else self.structure_for(image)) + [EOS]
        img = image.unsqueeze(0)
        words: list[str] = []
        prev = [self.w2i[BOS]]
        banned = [self.w2i[PAD], self.w2i[BOS], self.w2i[UNK]]
        for t in range(len(tags)):
            tag_ids = torch.tensor([[self.t2i.get(x, 0) for x in tags[: t + 1]]])
            logits = self(img, torch.tensor([prev]), tag_ids)[0, -1]
            logits[banned] = -math.inf
            if tags[t] != EOS:
                logits[self.w2i[EOS]] = -math.inf
            nxt = int(logits.argmax())
            if nxt == self.w2i[EOS]:
                break
            words.append(self.vocab[nxt])
            prev.append(nxt)
        return " ".join(words).replace(" ,", ",").replace(" .", ".").replace(" - ", "-")

    def extra(self) -> dict[str, str]:
        return {"scnlm_config": json.dumps(asdict(self.cfg)), "scnlm_vocab": json.dumps(self.vocab),
                "scnlm_tags": json.dumps(self.tags), "scnlm_templates": json.dumps(self.templates)}


def build_scnlm(cfg: SCNLMConfig, sentences: Sequence[tuple[list[str], list[str]]], min_count: int = 1) -> SCNLM:
    counts = Counter(w for words, _ in sentences for w in words)
    vocab = [PAD, BOS, EOS, UNK] + sorted(w for w, c in counts.items() if c >= min_count)
    tags = [PAD, EOS] + sorted({t for _, tags in sentences for t in tags})
    return SCNLM(cfg, vocab, tags)


def train_scnlm(
    image_vecs: np.ndarray, text_vecs: np.ndarray, sentences: Sequence[tuple[list[str], list[str]]],
    *, steps: int = 1500, batch_size: int = 64, lr: float = 3e-3, seed: int = 0, cfg: SCNLMConfig | None = None,
) -> tuple[SCNLM, list[float]]:
    """Teacher-forced training on (image vector, caption words, caption POS); the VSE stays frozen."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = cfg or SCNLMConfig(dim=int(image_vecs.shape[1]))
    model = build_scnlm(cfg, sentences)
    enc = [model.encode(w, t) for w, t in sentences]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    imgs = torch.from_numpy(np.asarray(image_vecs, dtype=np.float32))
    losses: list[float] = []
    for _ in range(steps):
        model.train()
        idx = rng.choice(len(enc), size=min(batch_size, len(enc)), replace=False)
        width = max(len(enc[i][0]) for i in idx)
        prev = torch.zeros(len(idx), width, dtype=torch.long)
        tags = torch.zeros(len(idx), width, dtype=torch.long)
        tgt = torch.full((len(idx), width), -100, dtype=torch.long)
        for r, i in enumerate(idx):
            p, t, y = enc[i]
            prev[r, : len(p)], tags[r, : len(t)], tgt[r, : len(y)] = torch.tensor(p), torch.tensor(t), torch.tensor(y)
        logits = model(imgs[torch.from_numpy(idx)], prev, tags)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # Structures: every distinct POS sequence, represented by the mean embedding of its captions.
    by_tpl: dict[tuple[str, ...], list[int]] = {}
    for i, (_, t) in enumerate(sentences):
        by_tpl.setdefault(tuple(t), []).append(i)
    model.templates = [list(k) for k in by_tpl]
    vecs = np.stack([np.asarray(text_vecs)[v].mean(0) for v in by_tpl.values()]).astype(np.float32)
    model.template_vecs = torch.from_numpy(vecs / np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-6))
    return model.eval(), losses


def load_scnlm(blob: dict) -> SCNLM | None:
    """The SC-NLM stored in a VSE checkpoint blob, or None when the model was saved without one."""
    if "scnlm_state" not in blob:
        return None
    model = SCNLM(SCNLMConfig(**json.loads(blob["scnlm_config"])), json.loads(blob["scnlm_vocab"]),
                  json.loads(blob["scnlm_tags"]))
    model.load_state_dict(blob["scnlm_state"])
    model.templates = json.loads(blob["scnlm_templates"])
    model.template_vecs = blob["scnlm_template_vecs"].float()
    return model.eval()


def bleu(hypotheses: Sequence[str], references: Sequence[str], n: int = 4) -> float:
    """Corpus BLEU-n (Papineni et al.) with one reference per hypothesis, brevity penalty, +1 smoothing."""
    match, total = [0] * n, [0] * n
    hyp_len = ref_len = 0
    for h, r in zip(hypotheses, references, strict=True):
        hw, rw = words_of(h), words_of(r)
        hyp_len, ref_len = hyp_len + len(hw), ref_len + len(rw)
        for k in range(1, n + 1):
            hc = Counter(tuple(hw[i : i + k]) for i in range(len(hw) - k + 1))
            rc = Counter(tuple(rw[i : i + k]) for i in range(len(rw) - k + 1))
            match[k - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            total[k - 1] += max(len(hw) - k + 1, 0)
    if hyp_len == 0:
        return 0.0
    log_p = sum(math.log((m + 1) / (t + 1)) for m, t in zip(match, total, strict=True)) / n
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return float(bp * math.exp(log_p))
