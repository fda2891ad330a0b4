"""Parallel text stage: worker processes that load spaCy once and stream batches of captions.

Why not `nlp.pipe(n_process=2)`: spaCy starts its workers anew on every call and sends whole
`Doc` objects back, which the parent then walks into scene graphs alone, so on 2 cores two
processes ran slower than one (766 captions/s for two, 1,146 for one). Here each worker process
is started once (spawned, so it is safe next to Ray or torch threads in the parent), loads the
pipeline and the lexicon once, and for each batch returns the finished annotation packed as plain tuples: the
parent only unpacks and reorders. At most `2 × workers` batches are in flight, so a long stream
neither waits on one batch at a time nor piles up in memory.

Used by `TextExtractor` when `TextConfig.n_process > 1`; the Ray stage can instead give each
actor `n_process=1` and scale with actors (the same "start once, stream batches" shape).
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from laitkit.datasets.schema import SceneNode, TextAnnotation

# One thread per worker: the workers are the parallelism; BLAS threads on top would oversubscribe.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_POLL_S = 1.0

Packed = tuple[list[str], list[str], list[str], list[str], list[tuple[Any, ...]]]


def pack(ann: TextAnnotation) -> Packed:
    """An annotation as plain lists and tuples: cheaper to pickle than dataclasses."""
    return (
        ann.tokens,
        ann.upos,
        ann.tags,
        ann.lemmas,
        [(n.kind, n.lemma, n.tokens, n.subject, n.object, n.count) for n in ann.graph],
    )


def unpack(model: str, p: Packed) -> TextAnnotation:
    """Inverse of `pack`."""
    tokens, upos, tags, lemmas, nodes = p
    graph = [SceneNode(kind=k, lemma=lm, tokens=t, subject=s, object=o, count=c) for k, lm, t, s, o, c in nodes]
    return TextAnnotation(model=model, tokens=tokens, upos=upos, tags=tags, lemmas=lemmas, graph=graph)


def _worker(cfg: Any, inq: Any, outq: Any) -> None:
    """Worker loop: load once, then (seq, texts) in -> (seq, packed annotations or error) out."""
    from laitkit.extractors.text import YOUNG_THRESHOLD, TextExtractor

    try:
        ex = TextExtractor(replace(cfg, n_process=1))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        outq.put((-1, f"{type(exc).__name__}: {exc}"))
        return
    # The loaded pipeline (~250k objects) lives as long as this process, which is ours: out of the
    # cyclic collector's reach, the full collections that the stream of annotations triggers scan
    # only what the batches made (measured in one process over 10,000 captions: 29 -> 6.5 µs per
    # caption spent in full collections).
    # The young threshold of `text.gc_frozen`, for good: the process is ours, and each batch
    # calls `annotate_unscoped` (no per-batch collector scope; see there why).
    gc.freeze()
    gc.set_threshold(max(gc.get_threshold()[0], YOUNG_THRESHOLD), *gc.get_threshold()[1:])
    outq.put((-1, None))
    while True:
        item = inq.get()
        if item is None:
            return
        seq, texts = item
        try:
            outq.put((seq, [pack(a) for a in ex.annotate_unscoped([ex.clean(t) for t in texts])]))
        except Exception as exc:  # noqa: BLE001 - one bad batch must not hang the parent
            outq.put((seq, f"{type(exc).__name__}: {exc}"))


class ParallelTextExtractor:
    """`workers` processes, each with its own spaCy pipeline; `annotate` keeps input order.

    Start-up (spawn + model load, a few seconds) happens once in the constructor; `close()` (or
    leaving a `with` block) stops the workers. Not thread-safe: one caller streams at a time.
    """

    def __init__(self, cfg: Any, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.cfg = cfg
        self.model_name = cfg.model
        ctx = mp.get_context("spawn")
        self._in = ctx.Queue()
        self._out = ctx.Queue()
        saved = {k: os.environ.get(k) for k in _THREAD_VARS}
        os.environ.update({k: "1" for k in _THREAD_VARS})
        try:
            self._procs = [
                ctx.Process(target=_worker, args=(cfg, self._in, self._out), daemon=True, name=f"laitkit-text-{i}")
                for i in range(workers)
            ]
            for p in self._procs:
                p.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self._seq = 0
        try:
            for _ in self._procs:
                _, err = self._get()
                if err is not None:
                    raise RuntimeError(f"text worker failed to start: {err}")
        except BaseException:
            self.close()
            raise

    @property
    def workers(self) -> int:
        return len(self._procs)

    def _get(self) -> tuple[int, Any]:
        while True:
            try:
                return self._out.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [p.name for p in self._procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"text worker process died: {', '.join(dead)}") from None

    def annotate_iter(self, captions: Iterable[str], batch_size: int | None = None) -> Iterator[TextAnnotation]:
        """Annotations of `captions`, in order, streamed: batches go out while results come back."""
        bs = batch_size or self.cfg.batch_size
        max_chars = self.cfg.max_chars
        in_flight = 2 * len(self._procs)
        base = self._seq  # results of an earlier, abandoned stream have smaller numbers
        pending: dict[int, list[Packed]] = {}
        sent = received = 0
        it = iter(captions)
        done = False
        try:
            while True:
                while not done and sent - received < in_flight:
                    batch = [c[:max_chars] if isinstance(c, str) else "" for _, c in zip(range(bs), it, strict=False)]
                    if not batch:
                        done = True
                        break
                    self._in.put((base + sent, batch))
                    sent += 1
                if received == sent:
                    return
                while base + received not in pending:
                    seq, res = self._get()
                    if seq < base:
                        continue
                    if isinstance(res, str):
                        raise RuntimeError(f"text worker failed on a batch: {res}")
                    pending[seq] = res
                for p in pending.pop(base + received):
                    yield unpack(self.model_name, p)
                received += 1
        finally:
            self._seq = base + sent

    def annotate(self, captions: Iterable[str], batch_size: int | None = None) -> list[TextAnnotation]:
        """All annotations of `captions`, in order.

        The parent side runs with the collector frozen (text.gc_frozen), as the in-process stage
        does: unpacking makes as many objects as the workers' parse, and each full collection they
        set off would otherwise rescan whatever the parent holds (a loaded pipeline, a corpus)."""
        from laitkit.extractors.text import gc_frozen

        with gc_frozen():
            return list(self.annotate_iter(captions, batch_size))

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        procs, self._procs = getattr(self, "_procs", []), []
        for p in procs:
            if p.is_alive():
                self._in.put(None)
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)

    def __enter__(self) -> ParallelTextExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
