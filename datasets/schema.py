"""The one sample record every stage reads and writes, and its Arrow schema.

Why one module: crawl, regions, text, shards and pretraining all touch the same sample. If each
stage kept its own dict, a typo would silently create a new key. Here the record is a set of
frozen-by-convention dataclasses with a schema version, and `arrow_schema()` is derived from the
same field list so the Parquet and WebDataset forms cannot drift apart.

Stages add fields; they never rewrite fields written upstream. Verdicts are data: every filter
appends a `Verdict`, and `Sample.status` is "keep" or the first rejecting reason.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa

# 1.1: scene-graph nodes carry `tokens` (their exact token indices, see `SceneNode`). Records of 1.0
# stay readable by `Sample.from_parts`/`table_to_samples`: their nodes get tokens = range(span).
SCHEMA_VERSION = "1.1"
READABLE_SCHEMA_VERSIONS = ("1.0", "1.1")


class CaptionSource(StrEnum):
    """Where a candidate text came from in the page (ImageBERT's LAIT uses alt first)."""

    ALT = "alt"
    TITLE = "title"
    FIGCAPTION = "figcaption"
    SURROUNDING = "surrounding"
    OG = "og"
    LIST = "list"  # given with the URL in an img2dataset-style list
    WAT = "wat"  # alt text from a Common Crawl WAT record's link list (no DOM context)


class Reason(StrEnum):
    """Why a candidate pair was rejected; `KEEP` when it was not. A typo is an AttributeError."""

    KEEP = "keep"
    ROBOTS_NOAI = "robots_noai"
    DECOY = "decoy"
    BAD_RECORD = "bad_record"  # a corrupt WARC record (bad gzip member, malformed headers): skipped
    BAD_HTML = "bad_html"  # the image is in markup the HTML parser gave up on (nesting beyond its limit)
    NO_BASE_URL = "no_base_url"  # a relative image URL on a page known only by its file path (set input.base_url)
    NO_CAPTION = "no_caption"
    USELESS_CAPTION = "useless_caption"
    NOT_ENGLISH = "not_english"
    NSFW = "nsfw"
    BLOCKED_ADDRESS = "blocked_address"  # host resolves to a private/loopback/metadata/... address
    ROBOTS_TXT = "robots_txt"  # the image host's robots.txt disallows the URL (or is unreachable)
    DOWNLOAD_ERROR = "download_error"
    DECODE_ERROR = "decode_error"
    TOO_SMALL = "too_small"
    BAD_ASPECT = "bad_aspect"
    UNNATURAL = "unnatural"
    DUP_URL = "dup_url"
    DUP_SHA256 = "dup_sha256"
    DUP_PHASH = "dup_phash"
    DUP_CAPTION = "dup_caption"
    LOW_RELEVANCE = "low_relevance"
    REGIONS_ERROR = "regions_error"


@dataclass
class Verdict:
    """One filter's decision on one sample: which filter, what it decided, and a human detail."""

    stage: str
    reason: Reason
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "reason": str(self.reason), "detail": self.detail}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(stage=d["stage"], reason=Reason(d["reason"]), detail=d.get("detail", ""))


@dataclass
class TextCandidate:
    """A text found near the image on the page; all are kept so later recipes can re-choose."""

    source: CaptionSource
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"source": str(self.source), "text": self.text}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextCandidate:
        return cls(source=CaptionSource(d["source"]), text=d["text"])


OPTIONAL_REGION_ARRAYS = ("box_conf", "soft_ids", "soft_probs")


