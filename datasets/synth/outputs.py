"""The tables that describe a generated site: truth, URL list, gold objects, and synth.json.

Why explicit Arrow schemas: downstream tests join these files with crawl output; with schemas
spelled out here, a column cannot change type because one generation happened to hold no rows of
some kind, and the column list is documented in one place.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from laitkit.datasets.schema import Reason
from laitkit.datasets.synth.noise import STOCK_MIN_USES

SYNTH_VERSION = "1"

#: One row per candidate pair (page, image): main images and decoys, in document order.
TRUTH_SCHEMA = pa.schema(
    [
        ("page_url", pa.string()),
        ("img_url", pa.string()),
        ("caption", pa.string()),  # the English caption a correct crawler picks, or ""
        ("expected", pa.string()),  # a `Reason` value
        ("noise", pa.string()),  # the noise kind, e.g. clean, non_english, http_404, decoy_logo
        ("image_id", pa.string()),  # key into objects.parquet; "" when nothing decodable is served
        ("is_main", pa.bool_()),
        ("caption_source", pa.string()),  # alt | title | figcaption | ""
        ("markup", pa.string()),  # plain | data-src | srcset-w | srcset-x | picture | "" (decoys)
    ]
)
#: img2dataset-style list: one row per main-image candidate.
URLS_SCHEMA = pa.schema([("url", pa.string()), ("caption", pa.string()), ("page_url", pa.string())])
_RELATION = pa.struct([("subject", pa.int32()), ("predicate", pa.string()), ("object", pa.int32())])
#: Gold annotations per image: boxes are xyxy in original pixels; graphics have empty lists.
OBJECTS_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("boxes", pa.list_(pa.list_(pa.float32()))),
        ("labels", pa.list_(pa.string())),
        ("attributes", pa.list_(pa.list_(pa.string()))),
        ("relations", pa.list_(_RELATION)),
    ]
)


@dataclass
class TruthRow:
    page_url: str
    img_url: str
    caption: str
    expected: str
    noise: str
    image_id: str
    is_main: bool
    caption_source: str = ""
    markup: str = ""


def write_tables(
    out_dir: Path, truth: list[TruthRow], raw_alt: dict[tuple[str, str], str], objects: dict[str, dict[str, Any]]
) -> None:
    """Write truth.parquet, urls.parquet and objects.parquet.

    The URL list gives each main image the caption a crawler should pick, or — where none should be
    picked (non-English, useless alt) — the raw alt a naive alt-text crawler would list.
    """
    pq.write_table(pa.Table.from_pylist([asdict(r) for r in truth], schema=TRUTH_SCHEMA), out_dir / "truth.parquet")
    urls = [
        {"url": r.img_url, "caption": r.caption or raw_alt[(r.page_url, r.img_url)], "page_url": r.page_url}
        for r in truth
        if r.is_main
    ]
    pq.write_table(pa.Table.from_pylist(urls, schema=URLS_SCHEMA), out_dir / "urls.parquet")
    rows = [objects[k] for k in sorted(objects)]
    pq.write_table(pa.Table.from_pylist(rows, schema=OBJECTS_SCHEMA), out_dir / "objects.parquet")


def summary(truth: list[TruthRow], **fields: Any) -> dict[str, Any]:
    """The synth.json content: the given fields plus counts per verdict and per noise kind."""
    main = [r for r in truth if r.is_main]
    return {
        "version": SYNTH_VERSION,
        **fields,
        "candidates": len(truth),
        "main_candidates": len(main),
        "stock_caption_min_uses": STOCK_MIN_USES,
        "counts": dict(sorted(Counter(r.expected for r in truth).items())),
        "counts_main": dict(sorted(Counter(r.expected for r in main).items())),
        "noise": dict(sorted(Counter(r.noise for r in truth).items())),
        "kept_main_fraction": round(sum(r.expected == Reason.KEEP for r in main) / max(1, len(main)), 4),
    }
