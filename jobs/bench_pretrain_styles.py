"""`laitkit bench pretrain-styles`: every style preset trains 60 tiny CPU steps on synthetic shards.

Why: a preset is only worth its name if its encoder and objectives train together from laitkit's
shards; the goal is that every style runs and every one of its task losses falls (mean of the
task's first 10 logged steps vs its last 10). A style that samples one task per step (UNITER)
runs 60 steps *per task*: `steps x sum(weights) / min(weight)`, so its rarest task also gets about
60 steps (at 60 in all, UNITER's MRFR saw ~10 and its trend was noise). Shards come from
pipeline/pretrain/synthetic.py with rendered JPEGs (Pixel-BERT trains on pixels) and spaCy scene
graphs (ERNIE-ViL's nodes).
`pair_tasks_long`: the pair tasks (ITM, ITM-hard, Oscar's contrastive loss, WRA) sit on a plateau
at chance far longer than 60 steps at this size (README, "Tests and benchmarks"), so a subset of
styles, one per encoder and pair task, also trains `LONG_STEPS` steps, once with its unchanged
preset and once with its pair tasks alone, and the field says per pair task at which step its
moving mean first went `LONG_MARGIN` below chance (None: not within the budget) and where its
last window ended.
Last line: `{"styles": {NAME: {"tasks", "losses_first", "losses_last", "samples_per_s", ...}},
"pair_tasks_long": {NAME: {"preset" | "alone": {TASK: {"leaves_chance_at", "last"}}}}, ...}`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS = 60
WINDOW = 10
DIM = 32
# Pair tasks and their loss at chance (binary cross-entropy: ln 2; WRA's matched-minus-swapped
# transport distance: 0). A last window still within CHANCE_MARGIN of it has not learned to
# match, even when it is below a noisy first window; reported as `at_chance` beside `falls`.
CHANCE = {"itm": math.log(2), "itm_hard": math.log(2), "oscar_contrastive": math.log(2), "wra": 0.0}
CHANCE_MARGIN = 0.01
# Numbers objectives log to explain a loss (objectives_matching.WRA): reported first -> last too.
LOGGED = ("wra_gap",)
# The long runs: one style per pair task (and per encoder but ViLBERT), presets unchanged, a bounded budget.
LONG_STYLES = ("visualbert", "lxmert", "uniter", "interbert", "oscar")  # ViLBERT: ernie-vil's encoder, slowest
LONG_STEPS = 600
LONG_WINDOW = 20  # logged values per moving mean: a 10-value window at chance dips 0.02 by noise
LONG_MARGIN = 0.02


def _log(msg: str) -> None:
    print(f"bench pretrain-styles: {msg}", file=sys.stderr, flush=True)


def _trend(rows: list[dict[str, Any]], tasks: tuple[str, ...]) -> tuple[dict[str, float], dict[str, float]]:
    first, last = {}, {}
    for t in tasks:
        vals = [r[t] for r in rows if t in r]
        if len(vals) >= 2:
            k = min(WINDOW, len(vals) // 2)
            first[t] = round(sum(vals[:k]) / k, 4)
            last[t] = round(sum(vals[-k:]) / k, 4)
    return first, last


def leaves_chance_at(rows: list[dict[str, Any]], task: str, window: int = LONG_WINDOW,
                     margin: float = LONG_MARGIN) -> int | None:
    """The step (1-based, of the run) at which the mean of `task`'s last `window` logged values first
    is `margin` below its chance loss; None when it never is. Only steps that logged the task count
    (under task sampling most steps do not), and the step reported is the run's own."""
    vals = [(int(r["step"]) + 1, float(r[task])) for r in rows if task in r]
    total = 0.0
    for i, (step, v) in enumerate(vals):
        total += v - (vals[i - window][1] if i >= window else 0.0)
        if i + 1 >= window and total / window < CHANCE[task] - margin:
            return step
    return None


def run_long(name: str, shards: Path, tok: Path, out: Path, steps: int = LONG_STEPS,
             alone: bool = False) -> dict[str, Any]:
    """`steps` steps of a style's preset (the same settings as `run_style`, the task sampling not
    stretched), or with `alone` of its pair tasks only (same encoder, size, options, lr, batch;
    summed): per pair task, `leaves_chance_at` and the mean of its last window. Why both: the
    preset says how long the paper's mix takes to leave chance, the pair tasks alone whether the
    encoder learns to match at all within the budget."""
    from laitkit.pipeline.pretrain.styles import STYLES

    only: dict[str, Any] = {}
    if alone:
        only = {"tasks": tuple(t for t in STYLES[name].tasks if t in CHANCE), "mixing": "sum", "task_weights": {}}
    cfg = bench_config(name, tok, steps, **only)
    _, rows = _train(shards, out, cfg)
    result: dict[str, Any] = {}
    for task in cfg.tasks:
        vals = [r[task] for r in rows if task in r]
        if task in CHANCE and vals:
            tail = vals[-LONG_WINDOW:]
            result[task] = {"leaves_chance_at": leaves_chance_at(rows, task), "last": round(sum(tail) / len(tail), 4)}
    return result


