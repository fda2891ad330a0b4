"""A corpus of realistic web pages with truth, kept apart from the synthetic web, and its scorer.

Why: the synthetic web is laitkit's own, so agreeing with it says little about pages written by
others. These 61 pages imitate 15 kinds of real sites (write_corpus.py says how they were made
and the truth rules); `evaluate` runs the crawl's DOM step and caption choice on each and scores
main-image F1 (by URL) and exact caption agreement on the true main images that were found.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent


def load_truth(root: Path = ROOT) -> list[dict[str, Any]]:
    return json.loads((root / "truth.json").read_text(encoding="utf-8"))["pages"]


def evaluate(cfg: Any = None, root: Path = ROOT) -> dict[str, Any]:
    """{main_f1, main_precision, main_recall, caption_exact, per_kind, misses} on the corpus."""
    from laitkit.pipeline.crawl.extract import extract_records

    tp = fp = fn = cap_ok = cap_n = 0
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # tp, fp, fn, cap_ok, cap_n
    misses: list[str] = []
    for page in load_truth(root):
        html = (root / page["file"]).read_text(encoding="utf-8")
        records = extract_records(html, page["url"], cfg)
        predicted = {r["url"]: r for r in records if r["is_main"]}
        truth = {m["url"]: m["caption"] for m in page["main"]}
        k = kinds[page["kind"]]
        for url, caption in truth.items():
            if url in predicted:
                tp += 1
                k[0] += 1
                cap_n += 1
                k[4] += 1
                got = predicted[url]["caption"]
                if got == caption:
                    cap_ok += 1
                    k[3] += 1
                else:
                    misses.append(f"{page['file']}: caption {got!r} != {caption!r}")
            else:
                fn += 1
                k[2] += 1
                misses.append(f"{page['file']}: main image missed {url}")
        for url in predicted.keys() - truth.keys():
            fp += 1
            k[1] += 1
            misses.append(f"{page['file']}: decoy kept {url} ({predicted[url]['detail'][:80]})")
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    per_kind = {
        kind: {"f1": round(2 * a / max(1, 2 * a + b + c), 4), "caption_exact": round(d / max(1, e), 4)}
        for kind, (a, b, c, d, e) in sorted(kinds.items())
    }
    return {
        "pages": len(load_truth(root)),
        "main_f1": round(f1, 4),
        "main_precision": round(precision, 4),
        "main_recall": round(recall, 4),
        "caption_exact": round(cap_ok / max(1, cap_n), 4),
        "per_kind": per_kind,
        "misses": misses,
    }
