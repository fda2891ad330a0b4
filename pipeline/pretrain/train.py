"""The pretraining loop: stream shards, mask, optimise, log, evaluate, checkpoint, resume; stage after stage.

Why one loop for one process and for DDP: `train_worker` reads its rank and world size from
`torch.distributed` (which Ray Train's `TorchTrainer` initialises, gloo on CPU and NCCL on GPU),
so the same function is the single-process run, each Ray Train worker, and the test of both.
`pretrain` is the stage entry the job runner calls: it prepares the tokenizer and the run folder,
then runs `train_worker` here or on N Ray Train workers (distributed.py).

Run folder: `tokenizer/`, `meta.json` (model and data settings), `checkpoint.pt` (everything a
resume needs), `metrics.jsonl` (one line per logged step, per-task losses, samples/s, tokens/s,
MFU on GPU), `eval.jsonl`, `model.pt` + `model_config.json` (final weights), `summary.json`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from laitkit.pipeline.pretrain import checkpoint as ckpt
from laitkit.pipeline.pretrain.config import PretrainConfig, StageConfig
from laitkit.pipeline.pretrain.data import DataSpec, corpus_feature_dim, find_shards, heldout_examples, iter_samples
from laitkit.pipeline.pretrain.label_space import corpus_label_space
from laitkit.pipeline.pretrain.model import ModelConfig, PretrainModel
from laitkit.pipeline.pretrain.objectives import OBJECTIVES, TASKS, total_loss
from laitkit.pipeline.pretrain.prefetch import DevicePrefetcher, pin_memory_for
from laitkit.pipeline.pretrain.tokenizer import TextTokenizer, train_wordpiece

__all__ = ["TASKS", "PretrainConfig", "StageConfig", "load_checkpoint", "pretrain", "summarise"]

log = logging.getLogger(__name__)
KILL_ENV = "LAITKIT_PRETRAIN_KILL_AT_STEP"  # fault injection for the resume test: SIGKILL after that step's checkpoint
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    """Everything a worker needs, picklable (Ray Train ships it to each worker)."""

    cfg: PretrainConfig
    out_dir: str
    stage_shards: tuple[tuple[str, ...], ...]
    tokenizer_dir: str
    feature_dim: int
    resume: bool
    run_hash: str
    num_classes: int = 0  # detector label space, for MRC / attribute heads (label_space.py)
    num_attributes: int = 0


class Schedule:
    """Learning rate per global step: per stage, linear warmup then cosine/linear decay to min."""

    def __init__(self, stages: list[tuple[int, float]], warmup: int, decay: str, min_ratio: float) -> None:
        self.stages, self.warmup, self.decay, self.min_ratio = stages, warmup, decay, min_ratio

    def __call__(self, step: int) -> float:
        start = 0
        for i, (steps, lr) in enumerate(self.stages):
            if step < start + steps or i == len(self.stages) - 1:
                local = step - start
                warm = min(1.0, (local + 1) / max(self.warmup, 1))
                progress = min(1.0, max(local + 1 - self.warmup, 0) / max(steps - self.warmup, 1))
                if self.decay == "cosine":
                    f = 0.5 * (1 + math.cos(math.pi * progress))
                elif self.decay == "linear":
                    f = 1.0 - progress
                else:
                    f = 1.0
                return lr * warm * (self.min_ratio + (1 - self.min_ratio) * f)
            start += steps
        return 0.0


def data_spec(job: TrainJob, stage: int) -> DataSpec:
    c = job.cfg
    return DataSpec(
        shards=job.stage_shards[stage],
        tokenizer_dir=job.tokenizer_dir,
        feature_dim=job.feature_dim,
        seed=c.seed + 1000 * stage,
        batch_size=c.batch_size,
        token_budget=c.token_budget,
        shuffle_buffer=c.shuffle_buffer,
        resampled=c.resampled,
        heldout_permille=c.heldout_permille,
        max_text=c.max_text,
        max_regions=c.max_regions,
        masking=c.masking(),
        image_size=int(c.encoder_options.get("image_size", 0)) if c.encoder == "pixel" else 0,
    )


def model_config(job: TrainJob, vocab_size: int) -> ModelConfig:
    c = job.cfg
    return ModelConfig(
        vocab_size=vocab_size, feature_dim=job.feature_dim, hidden=c.hidden, layers=c.layers, heads=c.heads,
        max_text=c.max_text, dropout=c.dropout, num_classes=job.num_classes, num_attributes=job.num_attributes,
        encoder=c.encoder, **c.encoder_options,
    )


def _dist() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _optimizer(model: torch.nn.Module, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1.0)  # the schedule returns absolute rates (LambdaLR x 1.0)


def _mfu(device: torch.device, mcfg: ModelConfig, tokens_per_s: float) -> float | None:
    """Model FLOPs utilisation: 6 x transformer parameters x tokens/s over the chip's bf16 peak."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    if peak is None:
        return None
    return 6 * mcfg.num_params_estimate() * tokens_per_s / peak