@dataclass
class Regions:
    """Detector output for one image, bottom-up-attention conventions.

    `boxes` are xyxy in original-image pixels (not the resized network input), so exports to
    LXMERT/UNITER need only `image_h`/`image_w` to normalise them.
    """

    detector: str
    image_h: int
    image_w: int
    boxes: np.ndarray  # float32 (N, 4) xyxy
    features: np.ndarray  # float16 (N, D)
    obj_ids: np.ndarray  # int64 (N,)
    obj_conf: np.ndarray  # float32 (N,)
    attr_ids: np.ndarray  # int64 (N,) top attribute per box, -1 when none passes the threshold
    attr_conf: np.ndarray  # float32 (N,)
    obj_names: list[str] = field(default_factory=list)
    attr_names: list[str] = field(default_factory=list)
    # Optional (absent in shards written before they existed; readers fall back, see regions_export):
    box_conf: np.ndarray | None = None  # float32 (N,) the score with which the box survived BUTD's NMS
    soft_ids: np.ndarray | None = None  # int32 (N, k+1) class columns, 0 = background (always first), c+1 = class c
    soft_probs: np.ndarray | None = None  # float16 (N, k+1) their probabilities: a top-k sparse class distribution

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1]) if self.features.ndim == 2 else 0

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = self.boxes.shape[0]
        features = np.asarray(self.features, dtype=np.float16)
        # reshape(0, -1) is an error in numpy, and a detector may keep no box: keep D for N == 0.
        d = features.shape[-1] if features.ndim else 0
        self.features = features.reshape(n, -1) if n else features.reshape(0, d)
        self.obj_ids = np.asarray(self.obj_ids, dtype=np.int64).reshape(n)
        self.obj_conf = np.asarray(self.obj_conf, dtype=np.float32).reshape(n)
        self.attr_ids = np.asarray(self.attr_ids, dtype=np.int64).reshape(n)
        self.attr_conf = np.asarray(self.attr_conf, dtype=np.float32).reshape(n)
        if len(self.obj_names) not in (0, n) or len(self.attr_names) not in (0, n):
            raise ValueError("obj_names/attr_names must have one entry per box")
        if self.box_conf is not None:
            self.box_conf = np.asarray(self.box_conf, dtype=np.float32).reshape(n)
        if (self.soft_ids is None) != (self.soft_probs is None):
            raise ValueError("soft_ids and soft_probs come together")
        if self.soft_ids is not None:
            ids = np.asarray(self.soft_ids, dtype=np.int32)
            self.soft_ids = ids.reshape(n, -1) if n else ids.reshape(0, ids.shape[-1] if ids.ndim == 2 else 1)
            self.soft_probs = np.asarray(self.soft_probs, dtype=np.float16).reshape(self.soft_ids.shape)

    def arrays(self) -> dict[str, np.ndarray]:
        """The numeric part, as stored in the WebDataset `.npz` member."""
        return {
            "boxes": self.boxes,
            "features": self.features,
            "obj_ids": self.obj_ids,
            "obj_conf": self.obj_conf,
            "attr_ids": self.attr_ids,
            "attr_conf": self.attr_conf,
            **{k: v for k, v in self.optional_arrays().items() if v is not None},
        }

    def optional_arrays(self) -> dict[str, np.ndarray | None]:
        return {"box_conf": self.box_conf, "soft_ids": self.soft_ids, "soft_probs": self.soft_probs}

    def meta(self) -> dict[str, Any]:
        """The non-array part, as stored in the WebDataset `.json` member."""
        return {
            "detector": self.detector,
            "image_h": self.image_h,
            "image_w": self.image_w,
            "num_boxes": self.num_boxes,
            "obj_names": list(self.obj_names),
            "attr_names": list(self.attr_names),
        }

    @classmethod
    def from_parts(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Regions:
        return cls(
            detector=meta["detector"],
            image_h=int(meta["image_h"]),
            image_w=int(meta["image_w"]),
            obj_names=list(meta.get("obj_names", [])),
            attr_names=list(meta.get("attr_names", [])),
            **{k: arrays[k] for k in ("boxes", "features", "obj_ids", "obj_conf", "attr_ids", "attr_conf")},
            **{k: arrays.get(k) for k in OPTIONAL_REGION_ARRAYS},
        )


@dataclass(slots=True, init=False)
class SceneNode:
    """An object, attribute or relation of a caption's scene graph, with the exact words it covers.

    Why both `tokens` and `span`: a node's words need not be contiguous ("wearing a hat and
    sitting" -> the relation "wear" is word 0 only; "sitting on the edge of the bed" -> the relation
    "sit on the edge of" covers "sitting" and "on the edge of" but not a determiner in between, and
    "a man standing with his dog" -> "stand with" is two words with "his" elsewhere). Pretraining
    (SGP masking) must mask exactly the node's words, so `tokens` is the truth and `span` is kept
    only as its covering range for readers written against schema 1.0.

    Field format (schema 1.1), all indices 0-based over `TextAnnotation.tokens` (spaCy tokens, the
    same list as `upos`/`tags`/`lemmas`; a sub-word mapper maps each token index to its pieces):
        tokens: tuple of distinct token indices in increasing order, at least one for a node the
            text stage wrote; it may have gaps. JSON: a list of ints; Parquet: list<int32>.
        span: (start, end) with start = min(tokens), end = max(tokens) + 1, i.e. the half-open
            range covering `tokens` (equal to it when the words are contiguous). JSON: [start, end];
            Parquet: fixed_size_list<int32>[2].
    Schema 1.0 records have no `tokens`; `from_dict` then sets tokens = range(start, end), which is
    exactly what 1.0 meant. Constructing a node with only `span` does the same; with only `tokens`
    the span is derived from them.
    For objects `subject`/`object` are unused (-1); attributes point at their object's index in
    `TextAnnotation.graph` in `subject`; relations use both. `count` is the object's number (2 for
    a plural without a number word).
    """

    kind: str  # "object" | "attribute" | "relation"
    lemma: str
    span: tuple[int, int] = (0, 0)
    subject: int = -1
    object: int = -1
    count: int = 1
    tokens: tuple[int, ...] = ()

    def __init__(
        self,
        kind: str,
        lemma: str,
        span: tuple[int, int] = (0, 0),
        subject: int = -1,
        object: int = -1,  # noqa: A002 - the field's name (schema 1.0)
        count: int = 1,
        tokens: tuple[int, ...] = (),
    ) -> None:
        """The dataclass's own signature, written out (`init=False`): one Python call per node
        instead of `__init__` then `__post_init__`; the text stage makes ~4 nodes per caption."""
        self.kind = kind
        self.lemma = lemma
        self.subject = subject
        self.object = object
        self.count = count
        t = tokens
        if t:
            # fast path: the text stage builds its nodes from tuples of one or two increasing
            # Python ints, which are already their own normal form
            if type(t) is tuple and type(t[0]) is int and (
                len(t) == 1 or (len(t) == 2 and type(t[1]) is int and t[0] < t[1])
            ):
                self.tokens = t
                self.span = (t[0], t[-1] + 1)
                return
            t = tuple(sorted({int(x) for x in t})) if len(t) > 1 else (int(t[0]),)
            self.tokens = t
            self.span = (t[0], t[-1] + 1)
        else:
            a, b = int(span[0]), int(span[1])
            self.span = (a, b)
            self.tokens = tuple(range(a, b))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "lemma": self.lemma,
            "span": [int(self.span[0]), int(self.span[1])],
            "subject": self.subject,
            "object": self.object,
            "count": self.count,
            "tokens": [int(t) for t in self.tokens],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneNode:
        return cls(
            kind=d["kind"],
            lemma=d["lemma"],
            span=(int(d["span"][0]), int(d["span"][1])),
            subject=int(d.get("subject", -1)),
            object=int(d.get("object", -1)),
            count=int(d.get("count", 1)),
            tokens=tuple(int(t) for t in d.get("tokens") or ()),  # absent in schema 1.0: from span
        )


@dataclass
class TextAnnotation:
    """Linguistic annotation of the caption: POS sequence and textual scene graph."""

    model: str
    tokens: list[str]
    upos: list[str]
    tags: list[str]
    lemmas: list[str]
    graph: list[SceneNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tokens": list(self.tokens),
            "upos": list(self.upos),
            "tags": list(self.tags),
            "lemmas": list(self.lemmas),
            "graph": [n.to_dict() for n in self.graph],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextAnnotation:
        return cls(
            model=d["model"],
            tokens=list(d["tokens"]),
            upos=list(d["upos"]),
            tags=list(d["tags"]),
            lemmas=list(d["lemmas"]),
            graph=[SceneNode.from_dict(n) for n in d.get("graph") or []],
        )


@dataclass
class Sample:
    """One candidate (image URL, caption) pair and everything the stages learned about it."""

    key: str
    url: str
    page_url: str = ""
    caption: str = ""
    caption_source: str = ""
    candidates: list[TextCandidate] = field(default_factory=list)
    lang: str = ""
    lang_score: float = 0.0
    image: bytes = b""  # JPEG bytes after resizing
    width: int = 0
    height: int = 0
    orig_width: int = 0
    orig_height: int = 0
    sha256: str = ""  # of the original downloaded bytes
    phash: str = ""  # 64-bit perceptual hash, hex
    verdicts: list[Verdict] = field(default_factory=list)
    relevance_score: float = float("nan")
    nsfw_score: float = float("nan")
    unnatural_score: float = float("nan")
    regions: Regions | None = None
    text: TextAnnotation | None = None
    schema_version: str = SCHEMA_VERSION

    @property
    def status(self) -> str:
        """'keep' unless some verdict rejected the sample; then the first rejecting reason."""
        for v in self.verdicts:
            if v.reason != Reason.KEEP:
                return str(v.reason)
        return str(Reason.KEEP)

    @property
    def kept(self) -> bool:
        return self.status == Reason.KEEP

    def reject(self, stage: str, reason: Reason, detail: str = "") -> None:
        self.verdicts.append(Verdict(stage, reason, detail))

    def accept(self, stage: str, detail: str = "") -> None:
        self.verdicts.append(Verdict(stage, Reason.KEEP, detail))

    def meta(self) -> dict[str, Any]:
        """Everything but the image bytes and region arrays: the WebDataset `.json` member."""
        return {
            "schema_version": self.schema_version,
            "key": self.key,
            "url": self.url,
            "page_url": self.page_url,
            "caption": self.caption,
            "caption_source": self.caption_source,
            "candidates": [c.to_dict() for c in self.candidates],
            "lang": self.lang,
            "lang_score": self.lang_score,
            "width": self.width,
            "height": self.height,
            "orig_width": self.orig_width,
            "orig_height": self.orig_height,
            "sha256": self.sha256,
            "phash": self.phash,
            "status": self.status,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "relevance_score": _json_float(self.relevance_score),
            "nsfw_score": _json_float(self.nsfw_score),
            "unnatural_score": _json_float(self.unnatural_score),
            "regions": self.regions.meta() if self.regions is not None else None,
            "text": self.text.to_dict() if self.text is not None else None,
        }

    @classmethod
    def from_parts(
        cls, meta: dict[str, Any], image: bytes = b"", arrays: dict[str, np.ndarray] | None = None
    ) -> Sample:
        """Inverse of `meta()` + image bytes + region arrays (the WebDataset members)."""
        regions = None
        if meta.get("regions") is not None:
            if arrays is None:
                raise ValueError(f"sample {meta['key']}: regions metadata without arrays")
            regions = Regions.from_parts(meta["regions"], arrays)
        text = TextAnnotation.from_dict(meta["text"]) if meta.get("text") is not None else None
        return cls(
            key=meta["key"],
            url=meta["url"],
            page_url=meta.get("page_url", ""),
            caption=meta.get("caption", ""),
            caption_source=meta.get("caption_source", ""),
            candidates=[TextCandidate.from_dict(c) for c in meta.get("candidates") or []],
            lang=meta.get("lang", ""),
            lang_score=float(meta.get("lang_score", 0.0)),
            image=image,
            width=int(meta.get("width", 0)),
            height=int(meta.get("height", 0)),
            orig_width=int(meta.get("orig_width", 0)),
            orig_height=int(meta.get("orig_height", 0)),
            sha256=meta.get("sha256", ""),
            phash=meta.get("phash", ""),
            verdicts=[Verdict.from_dict(v) for v in meta.get("verdicts") or []],
            relevance_score=_from_json_float(meta.get("relevance_score")),
            nsfw_score=_from_json_float(meta.get("nsfw_score")),
            unnatural_score=_from_json_float(meta.get("unnatural_score")),
            regions=regions,
            text=text,
            schema_version=meta.get("schema_version", SCHEMA_VERSION),
        )


def _json_float(x: float) -> float | None:
    return None if x != x else float(x)  # NaN is not valid JSON


def _from_json_float(x: float | None) -> float:
    return float("nan") if x is None else float(x)


_KEY_CHARS = re.compile(r"[^a-z0-9]+")


def make_key(url: str, *fields: str) -> str:
    """A stable, path-safe key for a candidate: its image URL plus the fields that tell it apart.

    Unique by construction, up to a 128-bit hash: every field is length-prefixed before hashing
    (so ("a\nb", "c") and ("a", "b\nc") never encode alike) and the digest is 32 hex chars of
    SHA-256 (a collision among 10^9 keys has odds near 10^-21). Callers pass what makes two
    candidates different (caption, page URL, position in the input), so the same image with two
    captions is two samples. A short readable stem from the URL's file name helps humans. Keys
    contain no dots: WebDataset splits member names at the first dot.
    """
    h = hashlib.sha256()
    for part in (url, *fields):
        data = str(part).encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    digest = h.hexdigest()[:32]
    stem = url.rsplit("/", 1)[-1].split("?", 1)[0].rsplit(".", 1)[0].lower()
    stem = _KEY_CHARS.sub("-", stem).strip("-")[:24]
    return f"{stem}-{digest}" if stem else digest


# --- Arrow form ---------------------------------------------------------------------------------

_VERDICT = pa.struct([("stage", pa.string()), ("reason", pa.string()), ("detail", pa.string())])
_CANDIDATE = pa.struct([("source", pa.string()), ("text", pa.string())])
_NODE = pa.struct(
    [
        ("kind", pa.string()),
        ("lemma", pa.string()),
        ("span", pa.list_(pa.int32(), 2)),
        ("subject", pa.int32()),
        ("object", pa.int32()),
        ("count", pa.int32()),
        ("tokens", pa.list_(pa.int32())),
    ]
)
_TEXT = pa.struct(
    [
        ("model", pa.string()),
        ("tokens", pa.list_(pa.string())),
        ("upos", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
        ("lemmas", pa.list_(pa.string())),
        ("graph", pa.list_(_NODE)),
    ]
)


def arrow_schema(feature_dim: int, *, legacy: bool = False) -> pa.Schema:
    """The Parquet schema of a shard whose detector gives `feature_dim`-d region features.

    Region arrays are prefixed `regions_` columns; features are lists of fixed-size float16
    lists so a reader gets (N, D) per row with no reshaping guesswork and no precision change.
    `legacy=True`: the schema of shards written before the optional region columns
    (`regions_box_conf`, `regions_soft_ids`, `regions_soft_probs`) existed; still readable.
    """
    d = max(int(feature_dim), 1)
    optional = [] if legacy else [
        ("regions_box_conf", pa.list_(pa.float32())),
        ("regions_soft_ids", pa.list_(pa.list_(pa.int32()))),
        ("regions_soft_probs", pa.list_(pa.list_(pa.float16()))),
    ]
    return pa.schema(
        [
            ("key", pa.string()),
            ("url", pa.string()),
            ("page_url", pa.string()),
            ("caption", pa.string()),
            ("caption_source", pa.string()),
            ("candidates", pa.list_(_CANDIDATE)),
            ("lang", pa.string()),
            ("lang_score", pa.float64()),
            ("image", pa.binary()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("orig_width", pa.int32()),
            ("orig_height", pa.int32()),
            ("sha256", pa.string()),
            ("phash", pa.string()),
            ("status", pa.string()),
            ("verdicts", pa.list_(_VERDICT)),
            ("relevance_score", pa.float64()),
            ("nsfw_score", pa.float64()),
            ("unnatural_score", pa.float64()),
            ("regions_detector", pa.string()),
            ("regions_image_h", pa.int32()),
            ("regions_image_w", pa.int32()),
            ("regions_num_boxes", pa.int32()),
            ("regions_boxes", pa.list_(pa.list_(pa.float32(), 4))),
            ("regions_features", pa.list_(pa.list_(pa.float16(), d))),
            ("regions_obj_ids", pa.list_(pa.int64())),
            ("regions_obj_names", pa.list_(pa.string())),
            ("regions_obj_conf", pa.list_(pa.float32())),
            ("regions_attr_ids", pa.list_(pa.int64())),
            ("regions_attr_names", pa.list_(pa.string())),
            ("regions_attr_conf", pa.list_(pa.float32())),
            *optional,
            ("text", _TEXT),
            ("schema_version", pa.string()),
        ],
        metadata={"laitkit_schema_version": SCHEMA_VERSION},
    )
