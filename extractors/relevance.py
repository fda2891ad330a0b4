"""Image-text relevance: the score that cuts mismatched pairs (LAIT step), and the older scorer.

Two scorers (`RelevanceConfig.scorer`): "vse" (default) is the visual-semantic embedding over the
regions stage's features with a threshold calibrated at training time (`extractors/vse_*`,
`laitkit relevance ...`); "tiny-cnn" is the earlier classifier below, kept for runs without region
features. Why the older one was a model of our own: ImageBERT's LAIT scores every (image, text)
pair with a weakly trained relevance model and drops pairs below a threshold. No CLIP weights can be
fetched, and a crawl recipe must not depend on them anyway, so laitkit ships a tiny trainable scorer: a 4-layer CNN
(strided stem) over a 64x64 thumbnail and a hashed bag-of-words text tower (no vocabulary file to ship), joined
by a bilinear score and trained with binary cross-entropy on matched vs shuffled pairs. A user
retrains it on their own pairs (`laitkit crawl train-relevance`) or points `weights` elsewhere.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from laitkit.extractors.relevance_config import BUILTIN, SCORERS, TINY_CNN_THRESHOLD, RelevanceConfig

__all__ = ["BUILTIN", "SCORERS", "TINY_CNN_THRESHOLD", "RelevanceConfig", "make_scorer", "text_ids"]

THUMB = 64
_WORD = re.compile(r"[a-z]+")


def text_ids(text: str, buckets: int) -> list[int]:
    """Hashed unigrams and bigrams: stable across processes (crc32), no vocab to ship."""
    words = _WORD.findall(text.lower())
    grams = words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]
    return [zlib.crc32(g.encode()) % buckets for g in grams] or [0]


def thumbnail(image: bytes | Image.Image) -> np.ndarray:
    """RGB 64x64 float in [0, 1], CHW; raises on undecodable bytes (the caller records it)."""
    img = Image.open(io.BytesIO(image)) if isinstance(image, bytes | bytearray) else image
    img = img.convert("RGB").resize((THUMB, THUMB), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0


class RelevanceModel(nn.Module):
    def __init__(self, buckets: int = 4096, dim: int = 64) -> None:
        super().__init__()
        self.buckets = buckets

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.image = nn.Sequential(stem, block(16, 32), block(32, 64), block(64, dim), nn.AdaptiveAvgPool2d(1))
        self.text = nn.EmbeddingBag(buckets, dim, mode="mean")
        self.text_proj = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.bilinear = nn.Bilinear(dim, dim, 1)

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        ids = [text_ids(c, self.buckets) for c in captions]
        flat = torch.tensor([i for seq in ids for i in seq], dtype=torch.long)
        offsets = torch.tensor(np.cumsum([0] + [len(s) for s in ids[:-1]]), dtype=torch.long)
        return self.text_proj(self.text(flat.to(self.bilinear.weight.device), offsets.to(flat.device)))

    def forward(self, thumbs: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        """Logits of "this caption describes this image", one per pair."""
        img = self.image(thumbs).flatten(1)
        return self.bilinear(img, self.encode_text(captions)).squeeze(1)


def builtin_weights() -> Path:
    return Path(str(resources.files("laitkit.extractors").joinpath("weights", "relevance_tiny.pt")))


class RelevanceScorer:
    """Loads the model once (one per Ray actor) and scores batches of (image bytes, caption)."""

    def __init__(self, cfg: RelevanceConfig = RelevanceConfig(scorer="tiny-cnn")) -> None:
        self.cfg = cfg
        self.threshold = TINY_CNN_THRESHOLD if cfg.threshold is None else float(cfg.threshold)
        self.needs_regions = False
        path = builtin_weights() if cfg.weights == BUILTIN else Path(cfg.weights)
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model = RelevanceModel(int(state["buckets"]), int(state["dim"]))
        self.model.load_state_dict(state["model"])
        self.model.eval().to(cfg.device)

    @torch.no_grad()
    def score(self, images: Sequence[bytes], captions: Sequence[str]) -> np.ndarray:
        """Probability per pair; NaN where the image cannot be decoded."""
        out = np.full(len(images), np.nan, dtype=np.float64)
        for start in range(0, len(images), self.cfg.batch_size):
            idx, thumbs = [], []
            for i in range(start, min(start + self.cfg.batch_size, len(images))):
                try:
                    thumbs.append(thumbnail(images[i]))
                    idx.append(i)
                except Exception:  # noqa: BLE001 - an undecodable image gets NaN, decided upstream
                    continue
            if not idx:
                continue
            x = torch.from_numpy(np.stack(thumbs)).to(self.cfg.device)
            logits = self.model(x, [captions[i] for i in idx])
            out[idx] = torch.sigmoid(logits).double().cpu().numpy()
        return out

    def score_samples(self, samples: Sequence) -> tuple[np.ndarray, list[str]]:
        """The `VSEScorer` interface: scores, and why a sample could not be scored."""
        out = self.score([s.image for s in samples], [s.caption for s in samples])
        return out, ["image could not be decoded" if np.isnan(v) else "" for v in out]


def make_scorer(cfg: RelevanceConfig) -> object:
    """The configured scorer: `.score_samples(samples)`, `.threshold`, `.needs_regions`."""
    if cfg.scorer == "tiny-cnn":
        return RelevanceScorer(cfg)
    from laitkit.extractors.vse_scorer import VSEScorer, builtin_vse

    scorer = VSEScorer(builtin_vse() if cfg.weights == BUILTIN else cfg.weights, cfg.device)
    if cfg.threshold is not None:
        scorer.threshold = float(cfg.threshold)
    return scorer


def train_relevance(
    pairs: Sequence[tuple[Image.Image, str]], *, steps: int = 400, batch_size: int = 64, seed: int = 0,
    buckets: int = 4096, dim: int = 64, lr: float = 2e-3,
) -> tuple[RelevanceModel, dict[str, float]]:
    """Train on matched pairs; negatives are the same images with another pair's caption.

    Returns the model and held-out accuracy (last 10 % of pairs, matched vs shuffled).
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    thumbs = np.stack([thumbnail(img) for img, _ in pairs])
    captions = [c for _, c in pairs]
    n_val = max(len(pairs) // 10, 1)
    train_idx = np.arange(len(pairs) - n_val)
    val_idx = np.arange(len(pairs) - n_val, len(pairs))
    model = RelevanceModel(buckets, dim)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        model.train()
        idx = rng.choice(train_idx, size=min(batch_size, len(train_idx)), replace=False)
        neg = _shuffled_captions(rng, idx, train_idx, captions)
        x = torch.from_numpy(thumbs[np.concatenate([idx, idx])])
        texts = [captions[i] for i in idx] + neg
        y = torch.cat([torch.ones(len(idx)), torch.zeros(len(idx))])
        loss = loss_fn(model(x, texts), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        neg = _shuffled_captions(rng, val_idx, val_idx if len(val_idx) > 1 else train_idx, captions)
        x = torch.from_numpy(thumbs[np.concatenate([val_idx, val_idx])])
        p = torch.sigmoid(model(x, [captions[i] for i in val_idx] + neg)).numpy()
    y = np.concatenate([np.ones(len(val_idx)), np.zeros(len(val_idx))])
    return model, {"val_accuracy": float(((p >= 0.5) == y).mean()), "val_pairs": float(len(y))}


def _shuffled_captions(rng: np.random.Generator, idx: np.ndarray, pool: np.ndarray, captions: list[str]) -> list[str]:
    out = []
    for i in idx:
        j = int(rng.choice(pool))
        tries = 0
        while captions[j] == captions[i] and tries < 10:
            j, tries = int(rng.choice(pool)), tries + 1
        out.append(captions[j])
    return out


def save_relevance(model: RelevanceModel, path: Path, meta: dict[str, float] | None = None) -> None:
    """A plain tensor dict, so loading works with `torch.load(weights_only=True)`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "buckets": model.buckets, "dim": model.bilinear.in1_features}
    state.update({k: torch.tensor(v) for k, v in (meta or {}).items()})
    torch.save(state, path)
