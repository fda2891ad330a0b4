"""Data-parallel pretraining on Ray Train: N `TorchTrainer` workers running `train.train_worker`.

Why Ray Train: laitkit already runs its pipeline on Ray, so the same cluster trains; Ray Train
sets up `torch.distributed` (gloo on CPU, NCCL on GPU) and places one worker per GPU, and the
worker body is exactly the single-process loop (it reads rank and world from torch.distributed).
Checkpoints and metrics are written by rank 0 into the run folder, as in a single-process run,
so `--resume` works the same. When no Ray is running, a *private* local cluster is started
(`address="local"`), never one someone else on the machine runs, and shut down afterwards.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

# Ray Train gives its worker group 60 s to start; each worker imports torch and laitkit, which on
# a loaded 2-core host (CI, a shared box) can take longer, and the run then fails before step 0.
# Generous start-up limits change nothing on a fast host; a user's own settings win (setdefault).
SLOW_HOST_TIMEOUTS = {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": 600}


def _worker_loop(config: dict[str, Any]) -> None:
    from laitkit.pipeline.pretrain.train import train_worker

    torch.set_num_threads(int(config.get("threads", 1)))
    train_worker(config["job"])


def run_distributed(job: Any, workers: int) -> dict[str, Any]:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    use_gpu = torch.cuda.is_available() and job.cfg.device in ("auto", "cuda")
    own = not ray.is_initialized()
    for name, seconds in SLOW_HOST_TIMEOUTS.items():
        os.environ.setdefault(name, str(seconds))  # read by Ray Train's controller (inherits this env)
    if own:
        ray.init(
            address="local", num_cpus=max(workers + 1, 2), include_dashboard=False, log_to_driver=False,
            configure_logging=False, _system_config={"worker_register_timeout_seconds": 600},
        )
    try:
        free_cpus = float(ray.available_resources().get("CPU", workers))
        per_worker = max(min(1.0, (free_cpus - 0.1) / workers), 0.1)
        out = Path(job.out_dir)
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"job": job, "threads": max(1, (os.cpu_count() or 1) // workers)},
            scaling_config=ScalingConfig(
                num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": per_worker}
            ),
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            run_config=RunConfig(storage_path=str((out / "ray_train").resolve()), name="pretrain"),
        )
        trainer.fit()
    finally:
        if own:
            ray.shutdown()
    return json.loads((Path(job.out_dir) / "summary.json").read_text())