class MetricsLog:
    """metrics.jsonl, truncated on resume to the steps the checkpoint has, so lines never repeat."""

    def __init__(self, path: Path, keep_below_step: int, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        rows = []
        if keep_below_step and path.exists():
            lines = path.read_text().splitlines()
            rows = [ln for ln in lines if ln and json.loads(ln).get("step", 0) < keep_below_step]
        path.write_text("".join(r + "\n" for r in rows))
        self.f = path.open("a")

    def write(self, row: dict[str, Any]) -> None:
        if self.enabled:
            self.f.write(json.dumps(row) + "\n")
            self.f.flush()

    def close(self) -> None:
        if self.enabled:
            self.f.close()


def train_worker(job: TrainJob) -> dict[str, Any]:
    """Train on this process's rank; returns the summary (rank 0's is the run's)."""
    import torch.distributed as dist

    c = job.cfg
    rank, world = _dist()
    out = Path(job.out_dir)
    device = pick_device(c.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1))))
    if c.threads:
        torch.set_num_threads(c.threads)
    bf16 = c.precision == "bf16" or (c.precision == "auto" and device.type == "cuda")
    torch.manual_seed(c.seed + rank)
    np.random.seed(c.seed + rank)
    tok = TextTokenizer.load(Path(job.tokenizer_dir))
    mcfg = model_config(job, tok.vocab_size)
    model = PretrainModel(mcfg, c.tasks).to(device)
    opt = _optimizer(model, c.weight_decay)
    stages = c.stage_list()
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, Schedule([(s.steps, s.lr) for s in stages], c.warmup, c.decay, c.min_lr_ratio)
    )
    step, stage_idx, positions, resumed_from = 0, 0, {}, None
    ckpt_path = out / ckpt.CHECKPOINT
    state = None
    if job.resume and ckpt_path.exists():
        state = ckpt.load(ckpt_path)
        if state.get("run_hash") != job.run_hash:
            raise ValueError(f"{ckpt_path} is from another pretraining config; start over without --resume")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, stage_idx, resumed_from = int(state["step"]), int(state["stage"]), int(state["step"])
        positions = {int(w): tuple(v) for w, v in state["positions"].get(str(rank), {}).items()}
    train_model: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    compile_pending = bool(c.compile) and compile_encoder(model, device)
    metrics = MetricsLog(out / "metrics.jsonl", step, rank == 0)
    history: list[dict[str, Any]] = []
    if rank == 0 and resumed_from:
        history = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln]
    evals: list[dict[str, Any]] = []
    progress = _progress(c, rank, step)
    heldout: list | None = None
    t_start = time.perf_counter()
    samples_total = tokens_total = 0
    kill_at = int(os.environ.get(KILL_ENV, "-1"))
    stopped = False
    stage_starts = np.cumsum([0] + [s.steps for s in stages]).tolist()
    while stage_idx < len(stages) and step >= stage_starts[stage_idx + 1]:
        stage_idx, positions = stage_idx + 1, {}
    for si in range(stage_idx, len(stages)):
        spec = data_spec(job, si)
        done_in_stage = (step - stage_starts[si]) * c.grad_accum
        from laitkit.pipeline.pretrain.data import make_loader

        loader = make_loader(
            spec, rank=rank, world=world, workers=c.loader_workers, position=positions if si == stage_idx else {},
            batches_done=done_in_stage, pin_memory=pin_memory_for(device),
        )
        batches = DevicePrefetcher(loader, device)  # batch k+1 is copied to the device while step k runs
        if state is not None:  # after the loader exists: nothing below may draw from the global RNGs first
            ckpt.set_rng_state(state["rng"][str(rank)] if str(rank) in state["rng"] else state["rng"]["0"])
            state = None
        if si != stage_idx:
            positions = {}
        model.train()
        while step < stage_starts[si + 1]:
            t0 = time.perf_counter()
            sums: dict[str, float] = {}
            logged: dict[str, list[float]] = {}  # the objectives' explanatory numbers, not losses
            n_samples = n_tokens = 0
            for micro in range(c.grad_accum):
                batch = next(batches)
                w, ep, idx = (int(x) for x in batch.pop("position"))
                positions[w] = (ep, idx)
                sync = world == 1 or micro == c.grad_accum - 1
                ctx = contextlib.nullcontext() if sync else train_model.no_sync()
                amp = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
                with ctx, amp:
                    if compile_pending:  # the first compiled call compiles: a failure falls back to eager, once
                        losses, compile_pending = _first_compiled_call(train_model, model, batch)
                    else:
                        losses = train_model(batch)
                    total = total_loss(losses, c.task_weights if c.mixing == "sum" else None) / c.grad_accum
                if isinstance(total, torch.Tensor):  # a batch whose sampled task found no target has no loss
                    total.backward()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / c.grad_accum
                for k, x in model.logged().items():
                    logged.setdefault(k, []).append(x)
                n_samples += int(batch["input_ids"].shape[0])
                n_tokens += int(batch["text_mask"].sum() + batch["region_mask"].sum())
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip) if c.clip > 0 else None
            lr = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if world > 1:
                counts = torch.tensor([n_samples, n_tokens], dtype=torch.float64)
                dist.all_reduce(counts)
                n_samples, n_tokens = int(counts[0]), int(counts[1])
            step += 1
            dt = time.perf_counter() - t0
            samples_total += n_samples
            tokens_total += n_tokens
            row = {
                "step": step - 1, "stage": stages[si].name, "lr": lr, "loss": sum(sums.values()), **sums,
                **{k: sum(v) / len(v) for k, v in logged.items()},
                "samples": n_samples, "tokens": n_tokens, "samples_per_s": round(n_samples / dt, 2),
                "tokens_per_s": round(n_tokens / dt, 1), "step_s": round(dt, 5),
                "grad_norm": float(grad_norm) if grad_norm is not None else None,
            }
            mfu = _mfu(device, mcfg, n_tokens / dt)
            if mfu is not None:
                row["mfu"] = round(mfu, 4)
            history.append(row)
            metrics.write(row)
            progress.update(1)
            progress.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
            if rank == 0 and (step % c.log_every == 0 or step == c.total_steps):
                log.info("pretrain step %d/%d %s", step, c.total_steps, {k: round(v, 4) for k, v in sums.items()})
            boundary = step == stage_starts[si + 1]
            if step % c.checkpoint_every == 0 or boundary:
                pos = {} if boundary else positions  # a new stage starts its own data from zero
                _save(job, out, model, opt, sched, step, si + 1 if boundary else si, pos, rank, world)
            if c.eval_every and step % c.eval_every == 0 and step < c.total_steps and rank == 0:
                heldout = heldout if heldout is not None else heldout_examples(spec, 4 * c.eval_pool)
                evals.append(_eval(model, heldout, tok, job, device, step, out))
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if c.max_seconds and _out_of_time(t_start, c.max_seconds, world):
                if step % c.checkpoint_every and not boundary:
                    _save(job, out, model, opt, sched, step, si, positions, rank, world)
                stopped = True
                break
        del batches, loader
        if stopped:
            break
    progress.close()
    metrics.close()
    elapsed = time.perf_counter() - t_start
    summary: dict[str, Any] = {}
    if rank == 0:
        last_spec = data_spec(job, len(stages) - 1)
        heldout = heldout_examples(last_spec, 4 * c.eval_pool)
        final_eval = _eval(model, heldout, tok, job, device, step, out)
        torch.save(model.state_dict(), out / "model.pt")
        (out / "model_config.json").write_text(json.dumps(asdict(mcfg)))
        summary = summarise(history, elapsed, device, tok.vocab_size)
        summary.update(
            {
                "workers": world, "resumed_from": resumed_from, "stages": [s.name for s in stages],
                "samples_per_s_run": round(samples_total / max(elapsed, 1e-9), 2),
                "tokens_per_s_run": round(tokens_total / max(elapsed, 1e-9), 1),
                "precision": "bf16" if bf16 else "fp32", "eval": final_eval, "stopped_at_max_seconds": stopped,
            }
        )
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if world > 1:
        dist.barrier()
    return summary


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would call on CPU ($CXX, else g++ / c++ / clang++ on PATH)."""
    import shutil

    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def compile_encoder(model: PretrainModel, device: torch.device) -> bool:
    """`pretrain.compile: true`: the encoder's forward through `torch.compile` (dynamic shapes).

    Why the encoder and not the whole model: it is where the FLOPs are and it is one static
    graph; the objectives select targets with data-dependent masks (graph breaks, a recompile
    per shape). Why `dynamic=True`: batches are bucketed by length, so text and region lengths
    change every step; one symbolic-shape graph is compiled once instead of once per length.
    The compiled forward is an instance attribute, so `state_dict` keys (checkpoints) are
    unchanged. On CPU inductor needs a C++ compiler: without one, one warning and eager mode.
    """
    if device.type == "cpu" and cxx_compiler() is None:
        log.warning("pretrain: compile: no C++ compiler for torch.compile's CPU backend (set $CXX); training eager")
        return False
    model.encoder.forward = torch.compile(model.encoder.forward, dynamic=True)
    return True


def uncompile_encoder(model: PretrainModel) -> None:
    model.encoder.__dict__.pop("forward", None)


def _first_compiled_call(train_model: torch.nn.Module, model: PretrainModel, batch: dict) -> tuple[dict, bool]:
    """Losses of the first compiled step; if compiling fails, one warning line and eager from then on.

    Only the first call can fail to compile (later ones reuse the graph); a real model error is
    not hidden: it happens again eagerly and is raised from there.
    """
    try:
        return train_model(batch), False
    except Exception as exc:  # noqa: BLE001 - inductor raises many types (BackendCompilerFailed, CppCompileError, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        log.warning("pretrain: compile: torch.compile failed (%s: %s); training eager", type(exc).__name__, first)
        uncompile_encoder(model)
        return train_model(batch), False


def _out_of_time(t_start: float, limit: float, world: int) -> bool:
    """Rank 0's clock decides, so every rank stops after the same step."""
    import torch.distributed as dist

    flag = torch.tensor([float(time.perf_counter() - t_start > limit)])
    if world > 1:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


