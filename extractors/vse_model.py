"""The visual-semantic embedding model: config, the two towers, scoring, and its one-file checkpoint.

Why one file per model: the score is only meaningful with the exact tokenizer, architecture,
threshold and the description of the data it was trained on, so all of them travel together in a
`torch.save` dict of tensors and strings that loads with `torch.load(weights_only=True)` (no
pickle of code). A run report can then say what the model knows ("trained on the synthetic web").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from laitkit.errors import UserError
from laitkit.extractors.vse_encoders import BowTextEncoder, GRUTextEncoder, PixelEncoder, RegionEncoder
from laitkit.extractors.vse_inputs import BoxSet, collate_boxes, thumbnails
from laitkit.extractors.vse_tokenizer import WordPiece

FORMAT = "laitkit-vse-1"
IMAGE_KINDS = ("regions", "pixels")
TEXT_KINDS = ("gru", "bow")


@dataclass(frozen=True, kw_only=True)
class VSEConfig:
    image: str = "regions"  # "regions" (pooled region features) | "pixels" (thumbnail CNN)
    text: str = "gru"  # "gru" | "bow" (the paper's linear bag of words)
    pool: str = "attention"  # region pooling: "attention" | "mean"
    dim: int = 128
    feat_dim: int = 256  # region feature width (the detector's)
    num_obj: int = 1600
    num_attr: int = 400
    vocab_size: int = 1000
    max_len: int = 40
    loss: str = "both"  # "vse++" | "infonce" | "both"
    margin: float = 0.2
    temperature: float = 0.05

    def __post_init__(self) -> None:
        if self.image not in IMAGE_KINDS:
            raise UserError(f"relevance: image encoder must be one of {IMAGE_KINDS}, got {self.image!r}")
        if self.text not in TEXT_KINDS:
            raise UserError(f"relevance: text encoder must be one of {TEXT_KINDS}, got {self.text!r}")
        if self.pool not in ("attention", "mean"):
            raise UserError(f"relevance: pool must be 'attention' or 'mean', got {self.pool!r}")
        if self.loss not in ("vse++", "infonce", "both"):
            raise UserError(f"relevance: loss must be vse++, infonce or both, got {self.loss!r}")


@dataclass
class Calibration:
    """The cut: pairs scoring below `threshold` are mismatches; scores of the held-out pairs it came from."""

    threshold: float = 0.0
    target_precision: float = 0.9
    precision: float = float("nan")
    recall: float = float("nan")
    matched: list[float] = field(default_factory=list)
    shuffled: list[float] = field(default_factory=list)


class VSEModel(nn.Module):
    """Image tower + text tower; `score` is the cosine of their embeddings, in [-1, 1]."""

    def __init__(self, cfg: VSEConfig, tokenizer: WordPiece) -> None:
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.image_enc: nn.Module = (
            RegionEncoder(cfg.feat_dim, cfg.num_obj, cfg.num_attr, cfg.dim, cfg.pool)
            if cfg.image == "regions" else PixelEncoder(cfg.dim)
        )
        text_cls = GRUTextEncoder if cfg.text == "gru" else BowTextEncoder
        self.text_enc = text_cls(tokenizer.vocab_size, cfg.dim, tokenizer.pad_id)
        self.data: dict[str, Any] = {}
        self.calibration = Calibration()
        # Not a submodule (a plain dict), so the embedding's state_dict stays the same with or without it.
        self.extras: dict[str, Any] = {}

    # --- encoding ---------------------------------------------------------------------------------

    def embed_images(self, images: Sequence[BoxSet] | torch.Tensor) -> torch.Tensor:
        """BoxSets (regions) or a (B, 3, 64, 64) thumbnail tensor (pixels) → (B, dim)."""
        if self.cfg.image == "regions":
            return self.image_enc(collate_boxes(images, self.cfg.feat_dim))  # type: ignore[arg-type]
        return self.image_enc(images)

    def embed_texts(self, captions: Sequence[str]) -> torch.Tensor:
        ids, lengths = self.tokenizer.batch(captions, self.cfg.max_len)
        return self.text_enc(ids, lengths)

    def word_vector(self, word: str) -> torch.Tensor:
        return self.text_enc.word_vector(torch.tensor(self.tokenizer.ids(word)))

    @torch.no_grad()
    def image_vectors(self, images: Sequence[BoxSet] | torch.Tensor, batch: int = 256) -> np.ndarray:
        self.eval()
        out = [self.embed_images(images[i : i + batch]).numpy() for i in range(0, len(images), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.cfg.dim), dtype=np.float32)

    @torch.no_grad()
    def text_vectors(self, captions: Sequence[str], batch: int = 256) -> np.ndarray:
        self.eval()
        out = [self.embed_texts(captions[i : i + batch]).numpy() for i in range(0, len(captions), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.cfg.dim), dtype=np.float32)

    def score_pairs(self, images: Sequence[BoxSet] | torch.Tensor, captions: Sequence[str]) -> np.ndarray:
        """Cosine per (image, caption) pair, float64."""
        iv, tv = self.image_vectors(images), self.text_vectors(captions)
        return (iv * tv).sum(1).astype(np.float64)

    def score_bytes(self, images: Sequence[bytes], captions: Sequence[str]) -> np.ndarray:
        """Pixels models only: score raw image bytes; NaN where an image does not decode."""
        out = np.full(len(images), np.nan, dtype=np.float64)
        thumbs, idx = thumbnails(images)
        if idx:
            out[idx] = self.score_pairs(thumbs, [captions[i] for i in idx])
        return out


# --- checkpoint -----------------------------------------------------------------------------------


def save_model(model: VSEModel, path: Path) -> Path:
    """One `.pt` with state, config, tokenizer, data description and calibration (tensors + strings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cal = asdict(model.calibration)
    blob = {
        "format": FORMAT,
        "config": json.dumps(asdict(model.cfg)),
        "tokenizer": model.tokenizer.to_json(),
        "data": json.dumps(model.data, sort_keys=True),
        "calibration": json.dumps({k: v for k, v in cal.items() if k not in ("matched", "shuffled")}),
        "cal_matched": torch.tensor(cal["matched"], dtype=torch.float32),
        "cal_shuffled": torch.tensor(cal["shuffled"], dtype=torch.float32),
        "state": model.state_dict(),
    }
    sc = model.extras.get("scnlm")
    if sc is not None:
        blob.update(sc.extra())
        blob["scnlm_state"] = sc.state_dict()
        blob["scnlm_template_vecs"] = sc.template_vecs.half()
    torch.save(blob, path)
    return path


def load_model(path: str | Path) -> VSEModel:
    """Safe load (`weights_only=True`); a directory means its `model.pt`."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.exists():
        raise UserError(f"relevance model {str(p)!r} does not exist")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's bad path
        raise UserError(f"{p}: not a loadable relevance model ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UserError(f"{p}: not a laitkit VSE relevance model (format {FORMAT} expected)")
    model = VSEModel(VSEConfig(**json.loads(blob["config"])), WordPiece.from_json(blob["tokenizer"]))
    model.load_state_dict(blob["state"])
    model.data = json.loads(blob["data"])
    cal = json.loads(blob["calibration"])
    model.calibration = Calibration(
        **cal, matched=blob["cal_matched"].tolist(), shuffled=blob["cal_shuffled"].tolist()
    )
    from laitkit.extractors.vse_scnlm import load_scnlm

    sc = load_scnlm(blob)
    if sc is not None:
        model.extras["scnlm"] = sc
    return model.eval()
