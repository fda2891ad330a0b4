"""`report.html`: one self-contained page a person opens to *look* at what a run kept and cut.

Why HTML with pictures: counts say little about a corpus; the kept images with their detected
boxes and tags, a few examples of each rejection reason with the filter's own words, and the
score distributions say whether the thresholds are right. Why self-contained: thumbnails are
base64 JPEGs drawn with PIL (boxes and "attribute object" tags burnt in) and the charts are
inline SVG, so the file can be mailed or copied off a cluster and still opens everywhere.
Everything is derived from the run's files (shards, run.json, pretraining metrics), like the
Markdown report, so `laitkit report OUT` rewrites it at any time.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

GALLERY = 24  # kept samples shown
EXAMPLES = 4  # examples per rejection reason
SCAN_LIMIT = 20000  # samples read for histograms (a big corpus is sampled by its first shards)
THUMB = 320
BOXES_DRAWN = 12
_PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c",
            "#008080", "#9a6324", "#800000", "#000075")  # fmt: skip


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


def thumbnail(sample: Any, boxes: bool) -> str | None:
    """A JPEG data URI of the sample's image (at most THUMB px), with its top boxes drawn."""
    if not sample.image:
        return None
    from PIL import Image, ImageDraw

    try:
        img = Image.open(io.BytesIO(sample.image)).convert("RGB")
    except Exception:  # noqa: BLE001 - an undecodable image is shown as missing, not a crash
        return None
    scale = min(1.0, THUMB / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    reg = sample.regions
    if boxes and reg is not None and reg.num_boxes:
        draw = ImageDraw.Draw(img)
        sx, sy = img.width / max(1, reg.image_w), img.height / max(1, reg.image_h)
        for j, (x0, y0, x1, y1) in enumerate(reg.boxes[:BOXES_DRAWN].tolist()):
            colour = _PALETTE[j % len(_PALETTE)]
            box = (x0 * sx, y0 * sy, max(x0 * sx, x1 * sx), max(y0 * sy, y1 * sy))
            draw.rectangle(box, outline=colour, width=2)
            label = box_label(reg, j)
            if label:
                tw = draw.textlength(label)
                draw.rectangle((box[0], box[1], box[0] + tw + 4, box[1] + 11), fill=colour)
                draw.text((box[0] + 2, box[1]), label, fill="white")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return _data_uri(buf.getvalue())


def box_label(reg: Any, j: int) -> str:
    """'attribute object' of box j (names when the shard stored them, else class ids)."""
    obj = reg.obj_names[j] if j < len(reg.obj_names) else f"#{int(reg.obj_ids[j])}"
    attr = ""
    if int(reg.attr_ids[j]) >= 0:
        attr = reg.attr_names[j] if j < len(reg.attr_names) else f"#{int(reg.attr_ids[j])}"
    return f"{attr} {obj}".strip()


def graph_lines(text: Any) -> list[str]:
    """The caption's scene graph as readable lines: objects, 'attr → object', 'subj —rel→ obj'."""
    if text is None:
        return []
    nodes = text.graph
    out = []
    for n in nodes:
        if n.kind == "object":
            out.append(n.lemma + (f" ×{n.count}" if n.count > 1 else ""))
        elif n.kind == "attribute" and 0 <= n.subject < len(nodes):
            out.append(f"{n.lemma} → {nodes[n.subject].lemma}")
        elif n.kind == "relation" and 0 <= n.subject < len(nodes) and 0 <= n.object < len(nodes):
            out.append(f"{nodes[n.subject].lemma} —{n.lemma}→ {nodes[n.object].lemma}")
    return out


def _finite(x: float) -> bool:
    return isinstance(x, float | int) and math.isfinite(x)


def collect(out: Path) -> dict[str, Any]:
    """One pass over the shards: gallery and example samples, histogram values, funnel counts."""
    from laitkit.datasets import shards as shardio

    gallery: list[Any] = []
    examples: dict[str, list[Any]] = defaultdict(list)
    scores: dict[str, list[float]] = {"kept": [], "low_relevance": []}
    boxes: list[int] = []
    statuses: Counter[str] = Counter()
    stage_of: dict[str, str] = {}
    seen = 0
    for sub in ("shards", "rejected"):
        folder = out / sub
        if not folder.is_dir():
            continue
        for sample in shardio.iter_parquet(folder):
            seen += 1
            status = sample.status
            statuses[status] += 1
            if status != "keep":
                v = next((v for v in sample.verdicts if str(v.reason) == status), None)
                stage_of.setdefault(status, v.stage if v else "")
            if status == "keep" and sample.regions is not None:
                boxes.append(sample.regions.num_boxes)
            if status in scores and _finite(sample.relevance_score):
                scores[status].append(float(sample.relevance_score))
            if status == "keep" and len(gallery) < GALLERY:
                gallery.append(sample)
            elif status != "keep" and len(examples[status]) < EXAMPLES:
                examples[status].append(sample)
            if seen >= SCAN_LIMIT:
                break
    return {"gallery": gallery, "examples": dict(examples), "scores": scores, "boxes": boxes,
            "statuses": statuses, "stage_of": stage_of, "scanned": seen}  # fmt: skip


# --- SVG charts ----------------------------------------------------------------------------------


def svg_bars(rows: list[tuple[str, float]], width: int = 640, unit: str = "", colour: str = "#4363d8") -> str:
    """Horizontal bars, one per (label, value)."""
    if not rows:
        return "<p class=muted>nothing to show</p>"
    top = max(v for _, v in rows) or 1
    h = 22
    parts = [f'<svg class=chart width="{width}" height="{h * len(rows) + 4}" role="img">']
    for i, (label, v) in enumerate(rows):
        w = max(1.0, (width - 260) * v / top)
        y = i * h + 2
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{esc(label)}</text>'
                     f'<rect x="180" y="{y}" width="{w:.1f}" height="{h - 6}" fill="{colour}"/>'
                     f'<text x="{186 + w:.1f}" y="{y + 14}" font-size="12">'
                     f"{esc(_num(v))}{esc(unit)}</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _num(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"


def svg_histogram(values: dict[str, list[float]], bins: int = 20, threshold: float | None = None,
                  width: int = 640, height: int = 180) -> str:  # fmt: skip
    """Overlaid histograms of several series, with an optional threshold line."""
    allv = [v for vs in values.values() for v in vs]
    if not allv:
        return "<p class=muted>no values</p>"
    lo, hi = min(allv + ([threshold] if threshold is not None else [])), max(allv + ([threshold] if threshold
                                                                                    is not None else []))  # fmt: skip
    if hi <= lo:
        hi = lo + 1
    step = (hi - lo) / bins
    counts = {k: [0] * bins for k in values}
    for k, vs in values.items():
        for v in vs:
            counts[k][min(bins - 1, int((v - lo) / step))] += 1
    top = max(max(c) for c in counts.values()) or 1
    pw, ph = width - 40, height - 30
    colours = dict(zip(values, ("#4363d8", "#e6194b", "#3cb44b"), strict=False))
    parts = [f'<svg class=chart width="{width}" height="{height}" role="img">',
             f'<line x1="30" y1="{ph}" x2="{30 + pw}" y2="{ph}" stroke="#888"/>']  # fmt: skip
    bw = pw / bins
    for k, c in counts.items():
        for i, n in enumerate(c):
            if n:
                bh = ph * n / top
                parts.append(f'<rect x="{30 + i * bw:.1f}" y="{ph - bh:.1f}" width="{bw - 1:.1f}" height="{bh:.1f}" '
                             f'fill="{colours[k]}" fill-opacity="0.6"><title>{esc(k)}: {n}</title></rect>')  # fmt: skip
    if threshold is not None:
        x = 30 + pw * (threshold - lo) / (hi - lo)
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{ph}" stroke="black" stroke-dasharray="4 3"/>'
                     f'<text x="{x + 3:.1f}" y="12" font-size="11">threshold {threshold:.3g}</text>')  # fmt: skip
    parts.append(f'<text x="30" y="{height - 8}" font-size="11">{lo:.3g}</text>'
                 f'<text x="{width - 50}" y="{height - 8}" font-size="11">{hi:.3g}</text>')  # fmt: skip
    legend = " ".join(f'<tspan fill="{colours[k]}">■ {esc(k)} ({len(v)})</tspan>' for k, v in values.items())
    parts.append(f'<text x="{width / 2 - 80:.0f}" y="{height - 8}" font-size="11">{legend}</text></svg>')
    return "".join(parts)


