"""Shard samples streamed into padded, length-bucketed pretraining batches, with a resumable position.

Why a streaming pipeline: a corpus for days of training does not fit in RAM (LXMERT's loader
holds 207 GB of features with four workers). Each DataLoader worker here reads its own slice of
the shards through webdataset's tar reader, shuffles through a bounded buffer, and packs batches
of similar length under a token budget; memory is the buffer, not the corpus.

Why positions rather than iterator state: every random choice of a worker is a pure function of
(seed, slot, epoch, batch index), so a worker's place is two integers. The trainer records the
place of the last batch it consumed from each worker; a resumed run restarts each worker at its
epoch, replays (reads, does not train on) the batches before its place, and rotates worker ids so
the DataLoader's round-robin hands out batches in the same order as an uninterrupted run.

Splitting: shards are split by node (rank) and then by worker, as webdataset's `split_by_node` /
`split_by_worker` do, but over a *logical* worker id (the rotation above), so they are written
here. A slot with no shard (fewer shards than ranks x workers) splits samples instead of shards.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from laitkit.datasets.codec import decode_members
from laitkit.datasets.schema import Sample
from laitkit.pipeline.pretrain.batchpack import is_packed, pack, unpack
from laitkit.pipeline.pretrain.masking import Masker
from laitkit.pipeline.pretrain.sample_meta import decode_meta
from laitkit.pipeline.pretrain.tarread import tar_samples
from laitkit.pipeline.pretrain.tokenizer import TextTokenizer, subword_words, word_char_spans

GEOM_DIM = 7
SGP_KINDS = ("object", "attribute", "relation")


@dataclass
class Example:
    """One sample reduced to what the model sees (sub-words, tags, region arrays)."""

    key: str
    caption_ids: list[int]
    word_index: list[int]  # per caption sub-word: its text-stage token (or pre-tokenizer word), -1 none
    graph_spans: list[tuple[int, int, int]]  # (kind id, start, end) over caption_ids
    upos: list[str]  # per text-stage token, "" when the text stage did not run
    tag_ids: list[int]
    features: np.ndarray  # (N, D) float32
    geometry: np.ndarray  # (N, 7) float32
    obj_ids: np.ndarray  # (N,) detector labels
    # Optional, read by the objectives that need them (MRC-kl, attribute prediction, ERNIE-ViL):
    obj_conf: np.ndarray | None = None  # (N,) detector confidence of obj_ids
    attr_ids: np.ndarray | None = None  # (N,) top attribute, -1 none
    soft_ids: np.ndarray | None = None  # (N, k+1) class columns, 0 = background (schema.Regions)
    soft_probs: np.ndarray | None = None  # (N, k+1) float32 their probabilities
    graph_nodes: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # (kind id, caption sub-words)
    image: np.ndarray | None = None  # (3, S, S) uint8, only when DataSpec.image_size > 0 (Pixel-BERT)

    @property
    def text_len(self) -> int:
        return len(self.caption_ids) + len(self.tag_ids) + 3  # [CLS] caption [SEP] tags [SEP]

    @property
    def length(self) -> int:
        return self.text_len + int(self.features.shape[0])


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """How samples become examples and batches; picklable so DataLoader workers rebuild it."""

    shards: tuple[str, ...]
    tokenizer_dir: str
    feature_dim: int
    seed: int = 0
    batch_size: int = 32
    token_budget: int = 0  # max sum of padded lengths in a batch; 0 = batch_size alone
    shuffle_buffer: int = 1000
    bucket_pool: int = 8  # batches' worth of examples sorted by length together
    resampled: bool = False  # shards drawn with replacement per epoch (webdataset's resampled mode)
    heldout_permille: int = 50
    max_text: int = 64
    max_tags: int = 16
    max_regions: int = 50
    masking: dict[str, Any] = field(default_factory=dict)
    image_size: int = 0  # > 0: decode each sample's JPEG to (3, S, S) uint8 for the pixel encoder


def box_geometry(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """UNITER's 7-d box position: normalised x1, y1, x2, y2, width, height, area."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    w, h = max(w, 1), max(h, 1)
    out = np.empty((len(b), GEOM_DIM), np.float32)
    np.divide(b, np.array([w, h, w, h], np.float32), out=out[:, :4])
    np.subtract(out[:, 2:4], out[:, 0:2], out=out[:, 4:6])
    np.multiply(out[:, 4], out[:, 5], out=out[:, 6])
    return out