def _progress(c: PretrainConfig, rank: int, step: int) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=c.total_steps, initial=step, desc="pretrain", file=sys.stderr, disable=not c.progress or rank != 0,
        mininterval=2.0, dynamic_ncols=True,
    )


def _eval(model: PretrainModel, heldout: list, tok: TextTokenizer, job: TrainJob, device, step: int, out: Path) -> dict:
    from laitkit.pipeline.pretrain.evaluate import evaluate

    res = {"step": step, **evaluate(model, heldout, tok, job.feature_dim, pool=job.cfg.eval_pool, device=device)}
    with (out / "eval.jsonl").open("a") as f:
        f.write(json.dumps(res) + "\n")
    return res


def _save(job: TrainJob, out: Path, model, opt, sched, step: int, stage: int, positions: dict, rank: int, world: int):
    """Rank 0 writes one checkpoint holding every rank's loader position and RNG state."""
    import torch.distributed as dist

    mine = {"positions": {str(w): list(p) for w, p in positions.items()}, "rng": ckpt.rng_state()}
    gathered = [mine]
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, mine)
    if rank != 0:
        return
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": {str(r): g["rng"] for r, g in enumerate(gathered)},
        "positions": {str(r): g["positions"] for r, g in enumerate(gathered)},
        "step": step,
        "stage": stage,
        "run_hash": job.run_hash,
    }
    ckpt.save(out / ckpt.CHECKPOINT, state)


