"""`laitkit bench pretrain`: loader vs step speed, loader memory vs corpus size, retrieval after a short
CPU run, per-task loss trends, kill-and-resume exactness, and 2-worker Ray Train throughput.

Why synthetic shards from scene plans (pipeline/pretrain/synthetic.py): the numbers need a few
thousand captioned samples whose regions carry the caption's content, built in seconds on two
cores; the crawl + detector path would take most of the bench's budget before any training.
Captions are annotated by the real text stage, so the scene-graph objective is exercised too.
GPU numbers (base size bf16 samples/s, MFU) are reported only when a GPU is present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LOADER_PROBE = r"""
import json, resource, sys, time
from laitkit.pipeline.pretrain.data import DataSpec, find_shards, make_loader
shards = tuple(map(str, find_shards(sys.argv[1])))
spec = DataSpec(shards=shards, tokenizer_dir=sys.argv[2], feature_dim=int(sys.argv[3]), batch_size=32)
workers, epochs = int(sys.argv[4]), int(sys.argv[5])
loader = make_loader(spec, rank=0, world=1, workers=workers, position={}, batches_done=0, pin_memory=False)
n, t0, first_s = 0, time.perf_counter(), None
for batch in loader:
    if first_s is None:  # the clock for the rate starts at the first batch (worker start-up is reported apart)
        first_s, t1, c1 = time.perf_counter() - t0, time.perf_counter(), time.process_time()
        continue
    if batch["position"][1] >= epochs:  # the first batch of epoch `epochs`: that many epochs read
        break
    n += int(batch["input_ids"].shape[0])