def is_heldout(key: str, permille: int) -> bool:
    """The held-out split: a stable hash of the key, so every run and rank agrees without a list."""
    return zlib.crc32(key.encode()) % 1000 < permille


def to_example(sample: Sample, tok: TextTokenizer, spec: DataSpec) -> Example:
    """Any sample becomes an example: no caption gives [CLS][SEP], no regions gives N = 0."""
    r = sample.regions
    text = sample.text
    return _with_image(spec, sample.image, _example(
        sample.key,
        sample.caption or "",
        list(text.tokens) if text is not None else [],
        list(text.upos) if text is not None else [],
        [(n.kind, n.span[0], n.span[1], n.tokens) for n in text.graph] if text is not None else [],
        list(r.obj_names) if r is not None else [],
        r.arrays() if r is not None and r.num_boxes else None,
        (r.image_h, r.image_w) if r is not None else (1, 1),
        tok,
        spec,
    ))


def example_from_members(members: dict[str, Any], tok: TextTokenizer, spec: DataSpec) -> Example:
    """The same as `to_example(decode_members(...))`, reading only what the model needs (fast path)."""
    meta = decode_meta(members["json"])
    if meta is None:  # not the shape sample_meta expects: the general decoder, same result
        return _example_from_json(members, tok, spec)
    text, reg = meta.text, meta.regions
    arrays = None
    if reg is not None and reg.num_boxes and members.get("npz"):
        arrays = read_npz(members["npz"], ("boxes", "features", "obj_ids"), optional=OPTIONAL_ARRAYS)
    return _with_image(spec, members.get("jpg"), _example(
        meta.key,
        meta.caption or "",
        (text.tokens or []) if text is not None else [],
        (text.upos or []) if text is not None else [],
        [(n.kind, n.span[0], n.span[1], n.tokens or ()) for n in text.graph or ()] if text is not None else [],
        (reg.obj_names or []) if reg is not None else [],
        arrays,
        (reg.image_h, reg.image_w) if reg is not None else (1, 1),
        tok,
        spec,
    ))


def _example_from_json(members: dict[str, Any], tok: TextTokenizer, spec: DataSpec) -> Example:
    meta = json.loads(members["json"])
    text = meta.get("text") or {}
    reg = meta.get("regions")
    arrays = None
    if reg is not None and reg.get("num_boxes") and members.get("npz"):
        arrays = read_npz(members["npz"], ("boxes", "features", "obj_ids"), optional=OPTIONAL_ARRAYS)
    return _with_image(spec, members.get("jpg"), _example(
        meta["key"],
        meta.get("caption") or "",
        list(text.get("tokens") or []),
        list(text.get("upos") or []),
        [
            (n["kind"], int(n["span"][0]), int(n["span"][1]), tuple(n.get("tokens") or ()))
            for n in text.get("graph") or []
        ],
        list(reg.get("obj_names") or []) if reg else [],
        arrays,
        (int(reg["image_h"]), int(reg["image_w"])) if reg else (1, 1),
        tok,
        spec,
    ))


def _with_image(spec: DataSpec, jpeg: bytes | None, ex: Example) -> Example:
    """Pixel-BERT's input: the JPEG decoded and resized to a square; a sample without one is grey."""
    if spec.image_size > 0:
        from PIL import Image

        size = spec.image_size
        if jpeg:
            img = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            ex.image = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()
        else:
            ex.image = np.full((3, size, size), 128, np.uint8)
    return ex


def with_images(batch: dict[str, torch.Tensor], examples: list[Example]) -> dict[str, torch.Tensor]:
    """Add `image` (B, 3, S, S) uint8 to a batch built from `examples` when they carry images."""
    if examples and examples[0].image is not None:
        batch["image"] = torch.from_numpy(np.stack([ex.image for ex in examples]))
    return batch


_NPY_HEADER = re.compile(rb"'descr':\s*'([^']+)'.*?'fortran_order':\s*(True|False).*?'shape':\s*\(([^)]*)\)", re.S)
_LOCAL = b"PK\x03\x04"


OPTIONAL_ARRAYS = ("obj_conf", "attr_ids", "soft_ids", "soft_probs")  # read when present (objectives' extras)