def style_steps(mixing: str, tasks: tuple[str, ...], weights: dict[str, float], steps: int) -> int:
    """`steps` per task: all of them when summed; under task sampling enough that the task with
    the smallest positive weight is drawn about `steps` times."""
    if mixing != "sample" or len(tasks) < 2:
        return steps
    w = [float(weights.get(t, 1.0)) for t in tasks]
    return math.ceil(steps * sum(w) / min(x for x in w if x > 0))


def bench_config(name: str, tok: Path, steps: int, **over: Any) -> Any:
    """The bench's tiny CPU settings for a style's preset (`over`: fields replaced on top)."""
    from laitkit.pipeline.pretrain.config import PretrainConfig

    return PretrainConfig(style=name, size="tiny", steps=steps, batch_size=16, lr=1e-3, warmup=5, vocab=str(tok),
                          progress=False, device="cpu", threads=1, eval_pool=8, checkpoint_every=steps, **over)


def _train(shards: Path, out: Path, cfg: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train from scratch; the run's summary and its metrics.jsonl rows."""
    from laitkit.pipeline.pretrain.train import pretrain

    summary = pretrain(shards, out, cfg, resume=False)
    return summary, [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln]


def run_style(name: str, shards: Path, tok: Path, out: Path, steps: int = STEPS) -> dict[str, Any]:
    cfg = bench_config(name, tok, steps)
    n = style_steps(cfg.mixing, cfg.tasks, cfg.task_weights, steps)
    cfg = dataclasses.replace(cfg, steps=n, checkpoint_every=n)
    tasks = cfg.tasks
    t0 = time.perf_counter()
    summary, rows = _train(shards, out, cfg)
    first, last = _trend(rows, tasks)
    result: dict[str, Any] = {
        "encoder": cfg.encoder, "tasks": list(tasks), "steps": n, "losses_first": first, "losses_last": last,
        "falls": {t: last[t] < first[t] for t in first}, "samples_per_s": summary.get("samples_per_s"),
        "seconds": round(time.perf_counter() - t0, 1), "eval": summary.get("eval", {}),
    }
    result["at_chance"] = [t for t, c in CHANCE.items() if t in last and last[t] > c - CHANCE_MARGIN]
    logged_first, logged_last = _trend(rows, LOGGED)
    if logged_first:  # beside the losses, not instead: `falls` and `at_chance` read the losses alone
        result["logged_first"], result["logged_last"] = logged_first, logged_last
    silent = [t for t in tasks if t not in first]
    if silent:
        result["no_loss"] = silent  # tasks whose targets never appeared in a batch
    return result


def run_pretrain_styles_bench(names: list[str] | None = None, steps: int = STEPS,
                              long_styles: tuple[str, ...] | None = None,
                              long_steps: int = LONG_STEPS) -> dict[str, Any]:
    from laitkit.pipeline.pretrain.styles import STYLES
    from laitkit.pipeline.pretrain.synthetic import write_synthetic_shards
    from laitkit.pipeline.pretrain.train import build_tokenizer

    names = names or list(STYLES)
    with tempfile.TemporaryDirectory(prefix="laitkit-bench-styles-") as tmp:
        root = Path(tmp)
        _log("writing synthetic shards (rendered images, spaCy scene graphs)")
        write_synthetic_shards(root / "shards", 4, 100, dim=DIM, annotate=True, images=True)
        build_tokenizer(root / "shards", root / "tok", vocab_size=400)
        styles: dict[str, Any] = {}
        for name in names:
            _log(f"{name} ...")
            try:
                styles[name] = run_style(name, root / "shards", root / "tok", root / name, steps)
            except Exception as exc:  # a style that fails is a result, reported, not a crashed bench
                styles[name] = {"error": f"{type(exc).__name__}: {exc}"}
            _log(f"{name}: {json.dumps(styles[name])}")
        long: dict[str, Any] = {}
        for name in LONG_STYLES if long_styles is None else long_styles:
            _log(f"{name}: {long_steps} steps for the pair tasks ...")
            long[name] = {}
            for mode in ("preset", "alone"):
                try:
                    long[name][mode] = run_long(name, root / "shards", root / "tok", root / f"{name}-{mode}",
                                                long_steps, alone=mode == "alone")
                except Exception as exc:
                    long[name][mode] = {"error": f"{type(exc).__name__}: {exc}"}
            _log(f"{name} long: {json.dumps(long[name])}")
    ran = [n for n, s in styles.items() if "error" not in s]
    falling = [n for n in ran if styles[n]["falls"] and all(styles[n]["falls"].values())]
    return {
        "styles": styles, "steps": steps, "all_ran": len(ran) == len(names),
        "all_losses_fall": len(falling) == len(names),
        "at_chance": {n: styles[n]["at_chance"] for n in ran if styles[n]["at_chance"]},
        "not_falling": {n: [t for t, f in styles[n]["falls"].items() if not f] for n in ran if n not in falling},
        "pair_tasks_long": long, "pair_tasks_long_steps": long_steps,
    }
