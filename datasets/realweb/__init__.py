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


#: Visual Genome region captions (FACTUAL's dev split), shared next to the repository when present
FACTUAL_DEV = ROOT.parents[1] / ".." / "shared" / "data" / "factual" / "dev.csv"
_SCRIPTS_WITHOUT_LATIN = ("chinese", "japanese", "arabic", "russian")


def load_lang_captions(root: Path = ROOT) -> list[tuple[str, str]]:
    """(language, caption) rows of lang_captions.tsv (English with names, and six other languages)."""
    rows = []
    for line in (root / "lang_captions.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            code, caption = line.split("\t", 1)
            rows.append((code, caption))
    return rows


def evaluate_lang(cfg: Any = None, root: Path = ROOT, vg_path: Path = FACTUAL_DEV, vg_n: int = 1000) -> dict[str, Any]:
    """The crawl's language step on captions whose language is known: English captions rejected
    and non-English ones kept, per set, with the offending captions.

    Sets: `vg` (the first `vg_n` Visual Genome region captions, 3-8 words; left out when the shared
    data is absent), `realweb_en` (the English main-image captions of the real-web corpus),
    `en_names` and `foreign` (lang_captions.tsv).
    """
    import csv

    from laitkit.pipeline.crawl import CrawlConfig
    from laitkit.pipeline.crawl.lang import decide

    cfg = cfg or CrawlConfig()
    rows = load_lang_captions(root)
    english: dict[str, list[str]] = {
        "realweb_en": [m["caption"] for p in load_truth(root) if p["kind"] not in _SCRIPTS_WITHOUT_LATIN
                       for m in p["main"]],  # fmt: skip
        "en_names": [c for code, c in rows if code == "en"],
    }
    if vg_path.is_file():
        with vg_path.open(encoding="utf-8", newline="") as fh:
            english["vg"] = [r["caption"] for _, r in zip(range(vg_n), csv.DictReader(fh), strict=False)]
    foreign = [c for code, c in rows if code != "en"]

    def english_ok(text: str) -> bool:
        return decide(text, tuple(cfg.languages), cfg.lang_low_accuracy, cfg.min_lang_score, cfg.lang_margin,
                      cfg.lang_vote_words, cfg.lang_word_margin).english  # fmt: skip

    out: dict[str, Any] = {}
    for name, texts in sorted(english.items()):
        wrong = [t for t in texts if not english_ok(t)]
        out[f"{name}_english_rejected"] = f"{len(wrong)}/{len(texts)}"
        out.setdefault("wrong", []).extend(f"{name}: rejected {t!r}" for t in wrong)
    kept = [t for t in foreign if english_ok(t)]
    out["foreign_kept"] = f"{len(kept)}/{len(foreign)}"
    out.setdefault("wrong", []).extend(f"foreign: kept {t!r}" for t in kept)
    return out
