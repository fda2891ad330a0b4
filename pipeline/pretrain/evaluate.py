"""Held-out evaluation: ITM accuracy, MLM accuracy, and image<->text retrieval R@1/5/10 by ITM score.

Why retrieval by ITM score: it is UNITER's protocol (every image scored against every caption of a
candidate pool with the matching head, ranks read off the score matrix), so numbers compare with
the papers' at the same pool size; the pool is small on CPU (50) and 1k on a GPU as UNITER's.
The held-out split is by key hash (data.is_heldout), so training never sees these samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from laitkit.pipeline.pretrain.data import with_images
from laitkit.pipeline.pretrain.masking import IGNORE, Masker, pair_batch
from laitkit.pipeline.pretrain.model import PretrainModel
from laitkit.pipeline.pretrain.tokenizer import TextTokenizer


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def distinct_pool(examples: list, size: int) -> list:
    """Up to `size` examples whose captions differ: two equal captions make a rank ambiguous."""
    seen: set[tuple[int, ...]] = set()
    pool = []
    for ex in examples:
        cap = tuple(ex.caption_ids)
        if cap and cap not in seen:
            seen.add(cap)
            pool.append(ex)
        if len(pool) >= size:
            break
    return pool


def recall_at(scores: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Row i's correct column is i: the share of rows whose true column ranks within the top k."""
    true = np.diag(scores)[:, None]
    rank = (scores > true).sum(axis=1)  # ties count in the model's favour, as argsort-based code does
    return {k: float((rank < k).mean()) for k in ks}


@torch.no_grad()
def evaluate(
    model: PretrainModel,
    examples: list,
    tok: TextTokenizer,
    feature_dim: int,
    *,
    pool: int = 50,
    device: torch.device | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    out: dict[str, float] = {"heldout_examples": len(examples)}
    if len(examples) < 2:
        model.train(was_training)
        return out
    # ITM accuracy: each example with its own caption and with the next example's.
    correct = total = 0
    for lo in range(0, len(examples), batch_size):
        chunk = examples[lo : lo + batch_size]
        nxt = [examples[(lo + i + 1) % len(examples)] for i in range(len(chunk))]
        for caps, label in ((chunk, 1), (nxt, 0)):
            keep = [i for i in range(len(chunk)) if label or caps[i].caption_ids != chunk[i].caption_ids]
            if not keep:
                continue
            imgs = [chunk[i] for i in keep]
            b = _to(with_images(pair_batch(imgs, [caps[i] for i in keep], tok, feature_dim), imgs), device)
            pred = model.itm_scores(b) > np.log(0.5)
            correct += int((pred == bool(label)).sum())
            total += len(keep)
    out["itm_acc"] = round(correct / max(total, 1), 4)
    # MLM accuracy on 15 % of caption sub-words, masked the same way every time (seeded).
    masker = Masker(tok, mask_prob=0.15, sgp_prob=0.0, mrm_prob=0.0, itm_share=0.0)
    hit = count = 0
    for lo in range(0, len(examples), batch_size):
        part = examples[lo : lo + batch_size]
        b = _to(with_images(masker(part, np.random.default_rng(lo), feature_dim), part), device)
        enc = model.encoder(b)
        labels = b["mlm_labels"][:, : enc.text.shape[1]]
        sel = labels != IGNORE
        if sel.any():
            pred = model.heads.token(enc.text[sel]).argmax(-1)
            hit += int((pred == labels[sel]).sum())
            count += int(sel.sum())
    out["mlm_acc"] = round(hit / max(count, 1), 4)
    # Retrieval over a pool: score[i, j] = ITM score of image i with caption j.
    cands = distinct_pool(examples, pool)
    p = len(cands)
    if p >= 2:
        scores = np.zeros((p, p), np.float32)
        for i in range(p):
            for lo in range(0, p, batch_size):
                caps = cands[lo : lo + batch_size]
                imgs = [cands[i]] * len(caps)
                b = _to(with_images(pair_batch(imgs, caps, tok, feature_dim), imgs), device)
                scores[i, lo : lo + len(caps)] = model.itm_scores(b).cpu().numpy()
        for name, mat in (("i2t", scores), ("t2i", scores.T)):
            for k, v in recall_at(mat).items():
                out[f"{name}_r{k}"] = round(v, 4)
        out["pool"] = p
        out["chance_r1"] = round(1 / p, 4)
    model.train(was_training)
    return out


def evaluate_checkpoint(checkpoint: Path, shards_dir: Path, *, pool: int = 50, limit: int = 500) -> dict[str, float]:
    """`laitkit pretrain eval`: load a run folder (or its checkpoint.pt), score its held-out split of `shards_dir`."""
    from laitkit.pipeline.pretrain.train import load_for_eval

    model, spec = load_for_eval(Path(checkpoint), Path(shards_dir))
    from laitkit.pipeline.pretrain.data import heldout_examples

    examples = heldout_examples(spec, limit)
    if not examples:
        raise ValueError(f"no held-out sample with regions and a caption in {shards_dir}")
    tok = TextTokenizer.load(Path(spec.tokenizer_dir))
    return evaluate(model, examples, tok, spec.feature_dim, pool=pool)