def read_npz(data: bytes, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Named arrays of an uncompressed npz (np.savez), read straight from the zip's local headers.

    Why not np.load: it builds a zipfile directory and parses every header with `ast.literal_eval`;
    for a loader that decodes thousands of samples per second that is most of its time. A stored
    member's bytes are the .npy file, so the arrays are views of `data`. Anything unusual
    (compression, Fortran order, an unexpected layout) falls back to np.load.
    """
    out: dict[str, np.ndarray] = {}
    pos = 0
    try:
        wanted = (*names, *optional)
        while len(out) < len(wanted):
            if data[pos : pos + 4] != _LOCAL:
                raise ValueError("not a local header")
            method, nlen, xlen = _ZIP_FIELDS.unpack_from(data, pos)
            start = pos + 30 + nlen + xlen
            if method != 0 or data[start : start + 6] != b"\x93NUMPY":
                raise ValueError("not a plain stored array")
            hsize = 2 if data[start + 6] == 1 else 4
            hlen = int.from_bytes(data[start + 8 : start + 8 + hsize], "little")
            body = start + 8 + hsize + hlen
            dtype, shape, count = _npy_header(data[start + 8 + hsize : body])
            name = data[pos + 30 : pos + 26 + nlen].decode()  # without ".npy"
            if name in wanted:
                out[name] = np.frombuffer(data, dtype=dtype, count=count, offset=body).reshape(shape)
            nxt = data.find(_LOCAL, body + count * dtype.itemsize)
            if nxt < 0:
                break
            pos = nxt
        if any(k not in out for k in names):
            raise ValueError("arrays missing")
        return out
    except (ValueError, struct.error, UnicodeDecodeError, IndexError):
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in (*names, *optional) if k in names or k in z.files}


_ZIP_FIELDS = struct.Struct("<4xxxxxH16xHH")  # compression method, name length, extra length of a local header
_HEADERS: dict[bytes, tuple[np.dtype, tuple[int, ...], int]] = {}
_HEADER_CACHE_SIZE = 1024


def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, count) of a .npy header dict, cached by its bytes.

    Why a cache: headers repeat (one per array name and row count: a corpus has a few dozen
    distinct ones), and parsing one costs more than reading its array. Bounded: cleared when full.
    """
    hit = _HEADERS.get(header)
    if hit is None:
        m = _NPY_HEADER.search(header)
        if m is None or m.group(2) == b"True":
            raise ValueError("not a plain stored array")
        shape = tuple(int(x) for x in m.group(3).split(b",") if x.strip())
        if len(_HEADERS) >= _HEADER_CACHE_SIZE:
            _HEADERS.clear()
        hit = _HEADERS[header] = (np.dtype(m.group(1).decode()), shape, math.prod(shape))
    return hit


_TAG_CACHE_SIZE = 4096


def _tag_ids(tok: TextTokenizer, tags: tuple[str, ...]) -> list[int]:
    """Sub-words of a sample's detector tags, cached per tag set on the tokenizer.

    Why a cache: a detector has a few hundred classes, so tag sets repeat across samples far
    more than captions do; the cache is bounded (cleared when full), so memory stays flat.
    """
    cache: dict[tuple[str, ...], list[int]] = tok.__dict__.setdefault("_laitkit_tag_cache", {})
    hit = cache.get(tags)
    if hit is None:
        if len(cache) >= _TAG_CACHE_SIZE:
            cache.clear()
        hit = cache[tags] = tok.encode_words(list(tags))
    return hit


def _example(
    key: str,
    caption: str,
    words: list[str],
    upos: list[str],
    nodes: list[tuple[str, int, int, tuple[int, ...]]],
    obj_names: list[str],
    arrays: dict[str, np.ndarray] | None,
    hw: tuple[int, int],
    tok: TextTokenizer,
    spec: DataSpec,
) -> Example:
    enc = tok.encode_raw(caption)  # the tokenizers Encoding: its lists are built only when read
    ids = enc.ids
    spans: list[tuple[int, int, int]] = []
    graph_nodes: list[tuple[int, tuple[int, ...]]] = []
    if words:
        char_spans = word_char_spans(caption, words)
        word_index = subword_words(enc.offsets, char_spans)
        if nodes:
            spans, graph_nodes = _graph(nodes, char_spans, word_index)
    else:
        word_index = [-1 if w is None else w for w in enc.word_ids]
    tag_ids = _tag_ids(tok, tuple(dict.fromkeys(n for n in obj_names if n)))[: spec.max_tags]
    keep = max(spec.max_text - 3 - len(tag_ids), 0)
    if len(ids) > keep:  # cut: spans and node positions (ascending) past the cut go too
        ids, word_index = ids[:keep], word_index[:keep]
        spans = [(k, a, min(b, keep)) for k, a, b in spans if a < keep]
        graph_nodes = [(k, sub if sub[-1] < keep else tuple(p for p in sub if p < keep))
                       for k, sub in graph_nodes if sub[0] < keep]
    extra: dict[str, np.ndarray | None] = {}
    if arrays is not None and len(arrays["boxes"]):
        n = min(len(arrays["boxes"]), spec.max_regions)
        feats = arrays["features"][:n].astype(np.float32)
        geom = box_geometry(arrays["boxes"][:n], hw[0], hw[1])
        obj = arrays["obj_ids"][:n].astype(np.int64)
        for name, dtype in _EXTRA_DTYPES:
            if name in arrays:
                extra[name] = arrays[name][:n].astype(dtype)
    else:
        feats = np.zeros((0, spec.feature_dim), np.float32)
        geom = np.zeros((0, GEOM_DIM), np.float32)
        obj = np.zeros((0,), np.int64)
    if feats.shape[1] != spec.feature_dim:
        raise ValueError(f"sample {key}: feature dim {feats.shape[1]}, the corpus has {spec.feature_dim}")
    return Example(key, ids, word_index, spans, upos, tag_ids, feats, geom, obj, **extra, graph_nodes=graph_nodes)


_EXTRA_DTYPES = (("obj_conf", np.float32), ("attr_ids", np.int64), ("soft_ids", np.int64), ("soft_probs", np.float32))
_KIND_IDS = {k: i for i, k in enumerate(SGP_KINDS)}


def _graph(
    nodes: list[tuple[str, int, int, tuple[int, ...]]], char_spans: list[tuple[int, int] | None], word_index: list[int]
) -> tuple[list[tuple[int, int, int]], list[tuple[int, tuple[int, ...]]]]:
    """Scene-graph nodes (text-stage token spans) as sub-word spans and exact sub-word positions.

    A node's covering span is [first, last+1) of the sub-words of its tokens [a, b); its exact
    positions are the sub-words of its own tokens only (gaps left unmasked). Why a word -> sub-words
    table: `word_index` is non-decreasing over the sub-words that map to a token (subword_words
    walks both in order), so each node reads its tokens' sub-words directly instead of scanning
    the caption once per node.
    """
    subs: dict[int, list[int]] = {}
    for i, w in enumerate(word_index):
        if w >= 0:
            subs.setdefault(w, []).append(i)
    last = len(char_spans)
    spans: list[tuple[int, int, int]] = []
    graph_nodes: list[tuple[int, tuple[int, ...]]] = []
    for kind, a, b, node_tokens in nodes:
        if b == a + 1:  # most nodes are one token: its sub-words, if it has any, are the node
            one = subs.get(a)
            if one:
                k = _KIND_IDS.get(kind, 0)
                spans.append((k, one[0], one[-1] + 1))
                if not node_tokens or a in node_tokens:
                    graph_nodes.append((k, tuple(one)))
            continue
        seg = char_spans[a:b]
        if b <= a or seg.count(None) == len(seg):
            continue
        words = range(max(a, 0), min(b, last))
        hit = [i for w in words if w in subs for i in subs[w]]
        if hit:
            k = _KIND_IDS.get(kind, 0)
            spans.append((k, hit[0], hit[-1] + 1))
            exact = set(node_tokens) if node_tokens else None  # the node's own words, gaps left unmasked
            sub = tuple(i for w in words if w in subs and (exact is None or w in exact) for i in subs[w])
            if sub:
                graph_nodes.append((k, sub))
    return spans, graph_nodes


def find_shards(shards_dir: Path) -> list[Path]:
    """Every completed shard's tar under `shards_dir`.

    `datasets.shards.list_shard_files` decides where a layout keeps its tars (flat, or `tar/`
    beside the stats files) when this laitkit has it; otherwise, or when it finds none (a folder
    of tars from elsewhere), tars are found recursively, skipping crash leftovers: a tar whose
    folder (or its parent) keeps stats files but none for this shard.
    """
    root = Path(shards_dir)
    if root.is_file():
        return [root]
    try:
        from laitkit.datasets.shards import list_shard_files  # type: ignore[attr-defined]
    except ImportError:
        list_shard_files = None
    if list_shard_files is not None and root.is_dir():
        found = list_shard_files(root, "tar")
        if found:
            return list(found)
    done = []
    for p in sorted(p for p in root.rglob("*.tar") if not p.name.startswith(".")):
        stats_name = p.name[: -len(".tar")] + "_stats.json"
        homes = [d for d in (p.parent, p.parent.parent) if any(d.glob("*_stats.json"))]
        if not homes or any((d / stats_name).exists() for d in homes):
            done.append(p)
    return done


def _model_members(name: str) -> bool:
    return name.endswith((".json", ".npz"))


def iter_members(paths: list[str]) -> Iterator[dict[str, Any]]:
    """Raw `json` and `npz` members per sample, grouped as webdataset does (image and txt never read)."""
    for raw in tar_samples(paths, _model_members):
        if "json" in raw:
            yield raw


def iter_samples(paths: list[str]) -> Iterator[Sample]:
    """Decoded samples of tars in order (image bytes are not read)."""
    for raw in iter_members(paths):
        yield decode_members({k: v for k, v in raw.items() if not k.startswith("__")})


def corpus_feature_dim(paths: list[Path]) -> int:
    """D of the region features: the manifest's when present, else the first sample with regions."""
    for p in paths[:1]:
        for man in (p.parent / "manifest.json", p.parent.parent / "manifest.json"):
            if man.exists():
                d = json.loads(man.read_text()).get("feature_dim")
                if d:
                    return int(d)
    for s in iter_samples([str(p) for p in paths]):
        if s.regions is not None and s.regions.num_boxes:
            return s.regions.feature_dim
    return 1


def _rng(*parts: int) -> random.Random:
    return random.Random(hashlib.sha256(repr(parts).encode()).digest())


class ShardStream(torch.utils.data.IterableDataset):
    """Infinite stream of masked batches for one rank; each batch carries its worker's position."""

    def __init__(
        self,
        spec: DataSpec,
        *,
        rank: int = 0,
        world: int = 1,
        num_workers: int = 1,
        start: dict[int, tuple[int, int]] | None = None,
        rotation: int = 0,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.rank, self.world = rank, world
        self.num_workers = max(num_workers, 1)
        self.start = dict(start or {})
        self.rotation = rotation
        self._tok: TextTokenizer | None = None

    @property
    def tok(self) -> TextTokenizer:
        if self._tok is None:
            self._tok = TextTokenizer.load(Path(self.spec.tokenizer_dir))
        return self._tok

    def logical_worker(self) -> int:
        info = torch.utils.data.get_worker_info()
        phys = info.id if info is not None else 0
        return (phys + self.rotation) % self.num_workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = self.logical_worker()
        slot, slots = self.rank * self.num_workers + worker, self.world * self.num_workers
        epoch, skip = self.start.get(worker, (0, 0))
        masker = Masker(self.tok, **self.spec.masking)
        while True:
            produced = 0
            for idx, examples in enumerate(self.epoch_batches(epoch, slot, slots)):
                produced += 1
                if idx < skip:
                    continue  # replay: read, never trained on twice
                rng = np.random.default_rng([self.spec.seed, slot, epoch, idx])
                batch = with_images(masker(examples, rng, self.spec.feature_dim), examples)
                batch["position"] = torch.tensor([worker, epoch, idx + 1])
                yield batch
            if produced == 0:
                raise ValueError(
                    f"rank {self.rank} worker {worker}: no training sample in {len(self.spec.shards)} shard(s) "
                    "(all held out, or the corpus is smaller than one batch per worker)"
                )
            epoch, skip = epoch + 1, 0

    def epoch_shards(self, epoch: int, slot: int, slots: int) -> tuple[list[str], int, int]:
        """(shards, sample stride, sample offset) of one slot for one epoch."""
        shards = sorted(self.spec.shards)
        if self.spec.resampled:
            rng = _rng(self.spec.seed, epoch, slot)
            count = max(1, len(shards) // slots)
            return [rng.choice(shards) for _ in range(count)], 1, 0
        _rng(self.spec.seed, epoch).shuffle(shards)
        if len(shards) >= slots:
            by_node = shards[self.rank :: self.world]  # split_by_node
            return by_node[slot % self.num_workers :: self.num_workers], 1, 0  # split_by_worker
        return shards, slots, slot  # too few shards: split samples instead

    def epoch_examples(self, epoch: int, slot: int, slots: int) -> Iterator[Example]:
        paths, stride, offset = self.epoch_shards(epoch, slot, slots)
        spec = self.spec
        samples = (  # the tar key is the sample key: filter before decoding anything
            s
            for i, s in enumerate(iter_members(paths))
            if i % stride == offset and not is_heldout(s["__key__"].rsplit("/", 1)[-1], spec.heldout_permille)
        )
        rng = _rng(spec.seed, epoch, slot, 1)
        for raw in wds.filters._shuffle(samples, bufsize=spec.shuffle_buffer, initial=spec.shuffle_buffer, rng=rng):
            yield example_from_members(raw, self.tok, spec)

    def epoch_batches(self, epoch: int, slot: int, slots: int) -> Iterator[list[Example]]:
        """Pools of examples sorted by length, cut into batches under the token budget, shuffled."""
        spec = self.spec
        rng = _rng(spec.seed, epoch, slot, 2)
        pool: list[Example] = []
        tail: list[Example] = []
        for ex in self.epoch_examples(epoch, slot, slots):
            pool.append(ex)
            if len(pool) >= spec.batch_size * spec.bucket_pool:
                batches, tail = self._cut(pool)
                rng.shuffle(batches)
                yield from batches
                pool = tail
        batches, tail = self._cut(pool)
        rng.shuffle(batches)
        yield from batches
        if tail and len(tail) >= max(2, spec.batch_size // 4):
            yield tail  # an epoch's ragged tail trains only if it is not a near-empty step

    def _cut(self, pool: list[Example]) -> tuple[list[list[Example]], list[Example]]:
        """Greedy cut of the sorted pool; a batch's padded size is its longest text + most regions."""
        spec = self.spec
        pool = sorted(pool, key=lambda e: (e.length, e.key))
        batches: list[list[Example]] = []
        cur: list[Example] = []
        max_text = max_regions = 0
        for ex in pool:
            t, r = ex.text_len, int(ex.features.shape[0])
            longest = max(max_text, t) + max(max_regions, r)
            full = len(cur) >= spec.batch_size or (spec.token_budget and longest * (len(cur) + 1) > spec.token_budget)
            if cur and full:
                batches.append(cur)
                cur, max_text, max_regions = [], 0, 0
            cur.append(ex)
            max_text, max_regions = max(max_text, t), max(max_regions, r)
        return batches, cur


def heldout_examples(spec: DataSpec, limit: int) -> list[Example]:
    """Up to `limit` held-out examples with regions and a caption, in shard order (bounded memory)."""
    tok = TextTokenizer.load(Path(spec.tokenizer_dir))
    out: list[Example] = []
    for s in iter_samples(sorted(spec.shards)):
        if not is_heldout(s.key, spec.heldout_permille):
            continue
        if s.regions is None or not s.regions.num_boxes or not (s.caption or "").strip():
            continue
        out.append(to_example(s, tok, spec))
        if len(out) >= limit:
            break
    return out


class BatchLoader(torch.utils.data.DataLoader):
    """A DataLoader whose workers send each batch as one packed buffer (batchpack.py says why),
    unpacked here into views; with no worker, batches are passed through untouched."""

    def __iter__(self) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        for item in super().__iter__():
            yield unpack(item) if is_packed(item) else item


def _identity(batch: dict[str, Any]) -> dict[str, Any]:
    return batch


def make_loader(
    spec: DataSpec,
    *,
    rank: int,
    world: int,
    workers: int,
    position: dict[int, tuple[int, int]],
    batches_done: int,
    pin_memory: bool,
) -> torch.utils.data.DataLoader:
    """A DataLoader over a `ShardStream` that starts where `position` says (see module docstring)."""
    n = max(workers, 1)
    ds = ShardStream(spec, rank=rank, world=world, num_workers=n, start=position, rotation=batches_done % n)
    return BatchLoader(
        ds,
        batch_size=None,
        num_workers=workers,
        collate_fn=pack if workers else _identity,  # runs in the worker: one buffer crosses the process boundary
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(spec.seed),  # never draws from the global RNG
    )