def svg_lines(series: dict[str, list[tuple[float, float]]], width: int = 640, height: int = 220) -> str:
    """Line chart (log y) of several series of (x, y) points: pretraining losses per task."""
    pts = [(x, y) for s in series.values() for x, y in s if y > 0]
    if not pts:
        return "<p class=muted>no losses recorded</p>"
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    ly = [math.log10(p[1]) for p in pts]
    y0, y1 = min(ly), max(ly)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    pw, ph = width - 120, height - 30
    parts = [f'<svg class=chart width="{width}" height="{height}" role="img">',
             f'<rect x="40" y="0" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']  # fmt: skip
    for i, (name, s) in enumerate(series.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        coords = " ".join(f"{40 + pw * (x - x0) / (x1 - x0):.1f},{ph - ph * (math.log10(y) - y0) / (y1 - y0):.1f}"
                          for x, y in s if y > 0)  # fmt: skip
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
                     f'<text x="{width - 75}" y="{14 + 14 * i}" font-size="12" fill="{colour}">'
                     f"{esc(name)}</text>")  # fmt: skip
    parts.append(f'<text x="40" y="{height - 8}" font-size="11">step {x0:.0f}</text>'
                 f'<text x="{40 + pw - 60}" y="{height - 8}" font-size="11">step {x1:.0f}</text>'
                 f'<text x="0" y="12" font-size="11">{10 ** y1:.3g}</text>'
                 f'<text x="0" y="{ph}" font-size="11">{10 ** y0:.3g}</text></svg>')  # fmt: skip
    return "".join(parts)