dt, cpu = time.perf_counter() - t1, time.process_time() - c1
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"samples": n, "seconds": dt, "cpu_s": cpu, "first_batch_s": first_s, "maxrss_kb": rss}))
"""
LOADER_WORKERS, LOADER_EPOCHS = 2, 3


def _log(msg: str) -> None:
    print(f"bench pretrain: {msg}", file=sys.stderr, flush=True)


def _probe(shards: Path, tok: Path, dim: int, workers: int, epochs: int = 1) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-c", LOADER_PROBE, str(shards), str(tok), str(dim), str(workers), str(epochs)],
        capture_output=True, text=True, timeout=600, check=True,
    )
    return json.loads(r.stdout.splitlines()[-1])


def _step_speed(shards: Path, tok: Path, dim: int, steps: int = 30) -> tuple[float, float]:
    """(samples/s, CPU us/sample) of forward + backward + AdamW on prepared batches (no loading timed)."""
    import torch

    from laitkit.pipeline.pretrain.data import DataSpec, ShardStream, find_shards
    from laitkit.pipeline.pretrain.model import ModelConfig, PretrainModel
    from laitkit.pipeline.pretrain.objectives import TASKS
    from laitkit.pipeline.pretrain.tokenizer import TextTokenizer

    torch.set_num_threads(1)  # as the trainer runs here (threads=1): on 2 shared cores, 1 thread is fastest
    spec = DataSpec(shards=tuple(map(str, find_shards(shards))), tokenizer_dir=str(tok), feature_dim=dim, batch_size=32)
    it = iter(ShardStream(spec))
    batches = [next(it) for _ in range(steps)]
    for b in batches:
        b.pop("position")
    vocab = TextTokenizer.load(tok).vocab_size
    model = PretrainModel(ModelConfig(vocab_size=vocab, feature_dim=dim, hidden=128, layers=2, heads=4), TASKS)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for b in batches[:3]:  # warm-up
        sum(model(b).values()).backward()
        opt.step()
        opt.zero_grad()
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for b in batches[3:]:
        sum(model(b).values()).backward()
        opt.step()
        opt.zero_grad()
        n += int(b["input_ids"].shape[0])
    return n / (time.perf_counter() - t0), 1e6 * (time.process_time() - c0) / n


def _resume_diff(shards: Path, tok: Path, tmp: Path) -> float:
    """Max |loss difference| between an uninterrupted run and one SIGKILLed at step 17 then resumed."""
    base = [
        sys.executable, "-m", "laitkit.jobs.cli", "pretrain", str(shards), "--steps", "30", "--batch-size", "16",
        "--hidden", "64", "--layers", "2", "--heads", "2", "--device", "cpu", "--vocab", str(tok),
        "--checkpoint-every", "5", "--loader-workers", "2", "--lr", "1e-3", "--threads", "1",
    ]
    subprocess.run([*base, "--out", str(tmp / "full")], check=True, capture_output=True, timeout=600)
    env = {**os.environ, "LAITKIT_PRETRAIN_KILL_AT_STEP": "17"}
    killed = subprocess.run([*base, "--out", str(tmp / "cut")], env=env, capture_output=True, timeout=600)
    if killed.returncode != -9:
        raise RuntimeError(f"the kill did not happen (rc {killed.returncode})")
    subprocess.run([*base, "--out", str(tmp / "cut"), "--resume"], check=True, capture_output=True, timeout=600)
    a = [json.loads(x) for x in (tmp / "full" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp / "cut" / "metrics.jsonl").read_text().splitlines()]
    if len(a) != len(b):
        raise RuntimeError(f"{len(a)} vs {len(b)} logged steps")
    keys = ("loss", "mlm", "mrm", "itm", "tags", "sgp", "lr")
    return max(abs(x[k] - y[k]) for x, y in zip(a, b, strict=True) for k in keys if k in x)


def run_pretrain_bench(train_seconds: float = 570.0, shards: int = 8, per_shard: int = 250) -> dict:
    import torch

    from laitkit.datasets.shards import completed_shards, shard_paths
    from laitkit.pipeline.pretrain.synthetic import write_synthetic_shards
    from laitkit.pipeline.pretrain.train import PretrainConfig, build_tokenizer, pretrain

    dim = 32
    with tempfile.TemporaryDirectory(prefix="lk-bench-pt-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        one = tmp / "x1"
        write_synthetic_shards(one, shards, per_shard, dim=dim, annotate=True)
        four = tmp / "x4"
        four.mkdir()
        for k in range(4):  # 4x the corpus: the same shard files linked under new shard ids (same layout)
            for sh in sorted(completed_shards(one)):
                sid = k * shards + sh
                for kind in ("tar", "parquet", "stats"):
                    dst = shard_paths(four, sid, kind, "split")
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.link(shard_paths(one, sh, kind, "auto"), dst)
        tok = tmp / "tok"
        build_tokenizer(one, tok, vocab_size=1000)
        _log(f"{shards * per_shard} synthetic samples in {time.perf_counter() - t0:.1f}s")

        probe1 = _probe(one, tok, dim, workers=0)
        probe4 = _probe(four, tok, dim, workers=0)
        # Best of three, interleaved: on a shared machine the load swings by 2-4x within a minute.
        # Loader: 2 DataLoader workers, steady rate from the first batch over 3 epochs (start-up
        # reported apart as loader_first_batch_s); step: the tiny model, 1 torch thread, no loading.
        # The same loader in one process (no worker): its CPU time per sample is the loader's own
        # cost, which the machine's load changes far less than a wall-clock rate.
        loader_sps = step_sps = 0.0
        loader_us = step_us = float("inf")
        first_batch_s = float("inf")
        loads = [os.getloadavg()[0]]
        for _ in range(3):
            loader = _probe(one, tok, dim, workers=LOADER_WORKERS, epochs=LOADER_EPOCHS)
            loader_sps = max(loader_sps, loader["samples"] / loader["seconds"])
            first_batch_s = min(first_batch_s, loader["first_batch_s"])
            single = _probe(one, tok, dim, workers=0, epochs=LOADER_EPOCHS)
            loader_us = min(loader_us, 1e6 * single["cpu_s"] / single["samples"])
            sps, us = _step_speed(one, tok, dim)
            step_sps, step_us = max(step_sps, sps), min(step_us, us)
            loads.append(os.getloadavg()[0])
        _log(f"loader {loader_sps:.0f} samples/s ({loader_us:.0f} us/sample in one process), "
             f"step {step_sps:.0f} samples/s ({step_us:.0f} us/sample)")

        # Training for retrieval: the steps of 32 that fit in ~35 % of `train_seconds` at the step
        # speed just measured in isolation (in training the loader worker shares the two cores and
        # a loaded host slows a long run more than a short probe), so the cosine schedule usually
        # runs to its end on a busy machine too; `max_seconds` still caps the run.
        steps = int(min(3000, max(400, 0.35 * train_seconds * step_sps / 32)))
        cfg = PretrainConfig(
            steps=steps, batch_size=32, hidden=128, layers=2, heads=4, lr=1e-3, warmup=100, device="cpu",
            vocab=str(tok), heldout_permille=100, eval_pool=50, loader_workers=1, checkpoint_every=500,
            progress=False, dropout=0.1, threads=1, max_seconds=train_seconds, itm_share=0.5,
        )
        t1 = time.perf_counter()
        summary = pretrain(one, tmp / "train", cfg, resume=False)
        train_s = time.perf_counter() - t1
        ev = summary["eval"]
        _log(f"trained {summary['steps']}/{steps} steps in {train_s:.0f}s: {ev}")

        resume_diff = _resume_diff(one, tok, tmp)
        _log(f"resume max abs diff {resume_diff}")

        ddp_cfg = PretrainConfig(
            steps=20, batch_size=32, hidden=128, layers=2, heads=4, lr=1e-3, warmup=5, device="cpu", vocab=str(tok),
            checkpoint_every=20, progress=False, eval_pool=10,
        )
        ddp = pretrain(one, tmp / "ddp", ddp_cfg, resume=False, workers=2)

    tasks = ("mlm", "mrm", "itm", "tags", "sgp")
    out: dict[str, Any] = {
        "samples": shards * per_shard,
        "loader_samples_per_s": round(loader_sps, 1),
        "step_samples_per_s": round(step_sps, 1),
        "loader_ratio": round(loader_sps / step_sps, 2),
        "loader_first_batch_s": round(first_batch_s, 2),
        "loader_us_per_sample_1proc": round(loader_us, 1),
        "step_us_per_sample": round(step_us, 1),
        "loader_cpu_ratio": round(step_us / loader_us, 2),
        "measured": (
            f"loader: {LOADER_WORKERS} DataLoader workers, samples/s from the first batch over {LOADER_EPOCHS} "
            "epochs, best of 3; loader_us_per_sample_1proc: the same loader with no worker, CPU seconds of "
            "its process per sample, best of 3; step: hidden 128 x 2 layers, batch 32, forward+backward+AdamW, "
            f"1 torch thread, best of 3 (step_us_per_sample: its CPU time); loader_cpu_ratio = step us / loader us; "
            f"machine: {os.cpu_count()} cores, load average {min(loads):.1f}-{max(loads):.1f} during these probes"
        ),
        "loader_rss_mb_1x": round(probe1["maxrss_kb"] / 1024, 1),
        "loader_rss_mb_4x": round(probe4["maxrss_kb"] / 1024, 1),
        "loader_rss_ratio": round(probe4["maxrss_kb"] / probe1["maxrss_kb"], 3),
        "train_steps": steps,
        "train_seconds": round(train_s, 1),
        "train_steps_done": summary["steps"],
        "r_at_1": ev.get("i2t_r1"),
        "r_at_5": ev.get("i2t_r5"),
        "r_at_10": ev.get("i2t_r10"),
        "t2i_r_at_1": ev.get("t2i_r1"),
        "chance_r_at_1": ev.get("chance_r1"),
        "pool": ev.get("pool"),
        "itm_acc": ev.get("itm_acc"),
        "mlm_acc": ev.get("mlm_acc"),
        "losses_first": {t: summary.get(f"{t}_first") for t in tasks},
        "losses_last": {t: summary.get(f"{t}_last") for t in tasks},
        "resume_max_abs_diff": resume_diff,
        "ddp_workers": ddp["workers"],
        "ddp_samples_per_s": ddp["samples_per_s"],
        "gpu": "not measured (no GPU lent)" if not torch.cuda.is_available() else "see gpu_* keys",
        "gpu_base_bf16_samples_per_s": None,
        "gpu_mfu": None,
    }
    first, last = out["losses_first"], out["losses_last"]
    out["all_losses_fall"] = all(last[t] < first[t] for t in tasks if first[t] is not None)
    out["goals_met"] = bool(
        out["loader_ratio"] >= 5
        and out["loader_rss_ratio"] <= 1.2
        and (out["r_at_1"] or 0) >= 5 * (out["chance_r_at_1"] or 1)
        and out["all_losses_fall"]
        and resume_diff <= 1e-6
        and out["ddp_workers"] == 2
    )
    return out