def summarise(history: list[dict], elapsed: float, device: torch.device, vocab: int) -> dict:
    """First-vs-last loss per task over a window, so the report shows whether it learned."""
    k = max(1, min(10, len(history) // 4))
    out: dict[str, Any] = {"steps": len(history), "seconds": round(elapsed, 2), "device": str(device)}
    out["vocab_size"] = vocab
    steady = history[k:] or history  # the first steps pay for warm-up and loader start
    secs = sum(r.get("step_s", 0.0) for r in steady)
    out["samples_per_s"] = round(sum(r["samples"] for r in steady) / secs, 2) if secs else 0.0
    for task in ("loss", *OBJECTIVES):
        head = [r[task] for r in history[:k] if task in r]
        tail = [r[task] for r in history[-k:] if task in r]
        if head and tail:
            out[f"{task}_first"] = round(sum(head) / len(head), 4)
            out[f"{task}_last"] = round(sum(tail) / len(tail), 4)
    return out


# --- the stage entry ---------------------------------------------------------------------------


def caption_stream(shards: list[Path]) -> Any:
    """Captions and detector tags, one pass over the shards (the tokenizer trainer's input)."""
    for s in iter_samples([str(p) for p in shards]):
        if s.caption:
            yield s.caption
        if s.regions is not None and s.regions.obj_names:
            yield " ".join(dict.fromkeys(s.regions.obj_names))


def build_tokenizer(shards_dir: Path, out_dir: Path, vocab_size: int = 8000) -> TextTokenizer:
    """`laitkit pretrain tokenizer`: WordPiece from one streaming pass over the shards' captions."""
    shards = find_shards(shards_dir)
    if not shards:
        raise ValueError(f"no WebDataset shards (*.tar) under {shards_dir}")
    tok = train_wordpiece(caption_stream(shards), vocab_size=vocab_size)
    tok.save(out_dir)
    return tok


def run_hash(cfg: PretrainConfig, stage_shards: tuple[tuple[str, ...], ...]) -> str:
    """What makes two runs the same run (resume is refused across a change of any of it)."""
    d = asdict(cfg)
    for k in ("progress", "log_every", "eval_every", "eval_pool", "checkpoint_every", "enabled", "workers"):
        d.pop(k, None)
    d["shards"] = [[Path(p).name for p in s] for s in stage_shards]
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare(shards_dir: Path, out_dir: Path, cfg: PretrainConfig, resume: bool | None) -> TrainJob:
    stage_shards = []
    for st in cfg.stage_list():
        root = Path(st.shards) if st.shards else Path(shards_dir)
        found = find_shards(root)
        if not found:
            raise ValueError(f"no WebDataset shards (*.tar) under {root}")
        stage_shards.append(tuple(str(p) for p in found))
    stage_shards_t = tuple(stage_shards)
    out_dir.mkdir(parents=True, exist_ok=True)
    rh = run_hash(cfg, stage_shards_t)
    have = out_dir / ckpt.CHECKPOINT
    if resume is None:  # the job runner: resume a run of this very config, else start over
        resume = have.exists() and (out_dir / "meta.json").exists() and json.loads(
            (out_dir / "meta.json").read_text()
        ).get("run_hash") == rh
    if not resume:
        for name in (ckpt.CHECKPOINT, "metrics.jsonl", "eval.jsonl", "summary.json"):
            (out_dir / name).unlink(missing_ok=True)
    tok_dir = out_dir / "tokenizer"
    if not (resume and tok_dir.exists()):
        if cfg.vocab:
            TextTokenizer.load(Path(cfg.vocab)).save(tok_dir)
        else:
            tok = train_wordpiece(caption_stream([Path(p) for p in stage_shards_t[0]]), vocab_size=cfg.vocab_size)
            tok.save(tok_dir)
    feature_dim = corpus_feature_dim([Path(p) for p in stage_shards_t[0]])
    classes, attributes = corpus_label_space([Path(p) for p in stage_shards_t[0]], cfg.tasks)
    job = TrainJob(
        cfg=cfg, out_dir=str(out_dir), stage_shards=stage_shards_t, tokenizer_dir=str(tok_dir),
        feature_dim=feature_dim, resume=bool(resume), run_hash=rh, num_classes=classes, num_attributes=attributes,
    )
    meta = {
        "run_hash": rh, "feature_dim": feature_dim, "num_classes": classes, "num_attributes": attributes,
        "config": asdict(cfg),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return job


def pretrain(
    shards_dir: Path, out_dir: Path, cfg: PretrainConfig, *, resume: bool | None = None, workers: int | None = None
) -> dict:
    """Train on the shards under `shards_dir` (or each stage's); write the run folder `out_dir`.

    `resume`: True continues from `out_dir/checkpoint.pt`, False starts over, None (the job
    runner) resumes only a run of the same config. `workers` > 1 runs on Ray Train (DDP).
    """
    cfg.check_tasks()  # the config itself is read without torch, so task names are checked here
    job = prepare(Path(shards_dir), Path(out_dir), cfg, resume)
    n = workers or cfg.workers
    if n > 1:
        from laitkit.pipeline.pretrain.distributed import run_distributed

        return run_distributed(job, n)
    return train_worker(job)


def load_for_eval(path: Path, shards_dir: Path) -> tuple[PretrainModel, DataSpec]:
    """The model of a run folder (final `model.pt`, else `checkpoint.pt`) and a spec over `shards_dir`."""
    run = path if path.is_dir() else path.parent
    meta_path = run / "meta.json"
    if not meta_path.exists():
        raise ValueError(f"{run} is not a pretraining run folder (no meta.json)")
    meta = json.loads(meta_path.read_text())
    raw = dict(meta["config"])
    raw["tasks"] = tuple(raw["tasks"])
    raw["stages"] = tuple(raw.get("stages") or ())
    cfg = PretrainConfig(**raw)
    shards = find_shards(shards_dir)
    if not shards:
        raise ValueError(f"no WebDataset shards (*.tar) under {shards_dir}")
    job = TrainJob(
        cfg=cfg, out_dir=str(run), stage_shards=(tuple(map(str, shards)),), tokenizer_dir=str(run / "tokenizer"),
        feature_dim=int(meta["feature_dim"]), resume=False, run_hash=meta["run_hash"],
        num_classes=int(meta.get("num_classes", 0)), num_attributes=int(meta.get("num_attributes", 0)),
    )
    tok = TextTokenizer.load(run / "tokenizer")
    model = PretrainModel(model_config(job, tok.vocab_size), cfg.tasks)
    if path.is_file() and path.name != "model.pt":
        weights = ckpt.load(path)["model"]
    elif (run / "model.pt").exists() and not path.is_file():
        weights = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    elif path.is_file():
        weights = torch.load(path, map_location="cpu", weights_only=True)
    else:
        weights = ckpt.load(run / ckpt.CHECKPOINT)["model"]
    model.load_state_dict(weights)
    return model, data_spec(job, 0)


def load_checkpoint(out_dir: Path) -> tuple[PretrainModel, TextTokenizer]:
    """The final model of a run folder and its tokenizer (`weights_only=True`: no pickle)."""
    out_dir = Path(out_dir)
    meta = json.loads((out_dir / "meta.json").read_text())
    mcfg = ModelConfig(**json.loads((out_dir / "model_config.json").read_text()))
    model = PretrainModel(mcfg, tuple(meta["config"]["tasks"]))
    model.load_state_dict(torch.load(out_dir / "model.pt", map_location="cpu", weights_only=True))
    return model, TextTokenizer.load(out_dir / "tokenizer")