def loss_series(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    metrics = run_dir / "metrics.jsonl"
    if not metrics.exists():
        return {}
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for line in metrics.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "step" not in row:
            continue
        for k, v in row.items():
            if k in ("mlm", "mrm", "itm", "tags", "sgp", "loss") or (k.endswith("_loss") and k != "eval_loss"):
                if isinstance(v, int | float) and math.isfinite(v):
                    series[k].append((float(row["step"]), float(v)))
    return dict(series)


# --- page ----------------------------------------------------------------------------------------

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;border-radius:6px;padding:8px;width:330px}
.card img{display:block;max-width:320px;margin-bottom:6px}.muted{color:#777}.warn{background:#fff3cd;
border:1px solid #e0c060;padding:8px;border-radius:6px}.pos{font-family:monospace;font-size:12px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.reason{font-weight:bold;color:#a00}code{font-size:12px;word-break:break-all}"""


def _sample_card(s: Any, img: str | None, kept: bool) -> str:
    parts = ['<div class="card">']
    if img:
        parts.append(f'<img class="{"gallery" if kept else "example"}" src="{img}" alt="{esc(s.key)}">')
    else:
        parts.append('<p class="muted">(no image: not downloaded or not decodable)</p>')
    parts.append(f"<div><b>{esc(s.caption) or '<i>no caption</i>'}</b>"
                 f' <span class="muted">[{esc(s.caption_source or "?")}]</span></div>')  # fmt: skip
    parts.append(f'<div class="muted"><code>{esc(s.url)}</code><br>on <code>{esc(s.page_url)}</code></div>')
    if not kept:
        for v in s.verdicts:
            if str(v.reason) != "keep":
                parts.append(f'<div><span class="reason">{esc(v.reason)}</span> ({esc(v.stage)}): '
                             f"{esc(v.detail)}</div>")  # fmt: skip
                break
    if _finite(s.relevance_score):
        parts.append(f"<div>relevance score: {s.relevance_score:.3f}</div>")
    if kept and s.regions is not None:
        tags = ", ".join(box_label(s.regions, j) for j in range(min(s.regions.num_boxes, BOXES_DRAWN)))
        parts.append(f"<div>{s.regions.num_boxes} boxes: {esc(tags)}</div>")
    if kept and s.text is not None:
        pos = " ".join(f"{esc(t)}/{esc(p)}" for t, p in zip(s.text.tokens, s.text.upos, strict=False))
        parts.append(f'<div class="pos">{pos}</div>')
        graph = graph_lines(s.text)
        if graph:
            parts.append("<div>scene graph: " + "; ".join(esc(g) for g in graph) + "</div>")
    parts.append("</div>")
    return "".join(parts)


def funnel_rows(report: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, float]]:
    """pages → candidates → after each rejecting filter (pipeline order) → kept."""
    from laitkit.datasets.schema import Reason

    statuses: Counter[str] = data["statuses"]
    total = sum(statuses.values())
    rows: list[tuple[str, float]] = []
    if report.get("pages"):
        rows.append(("pages", float(report["pages"])))
    rows.append(("candidate pairs", float(total)))
    left = total
    for reason in Reason:
        n = statuses.get(str(reason), 0)
        if reason == Reason.KEEP or not n:
            continue
        left -= n
        rows.append((f"after {reason}", float(left)))
    rows.append(("kept", float(statuses.get("keep", 0))))
    return rows


