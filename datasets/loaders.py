"""Hugging Face-ready batches from laitkit shards: LXMERT and VisualBERT take them as they are.

Why: every user of region features otherwise writes the same collate by hand: float16 features
to float32, boxes divided by the image size, padding to the longest image in the batch with a
visual attention mask, captions tokenised with the model's tokenizer. `hf_batches(shards, model=
"lxmert" | "visualbert", tokenizer=..., batch_size=...)` yields dicts for which `model(**batch)`
works unchanged (`LxmertForPreTraining`, `VisualBertForPreTraining` and their siblings):

- LXMERT: `input_ids`, `attention_mask`, `token_type_ids`, `visual_feats` (B, N, D),
  `visual_pos` (B, N, 4) xyxy in [0, 1], `visual_attention_mask` (B, N) float.
- VisualBERT: `input_ids`, `attention_mask`, `token_type_ids`, `visual_embeds` (B, N, D),
  `visual_attention_mask` and `visual_token_type_ids` (B, N) long.

`RegionShardDataset` is a torch `IterableDataset` over the shards' tars that splits the work by
node (torch.distributed rank, else the RANK / WORLD_SIZE environment) and by DataLoader worker:
whole shards when there are at least as many shards as readers, else every n-th sample, so each
sample is read by exactly one reader either way. Only kept samples with at least one box are used.
Only this module imports torch (when it is imported): the rest of `laitkit.datasets` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from laitkit.errors import UserError

MODELS = ("lxmert", "visualbert")


def _torch_dataset_base() -> type:
    from torch.utils.data import IterableDataset

    return IterableDataset


def reader_rank(node: int | None = None, nodes: int | None = None) -> tuple[int, int]:
    """(rank, world size) of this process among all readers: nodes x DataLoader workers.

    The node comes from `node`/`nodes` when given, else torch.distributed, else RANK / WORLD_SIZE.
    """
    import torch.distributed as dist
    from torch.utils.data import get_worker_info

    if node is None or nodes is None:
        if dist.is_available() and dist.is_initialized():
            node, nodes = dist.get_rank(), dist.get_world_size()
        else:
            node, nodes = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return node * workers + worker, nodes * workers


def tar_files(shards: str | Path | Sequence[str | Path]) -> list[Path]:
    """The tar files of a shard directory (completed shards, either layout) or of an explicit list."""
    from laitkit.datasets.shards import list_shard_files

    items = [shards] if isinstance(shards, str | Path) else list(shards)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if not p.exists():
            raise UserError(f"loaders: no such shard or directory: {p}")
        files.extend(list_shard_files(p, "tar") if p.is_dir() else [p])
    return files


class RegionShardDataset(_torch_dataset_base()):  # type: ignore[misc]
    """Per kept sample with boxes: caption, float32 features (N, D) and normalised xyxy boxes (N, 4)."""

    def __init__(self, shards: str | Path | Sequence[str | Path], *, max_boxes: int | None = None,
                 rank: int | None = None, world_size: int | None = None) -> None:
        super().__init__()
        self.files = tar_files(shards)
        if not self.files:
            raise UserError(f"loaders: no shards found in {shards}")
        self.max_boxes = max_boxes
        self.rank, self.world_size = rank, world_size  # this node's place (else torch.distributed / env)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from laitkit.datasets.shards import iter_tar

        rank, world = reader_rank(self.rank, self.world_size)
        by_shard = len(self.files) >= world
        files = self.files[rank::world] if by_shard else self.files
        i = -1
        for path in files:
            for s in iter_tar(path):
                i += 1
                if not by_shard and i % world != rank:
                    continue
                r = s.regions
                if not s.kept or r is None or r.num_boxes == 0:
                    continue
                n = r.num_boxes if self.max_boxes is None else min(r.num_boxes, self.max_boxes)
                b = r.boxes[:n].astype(np.float32)
                pos = np.stack([b[:, 0] / r.image_w, b[:, 1] / r.image_h, b[:, 2] / r.image_w,
                                b[:, 3] / r.image_h], axis=1).clip(0.0, 1.0)
                yield {"key": s.key, "caption": s.caption, "features": r.features[:n].astype(np.float32),
                       "pos": pos.astype(np.float32)}


def make_collate(model: str, tokenizer: Any, *, max_length: int = 40) -> Callable[[list[dict[str, Any]]], dict]:
    """A collate turning `RegionShardDataset` items into keyword arguments of the Hugging Face `model`."""
    if model not in MODELS:
        raise UserError(f"loaders: model must be one of {MODELS}, got {model!r}")

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        text = tokenizer([it["caption"] for it in items], padding="longest", truncation=True, max_length=max_length,
                         return_tensors="pt")
        input_ids = text["input_ids"]
        out: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": text.get("attention_mask", torch.ones_like(input_ids)),
            "token_type_ids": text.get("token_type_ids", torch.zeros_like(input_ids)),
        }
        n = max(len(it["features"]) for it in items)
        d = items[0]["features"].shape[1]
        feats = torch.zeros((len(items), n, d), dtype=torch.float32)
        pos = torch.zeros((len(items), n, 4), dtype=torch.float32)
        mask = torch.zeros((len(items), n), dtype=torch.long)
        for j, it in enumerate(items):
            k = len(it["features"])
            feats[j, :k] = torch.from_numpy(it["features"])
            pos[j, :k] = torch.from_numpy(it["pos"])
            mask[j, :k] = 1
        if model == "lxmert":
            out.update(visual_feats=feats, visual_pos=pos, visual_attention_mask=mask.float())
        else:
            out.update(visual_embeds=feats, visual_attention_mask=mask, visual_token_type_ids=torch.ones_like(mask))
        return out

    return collate


def hf_batches(shards: str | Path | Sequence[str | Path], model: str = "lxmert", *, tokenizer: Any,
               batch_size: int = 32, num_workers: int = 0, max_length: int = 40,
               max_boxes: int | None = None) -> Iterator[dict[str, Any]]:
    """Batches for `model(**batch)`; split across nodes and DataLoader workers (see the module docstring)."""
    from torch.utils.data import DataLoader

    ds = RegionShardDataset(shards, max_boxes=max_boxes)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers,
                        collate_fn=make_collate(model, tokenizer, max_length=max_length))
    yield from loader
