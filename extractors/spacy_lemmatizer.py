"""A faster drop-in for spaCy's rule lemmatizer: the same lemmas, cached per (word, POS, morph).

Why: spaCy's `Lemmatizer.__call__` walks the Doc token by token in Python (a `Token` view, a
string-store write per token) and its rule mode caches only the lemmas it derives by rule, not the
commonest case, a word already in its base form (`is_base_form`: singular nouns, infinitives,
positive adjectives), which it works out again every time. That cost ~14 µs CPU per FACTUAL
caption warm, ~50 cold. The rule lemma is a function of the token's text, POS and morphology only
(`rule_lemmatize` and the English `is_base_form` read nothing else), so this component reads those
three columns with one `Doc.to_array`, keeps lemma hashes per key, and asks spaCy's own
`lemmatize` once per new key. Tokens whose lemma is already set (by the attribute ruler) keep it,
as spaCy's does without `overwrite`.

Only rule-mode lemmatizers are replaced (`speed_up_lemmatizer`); the lookup mode and any other
lemmatizer stay spaCy's. A test checks token-for-token equality with the stock pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


class FastLemmatizer:
    """Sets what the wrapped rule-mode `lemmatizer` would set (see the module)."""

    def __init__(self, lemmatizer: Any, max_size: int = 1_000_000) -> None:
        from spacy import attrs

        self.inner = lemmatizer
        self.name = getattr(lemmatizer, "name", "lemmatizer")
        self._cols = [attrs.ORTH, attrs.POS, attrs.MORPH, attrs.LEMMA]
        self.max_size = max_size
        self.cache: dict[tuple[int, int, int], int] = {}

    def __call__(self, doc: Any) -> Any:
        if not len(doc):
            return doc
        inner = self.inner
        if not inner._validated:
            inner._validate_tables()
        get = self.cache.get
        for i, (orth, pos, morph, lemma) in enumerate(doc.to_array(self._cols).tolist()):
            if lemma:  # set by the attribute ruler; spaCy's keeps it too (overwrite is False)
                continue
            h = get((orth, pos, morph))
            if h is None:
                h = self._miss(doc, i, (orth, pos, morph))
            doc[i].lemma = h
        return doc

    def _miss(self, doc: Any, i: int, key: tuple[int, int, int]) -> int:
        h = doc.vocab.strings.add(self.inner.lemmatize(doc[i])[0])
        if len(self.cache) >= self.max_size:
            self.cache.clear()
        self.cache[key] = h
        return h

    def pipe(self, docs: Iterable[Any], batch_size: int = 128) -> Iterator[Any]:
        for doc in docs:
            yield self(doc)

    def __getattr__(self, name: str) -> Any:
        """Everything else is the wrapped lemmatizer's (its `lookups`, `mode`, `lemmatize`, ...),
        so code that reads the pipeline's lemmatizer sees spaCy's."""
        if name == "inner":  # not set yet (while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def speed_up_lemmatizer(nlp: Any) -> bool:
    """Swap `nlp`'s rule-mode "lemmatizer" (not overwriting) for a `FastLemmatizer`; True if swapped."""
    if "lemmatizer" not in nlp.pipe_names or not isinstance(getattr(nlp, "_components", None), list):
        return False
    old = nlp.get_pipe("lemmatizer")
    if getattr(old, "mode", None) != "rule" or getattr(old, "overwrite", True):
        return False
    if not (hasattr(old, "lemmatize") and hasattr(old, "_validated")):  # another spaCy's lemmatizer: keep it
        return False
    comps = nlp._components
    comps[comps.index(("lemmatizer", old))] = ("lemmatizer", FastLemmatizer(old))
    return True