def render_html(out: Path, report: dict[str, Any]) -> str:
    data = collect(out)
    body = [f"<h1>laitkit run report</h1><p><code>{esc(report['out'])}</code></p>",
            f"<p><b>{report['kept']}</b> kept samples in {report['shards']} shard(s), "
            f"<b>{report['rejected']}</b> rejected, each with its reason.</p>"]  # fmt: skip
    for w in report.get("warnings", []):
        body.append(f'<p class="warn">⚠ {esc(w)}</p>')
    body.append("<h2>Funnel</h2>" + svg_bars(funnel_rows(report, data)))
    body.append("<h2>Kept samples</h2><p class=muted>boxes and 'attribute object' tags as detected; "
                "caption [its source]; POS; scene graph; relevance score</p><div class=cards>")  # fmt: skip
    body += [_sample_card(s, thumbnail(s, boxes=True), kept=True) for s in data["gallery"]]
    body.append("</div><h2>Rejections by reason</h2>")
    for reason, n in sorted(data["statuses"].items(), key=lambda kv: -kv[1]):
        if reason == "keep":
            continue
        stage = data["stage_of"].get(reason, "")
        body.append(f"<h3>{esc(reason)}: {n} <span class=muted>(stage {esc(stage)})</span></h3><div class=cards>")
        body += [_sample_card(s, thumbnail(s, boxes=False), kept=False) for s in data["examples"].get(reason, [])]
        body.append("</div>")
    rel = report.get("relevance") or {}
    body.append("<h2>Relevance scores</h2>" + svg_histogram(data["scores"], threshold=rel.get("threshold")))
    nbins = max(1, min(20, len(set(data["boxes"]))))
    body.append("<h2>Boxes per kept image</h2>" + svg_histogram({"boxes": [float(b) for b in data["boxes"]]}, nbins))
    body.append("<h2>Pretraining losses</h2>" + svg_lines(loss_series(out / "pretrain")))
    stage_rows = [(k, float(v)) for k, v in (report.get("stage_seconds") or {}).items()]
    body.append("<h2>Stage times</h2>" + svg_bars(stage_rows, unit=" s", colour="#3cb44b"))
    if data["scanned"] >= SCAN_LIMIT:
        body.append(f"<p class=muted>charts read the first {SCAN_LIMIT} samples</p>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>laitkit report</title>'
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")  # fmt: skip


def write_html(out: Path, report: dict[str, Any]) -> Path:
    from laitkit.atomic import atomic_write_text

    path = out / "report.html"
    atomic_write_text(path, render_html(out, report))
    return path
