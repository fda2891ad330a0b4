"""The pretraining loop: stream shards, mask, optimise, log one JSON line per step, checkpoint.

Why its own loop rather than a trainer framework: the stage must run the same on a 2-core laptop
(demo) and a GPU box, resume from its checkpoint, and leave numbers (metrics.jsonl) that the
report reads; a hundred lines of plain torch do that with nothing hidden.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from laitkit.pipeline.pretrain.data import Collator, Example, iter_examples, vocab_from_examples
from laitkit.pipeline.pretrain.model import ModelConfig, VLEncoder, pretraining_losses
from laitkit.pipeline.pretrain.vocab import Vocab

log = logging.getLogger(__name__)
TASKS = ("mlm", "mrm", "itm", "tags", "sgp")


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    enabled: bool = True
    steps: int = 30
    batch_size: int = 8
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    lr: float = 3e-4
    warmup: int = 5
    device: str = "auto"
    seed: int = 0
    tasks: tuple[str, ...] = TASKS

    def __post_init__(self) -> None:
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown pretraining task(s) {sorted(unknown)}; known: {', '.join(TASKS)}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _batches(shards: list[Path], cfg: PretrainConfig) -> Iterator[list[Example]]:
    """Full batches over epochs; an epoch's ragged tail is dropped (one-sample steps are noise)."""
    epoch = 0
    while True:
        buf: list[Example] = []
        seen = 0
        for ex in iter_examples(shards, seed=cfg.seed, epoch=epoch):
            seen += 1
            buf.append(ex)
            if len(buf) == cfg.batch_size:
                yield buf
                buf = []
        if buf and seen < cfg.batch_size:  # a corpus smaller than one batch: use what there is
            yield buf
        if seen == 0:
            raise ValueError("the shards hold no sample with regions and a caption: nothing to pretrain on")
        epoch += 1


def pretrain(shards_dir: Path, out_dir: Path, cfg: PretrainConfig) -> dict:
    """Train for `cfg.steps` steps on the tars in `shards_dir`; write checkpoint + metrics to `out_dir`."""
    shards = sorted(Path(shards_dir).glob("*.tar"))
    if not shards:
        raise ValueError(f"no .tar shards in {shards_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)

    first = list(iter_examples(shards, seed=cfg.seed, epoch=0))
    if not first:
        raise ValueError("the shards hold no sample with regions and a caption: nothing to pretrain on")
    vocab = vocab_from_examples(first)
    mcfg = ModelConfig(
        vocab_size=len(vocab),
        feature_dim=int(first[0].features.shape[1]),
        hidden=cfg.hidden,
        layers=cfg.layers,
        heads=cfg.heads,
    )
    model = VLEncoder(mcfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(cfg.warmup, 1)) * 0.5 * (1 + math.cos(math.pi * s / max(cfg.steps, 1)))
    )
    collate = Collator(vocab, seed=cfg.seed)
    metrics_path = out_dir / "metrics.jsonl"
    t0 = time.perf_counter()
    history: list[dict] = []
    with metrics_path.open("w") as mf:
        batches = _batches(shards, cfg)
        for step in range(cfg.steps):
            batch = {k: v.to(device) for k, v in collate(next(batches)).items()}
            model.train()
            losses = pretraining_losses(model, batch, cfg.tasks)
            total = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            row = {"step": step, "loss": float(total.detach()), **{k: float(v.detach()) for k, v in losses.items()}}
            row["samples"] = int(batch["input_ids"].shape[0])
            history.append(row)
            mf.write(json.dumps(row) + "\n")
            if step % 10 == 0 or step == cfg.steps - 1:
                log.info("pretrain step %d loss %.3f %s", step, row["loss"], {k: round(v, 3) for k, v in row.items()})
    elapsed = time.perf_counter() - t0
    torch.save(model.state_dict(), out_dir / "model.pt")
    (out_dir / "model_config.json").write_text(json.dumps(asdict(mcfg)))
    vocab.save(out_dir / "vocab.json")
    return summarise(history, elapsed, device, len(first), len(vocab))


def summarise(history: list[dict], elapsed: float, device: torch.device, examples: int, vocab: int) -> dict:
    """First-vs-last loss per task over a window, so the report shows whether it learned."""
    k = max(1, min(5, len(history) // 3))
    tasks = sorted({key for row in history for key in row} - {"step", "samples"})
    out = {"steps": len(history), "seconds": round(elapsed, 2), "device": str(device), "examples": examples}
    out["vocab_size"] = vocab
    out["samples_per_s"] = round(sum(r["samples"] for r in history) / max(elapsed, 1e-9), 2)
    for task in tasks:
        head = [r[task] for r in history[:k] if task in r]
        tail = [r[task] for r in history[-k:] if task in r]
        if head and tail:
            out[f"{task}_first"] = round(sum(head) / len(head), 4)
            out[f"{task}_last"] = round(sum(tail) / len(tail), 4)
    return out


def load_checkpoint(out_dir: Path) -> tuple[VLEncoder, Vocab]:
    """Load a checkpoint written by `pretrain`, with `weights_only=True` (no pickle)."""
    mcfg = ModelConfig(**json.loads((out_dir / "model_config.json").read_text()))
    model = VLEncoder(mcfg)
    model.load_state_dict(torch.load(out_dir / "model.pt", map_location="cpu", weights_only=True))
    return model, Vocab.load(out_dir / "vocab.json")
