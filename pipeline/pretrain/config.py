"""The `pretrain:` section of a job config, with its optional list of stages.

Why stages: ImageBERT trains first on large noisy web shards, then on clean ones; each stage has
its own shards, steps and learning rate, and a run resumes across stage boundaries. Without
`stages` the section is one stage over the run's shards with the top-level `steps` and `lr`.
Stages arrive from YAML as mappings (jobs/config.py turns lists into tuples); `__post_init__`
turns each into a `StageConfig`, so unknown keys are named, not ignored.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import Any

# The default task list, written out so that reading a config imports no torch (objectives.py
# does). `check_tasks` compares names with the objectives registry when a run starts.
DEFAULT_TASKS = ("mlm", "tags", "sgp", "mrm", "itm")  # == masking.DEFAULT_TASKS (a test checks)


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    name: str = ""
    shards: str = ""  # folder of shards; "" = the shards the stage runner was given
    steps: int = 0
    lr: float = 0.0  # 0 = the section's lr

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr < 0:
            raise ValueError(f"stage {self.name!r}: steps and lr must be >= 0")


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    enabled: bool = True
    steps: int = 30
    batch_size: int = 8
    token_budget: int = 0  # max padded (text + regions) length x batch; 0 = off
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    lr: float = 3e-4
    warmup: int = 5
    decay: str = "cosine"  # cosine | linear | constant
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    grad_accum: int = 1
    clip: float = 1.0
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    compile: bool = False
    seed: int = 0
    tasks: tuple[str, ...] = DEFAULT_TASKS
    # How tasks combine (objectives.py lists them): "sum" adds every task's loss times its weight;
    # "sample" (UNITER) trains one task per batch, drawn by weight in the data worker.
    mixing: str = "sum"
    task_weights: dict[str, float] = field(default_factory=dict)  # per task; missing = 1.0
    conditional_masking: bool = False  # UNITER: a masked sample masks text or regions, never both
    region_overlap_iou: float = 0.0  # 12-in-1: also mask regions with IoU > this with a masked one; 0 = off
    itm_hard_mode: str = "tags"  # itm_hard negatives: tags (most shared detector tags) | model (UNITER: its own score)
    loader_workers: int = 0
    threads: int = 0  # torch intra-op threads per trainer process; 0 = torch's default
    shuffle_buffer: int = 1000
    resampled: bool = False
    heldout_permille: int = 50
    max_text: int = 64
    max_regions: int = 50
    itm_share: float = 0.5  # share of samples that are ITM pairs (unmasked) instead of masked-modelling ones
    vocab: str = ""  # a BERT vocab.txt / tokenizer folder; "" = train WordPiece on the shards
    vocab_size: int = 8000
    checkpoint_every: int = 100
    max_seconds: float = 0.0  # stop (after a checkpoint) once training ran this long; 0 = off; --resume goes on
    eval_every: int = 0  # 0 = only at the end
    eval_pool: int = 50
    log_every: int = 10
    progress: bool = True
    workers: int = 1  # Ray Train workers (DDP); 1 = this process
    stages: tuple[Any, ...] = ()
    # --- model architecture and style presets (styles.py); explicit keys win over `style` and `size` ---
    style: str = ""  # a preset from styles.STYLES: encoder, tasks, weights, mixing, masking, size
    size: str = ""  # tiny | small | base: sets hidden/layers/heads and the encoder's layer plan; "" = those keys
    encoder: str = "single-stream"  # encoders.ENCODERS
    encoder_options: dict[str, Any] = field(default_factory=dict)  # ModelConfig options (l_layers, visual_text, ...)

    def __post_init__(self) -> None:
        if self.mixing not in ("sum", "sample"):
            raise ValueError(f"mixing must be sum or sample (got {self.mixing!r})")
        weights = dict(self.task_weights or {})
        bad = sorted(set(weights) - set(self.tasks))
        if bad:
            known = ", ".join(self.tasks)
            raise ValueError(f"task_weights for task(s) not in tasks: {', '.join(bad)} (tasks: {known})")
        if any(float(w) < 0 for w in weights.values()) or (
            self.mixing == "sample" and not any(float(weights.get(t, 1.0)) > 0 for t in self.tasks)
        ):
            raise ValueError("task_weights must be >= 0, and some task's weight > 0 when mixing is sample")
        object.__setattr__(self, "task_weights", {k: float(v) for k, v in weights.items()})
        if self.itm_hard_mode not in ("tags", "model"):
            raise ValueError(f"itm_hard_mode must be tags or model (got {self.itm_hard_mode!r})")
        if not 0.0 <= self.region_overlap_iou < 1.0:
            raise ValueError(f"region_overlap_iou must be in [0, 1) (got {self.region_overlap_iou})")
        if self.steps < 0 or self.batch_size < 1 or self.grad_accum < 1 or self.workers < 1:
            raise ValueError("steps must be >= 0; batch_size, grad_accum and workers >= 1")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32 (got {self.precision!r})")
        if self.decay not in ("cosine", "linear", "constant"):
            raise ValueError(f"decay must be cosine, linear or constant (got {self.decay!r})")
        stages = []
        names = {f.name for f in fields(StageConfig)}
        for i, st in enumerate(self.stages):
            if isinstance(st, StageConfig):
                stages.append(st)
                continue
            if not isinstance(st, dict):
                raise ValueError(f"stages[{i}] must be a mapping")
            bad = sorted(set(st) - names)
            if bad:
                raise ValueError(f"stages[{i}]: unknown key(s) {', '.join(bad)} (known: {', '.join(sorted(names))})")
            stages.append(StageConfig(**{"name": f"stage{i}", **st}))
        object.__setattr__(self, "stages", tuple(stages))

    def check_tasks(self) -> None:
        """Task names against the objectives registry and the encoder against its registry (both import
        torch: call it when a run starts)."""
        from laitkit.pipeline.pretrain.objectives import OBJECTIVES

        self._check_encoder()
        unknown = sorted(set(self.tasks) - set(OBJECTIVES))
        if unknown:
            raise ValueError(f"unknown pretraining task(s) {unknown}; known: {', '.join(OBJECTIVES)}")

    def masking(self) -> dict[str, Any]:
        """The data workers' Masker settings (masking.py): which labels each batch carries."""
        return {
            "tasks": tuple(self.tasks), "mixing": self.mixing, "task_weights": dict(self.task_weights),
            "itm_share": self.itm_share,
            "conditional_masking": self.conditional_masking, "region_overlap_iou": self.region_overlap_iou,
            "itm_hard_mode": self.itm_hard_mode,
        }

    def _check_encoder(self) -> None:
        from laitkit.pipeline.pretrain.encoders import ENCODERS

        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; known: {', '.join(ENCODERS)}")
        bad = sorted(set(self.encoder_options) - set(ENCODER_OPTIONS))
        if bad:
            raise ValueError(f"unknown encoder option(s) {', '.join(bad)}; known: {', '.join(ENCODER_OPTIONS)}")

    def stage_list(self) -> tuple[StageConfig, ...]:
        """The stages to run, each with steps and lr filled in."""
        if not self.stages:
            return (StageConfig(name="main", steps=self.steps, lr=self.lr),)
        return tuple(
            StageConfig(name=s.name, shards=s.shards, steps=s.steps or self.steps, lr=s.lr or self.lr)
            for s in self.stages
        )

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stage_list())


ENCODER_OPTIONS = (
    "intermediate", "l_layers", "r_layers", "x_layers", "region_geometry", "visual_text", "image_size",
    "pixel_samples", "backbone",
)


def _apply_style(init: Any) -> Any:
    """Wrap the dataclass `__init__` so `style`/`size` fill in exactly the keys the caller did not pass.

    Why at construction: only here are the explicit keys known (a key set to its default value is
    still the user's choice). `dataclasses.replace` passes every field, so a replaced config keeps
    its values.
    """

    @functools.wraps(init)
    def __init__(self: PretrainConfig, **kw: Any) -> None:
        from laitkit.pipeline.pretrain.styles import expand

        if kw.get("style") or kw.get("size"):
            kw = expand(kw)
        init(self, **kw)

    return __init__


PretrainConfig.__init__ = _apply_style(PretrainConfig.__init__)  # type: ignore[method-assign]
