"""The run report: what was kept, what was rejected and why, how fast, and (on the synthetic
web) how the verdicts compare with the ground truth.

Why derived from files only: numbers come from the shards' stats, the manifests, `run.json` and
the pretraining metrics, never from logs, so `laitkit report OUT` can be rerun on any finished
(or half-finished) job and says the same thing.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from laitkit.datasets.shards import list_shard_files


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _status_counts(shard_dir: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for stats in sorted(shard_dir.glob("*_stats.json")):
        counts.update(json.loads(stats.read_text()).get("status_counts", {}))
    return counts


def truth_agreement(out: Path, truth_path: Path) -> dict[str, Any] | None:
    """Per expected verdict: how many candidate pairs got exactly that verdict."""
    if not truth_path.exists():
        return None
    actual: dict[tuple[str, str], str] = {}
    for sub in ("shards", "rejected"):
        for f in list_shard_files(out / sub, "parquet") if (out / sub).is_dir() else []:
            for row in pq.read_table(f, columns=["page_url", "url", "status"]).to_pylist():
                actual.setdefault((row["page_url"], row["url"]), row["status"])
    truth = pq.read_table(truth_path, columns=["page_url", "img_url", "expected"]).to_pylist()
    per: dict[str, Counter[str]] = {}
    for row in truth:
        got = actual.get((row["page_url"], row["img_url"]), "missing")
        per.setdefault(row["expected"], Counter())[got] += 1
    total = sum(sum(c.values()) for c in per.values())
    right = sum(c[exp] for exp, c in per.items())
    return {
        "pairs": total,
        "agreement": round(right / total, 4) if total else 0.0,
        "per_expected": {
            exp: {"n": sum(c.values()), "correct": c[exp], "got": dict(c.most_common())}
            for exp, c in sorted(per.items())
        },
    }


def plot_pretrain_losses(run_dir: Path) -> Path | None:
    """`losses.png` beside the run's `metrics.jsonl`: each task's loss per step, smoothed over 10 steps."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.exists():
        return None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    tasks = [t for t in ("mlm", "mrm", "itm", "tags", "sgp") if any(t in r for r in rows)]
    if not rows or not tasks:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for task in tasks:
        pts = [(r["step"], r[task]) for r in rows if task in r]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        smooth = [sum(ys[max(0, i - 9) : i + 1]) / len(ys[max(0, i - 9) : i + 1]) for i in range(len(ys))]
        ax.plot(xs, smooth, label=task)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (10-step mean)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("pretraining losses")
    fig.tight_layout()
    png = run_dir / "losses.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def build_report(out: Path) -> dict[str, Any]:
    run = _read_json(out / "run.json") or {}
    kept = _status_counts(out / "shards")
    rejected = _status_counts(out / "rejected")
    manifest = _read_json(out / "shards" / "manifest.json") or {}
    synth = _read_json(out / "synth-web" / "synth.json")
    report: dict[str, Any] = {
        "out": str(out),
        "shards_dir": str(out / "shards"),
        "rejected_dir": str(out / "rejected"),
        "kept": sum(kept.values()),
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(rejected.most_common()),
        "shards": len(manifest.get("shards", [])),
        "feature_dim": manifest.get("feature_dim"),
        "stage_seconds": run.get("stage_seconds", {}),
        "pretrain": _read_json(out / "pretrain" / "summary.json") or {},
    }
    png = plot_pretrain_losses(out / "pretrain")
    if png is not None:
        report["pretrain_plot"] = str(png.relative_to(out))
    if synth is not None:
        report["truth"] = truth_agreement(out, out / "synth-web" / "truth.parquet")
    config = _read_json(out / "config.json")
    if config is not None and "relevance" in config:
        from laitkit.pipeline.relevance_report import relevance_section

        report["relevance"] = relevance_section(out, config.get("relevance") or {})
    return report


def render_markdown(r: dict[str, Any]) -> str:
    lines = [
        "# laitkit run report",
        "",
        f"- output: `{r['out']}`",
        f"- kept samples: **{r['kept']}** in {r['shards']} shard(s) at `{r['shards_dir']}`",
        f"- region feature dim: {r['feature_dim']}",
        f"- rejected samples: **{r['rejected']}** at `{r['rejected_dir']}`",
        "",
        "## Rejections by reason",
        "",
        "| reason | samples |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in r["rejected_by_reason"].items()]
    lines += ["", "## Stage wall time (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r["stage_seconds"].items()]
    truth = r.get("truth")
    if truth:
        head = f"## Agreement with the synthetic web's truth: {truth['agreement']:.1%} of {truth['pairs']} pairs"
        lines += ["", head]
        lines += ["", "| expected | pairs | correct | got |", "|---|---|---|---|"]
        for exp, d in truth["per_expected"].items():
            got = ", ".join(f"{k}: {v}" for k, v in d["got"].items())
            lines.append(f"| {exp} | {d['n']} | {d['correct']} | {got} |")
    if r.get("relevance"):
        from laitkit.pipeline.relevance_report import render

        lines += render(r["relevance"])
    p = r.get("pretrain") or {}
    if p:
        lines += ["", f"## Pretraining: {p.get('steps')} steps on {p.get('device')} in {p.get('seconds')} s", ""]
        lines += ["| task | first loss | last loss |", "|---|---|---|"]
        for task in ("mlm", "tags", "sgp", "mrm", "itm", "loss"):
            if f"{task}_first" in p:
                lines.append(f"| {task} | {p[f'{task}_first']} | {p[f'{task}_last']} |")
        ev = p.get("eval") or {}
        if "i2t_r1" in ev:
            lines += ["", f"Held-out ({ev.get('heldout_examples')} samples, pool {ev.get('pool')}): "
                      f"ITM acc {ev.get('itm_acc')}, MLM acc {ev.get('mlm_acc')}, "
                      f"image→text R@1/5/10 {ev.get('i2t_r1')}/{ev.get('i2t_r5')}/{ev.get('i2t_r10')}, "
                      f"text→image R@1/5/10 {ev.get('t2i_r1')}/{ev.get('t2i_r5')}/{ev.get('t2i_r10')} "
                      f"(chance R@1 {ev.get('chance_r1')})"]
        if r.get("pretrain_plot"):
            lines += ["", f"![pretraining losses]({r['pretrain_plot']})"]
    return "\n".join(lines) + "\n"


def write_report(out: Path) -> Path:
    """Write `report.json` and `report.md` into `out`; return the markdown path."""
    r = build_report(out)
    (out / "report.json").write_text(json.dumps(r, indent=2, sort_keys=True))
    md = out / "report.md"
    md.write_text(render_markdown(r))
    return md
