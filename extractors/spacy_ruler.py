"""A faster drop-in for spaCy's `attribute_ruler`: the same patterns, the same token attributes.

Why: in `en_core_web_sm` the attribute ruler (its tag map, morph rules and exceptions: 179
Matcher patterns) cost ~110 µs CPU per FACTUAL caption, more than the parser (~95) and a quarter
of `nlp.pipe` (measured per component on 5,000 captions). Almost all of it is per-match Python in
spaCy's `AttributeRuler.set_annotations` (a `Span` and a string-to-int per match, ~2 matches per
token), not the matching. Yet the outcome of each pattern depends only on a few attributes of the
token it starts on (and, for the handful of two-token patterns, of its neighbour), so it can be
computed once per kind of token and cached: this ruler looks each token's
(TAG, LOWER, DEP, IS_SPACE) up in a dict and writes the merged attributes of every pattern that
matches, in the ruler's own order, with spaCy's own `set_token_attrs`.

Exactness: the stock ruler matches every pattern on the Doc as the parser left it, sorts the
matches by pattern number and applies each pattern's attributes to its token in that order, so
later patterns win per attribute. Here the matching is the same (exact value, IN, NOT_IN, REGEX
on those four attributes, as spaCy's Matcher reads them), the order is the same, and applying
A then B to a token equals applying A updated by B (each attribute is one independent field).
A ruler with a pattern this module does not know (another attribute, an operator such as "OP")
is not replaced (`compile_patterns` returns None), so other models keep spaCy's own. A test
checks token-for-token equality with the stock pipeline on FACTUAL captions and edge cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

# the token attributes a pattern may test here, in the order of the key tuple
KEYS = ("TAG", "LOWER", "DEP", "IS_SPACE")
_OPS = frozenset({"IN", "NOT_IN", "REGEX"})

Spec = Callable[[tuple[str, str, str, bool]], bool]
Info = tuple[dict | None, tuple[int, ...], tuple[frozenset[int], ...], tuple[int, ...]]


def _value_test(value: Any) -> Callable[[Any], bool] | None:
    """A test of one attribute's value as the Matcher does it, or None when unsupported."""
    if isinstance(value, dict):
        if not value or not set(value) <= _OPS:
            return None
        tests: list[Callable[[Any], bool]] = []
        for op, arg in value.items():
            if op == "IN":
                s = frozenset(arg)
                tests.append(lambda v, s=s: v in s)
            elif op == "NOT_IN":
                s = frozenset(arg)
                tests.append(lambda v, s=s: v not in s)
            else:
                rx = re.compile(arg)
                tests.append(lambda v, rx=rx: isinstance(v, str) and rx.search(v) is not None)
        return lambda v: all(t(v) for t in tests)
    return lambda v, want=value: v == want


def compile_spec(tok: dict) -> Spec | None:
    """One token of a Matcher pattern as a test over (tag, lower, dep, is_space); None if unsupported."""
    parts: list[tuple[int, Callable[[Any], bool]]] = []
    for key, value in tok.items():
        if key not in KEYS:
            return None
        test = _value_test(value)
        if test is None:
            return None
        parts.append((KEYS.index(key), test))
    return lambda k: all(test(k[i]) for i, test in parts)


class CompiledRules:
    """The ruler's patterns as per-token tests, with what each kind of token gets cached."""

    def __init__(self, patterns: Sequence[Sequence[Sequence[dict]]], attrs: Sequence[dict], indices: Sequence[int]):
        # singles: (pattern number, spec); multis: (pattern number, [spec per token], index)
        self.singles: list[tuple[int, Spec]] = []
        self.multis: list[tuple[int, list[Spec], int]] = []
        for pid, alternatives in enumerate(patterns):
            for alt in alternatives:
                specs = [compile_spec(t) for t in alt]
                if any(s is None for s in specs):
                    raise ValueError(f"unsupported attribute-ruler pattern {alt!r}")
                if len(specs) == 1:
                    self.singles.append((pid, specs[0]))
                else:
                    idx = indices[pid]
                    if not -len(specs) <= idx < len(specs):
                        raise ValueError(f"pattern {alt!r} has index {idx} outside it")
                    self.multis.append((pid, specs, idx % len(specs)))  # type: ignore[arg-type]
        self.attrs = list(attrs)
        self.lower_canon = self._lower_canon(patterns)
        # key of hashes -> (merged attrs of the single-token patterns or None, their pattern
        # numbers, per multi-token pattern the positions whose spec this token meets, the
        # multi-token patterns it can start)
        self.cache: dict[tuple[int, ...], Info] = {}
        self._lowers: dict[int, int] = {}

    @staticmethod
    def _lower_canon(patterns: Sequence[Sequence[Sequence[dict]]]) -> Callable[[str], bool] | None:
        """A test of whether some pattern can tell a LOWER value apart from one no pattern names,
        or None when "" cannot stand for the unnamed ones (a pattern names "" or a regex takes it).

        Why: the cache key holds LOWER only for the ~150 words the patterns name (or a regex can
        take); any other word is keyed as "", so the cache stays small (tags x deps x those words)
        and a new word costs no pattern evaluation.
        """
        named: set[str] = set()
        regexes: list[re.Pattern[str]] = []
        for alternatives in patterns:
            for alt in alternatives:
                for tok in alt:
                    v = tok.get("LOWER")
                    if v is None:
                        continue
                    if isinstance(v, dict):
                        for op, arg in v.items():
                            if op == "REGEX":
                                regexes.append(re.compile(arg))
                            else:
                                named.update(arg)
                    else:
                        named.add(v)
        if "" in named or any(rx.search("") for rx in regexes):
            return None
        return lambda w: w in named or any(rx.search(w) for rx in regexes)

    def key_lower(self, lower: int, strings: Any) -> int:
        """The LOWER hash a token's cache key holds: its own when a pattern can tell it apart, else 0."""
        got = self._lowers.get(lower)
        if got is None:
            test = self.lower_canon
            got = lower if test is None or test(strings[lower]) else 0
            if len(self._lowers) > 1_000_000:
                self._lowers.clear()
            self._lowers[lower] = got
        return got

    def info(self, key: tuple[int, ...], strings: Any) -> Info:
        """What a token of this (TAG, LOWER, DEP, IS_SPACE) key gets, computed once per key."""
        got = self.cache.get(key)
        if got is None:
            tag, lower, dep, space = key
            k = (strings[tag] if tag else "", strings[lower] if lower else "", strings[dep] if dep else "", bool(space))
            pids = tuple(sorted({pid for pid, spec in self.singles if spec(k)}))
            merged: dict | None = None
            if pids:
                merged = {}
                for pid in pids:
                    merged.update(self.attrs[pid])
            multi = tuple(frozenset(j for j, s in enumerate(specs) if s(k)) for _, specs, _ in self.multis)
            starts = tuple(m for m, at in enumerate(multi) if 0 in at)
            if len(self.cache) > 500_000:
                self.cache.clear()
            got = self.cache[key] = (merged, pids, multi, starts)
        return got


def compile_patterns(ruler: Any) -> CompiledRules | None:
    """`ruler`'s patterns compiled, or None when one of them is beyond this module (keep spaCy's)."""
    try:
        patterns = [p["patterns"] for p in ruler.patterns]
        return CompiledRules(patterns, ruler.attrs, ruler.indices)
    except (ValueError, AttributeError, KeyError, TypeError, re.error):  # another spaCy's ruler: keep it
        return None


class FastAttributeRuler:
    """A pipeline component that sets what `ruler` would, from `CompiledRules` (see the module)."""

    def __init__(self, rules: CompiledRules, inner: Any = None, name: str = "attribute_ruler") -> None:
        from spacy import attrs
        from spacy.tokens._retokenize import set_token_attrs

        self.inner = inner
        self.rules = rules
        self.name = name
        self._cols = [getattr(attrs, k) for k in KEYS]
        self._set = set_token_attrs

    def __call__(self, doc: Any) -> Any:
        n = len(doc)
        if not n:
            return doc
        rules, strings, set_attrs = self.rules, doc.vocab.strings, self._set
        info, lowers, key_lower, cache = rules.info, rules._lowers.get, rules.key_lower, rules.cache.get
        infos = []
        for tag, low, dep, sp in doc.to_array(self._cols).tolist():
            kl = lowers(low)
            if kl is None:
                kl = key_lower(low, strings)
            key = (tag, kl, dep, sp)
            got = cache(key)
            infos.append(got if got is not None else info(key, strings))
        extra = self._multi_matches(infos) if rules.multis else None
        if not extra:
            for i, (merged, _, _, _) in enumerate(infos):
                if merged:
                    set_attrs(doc[i], merged)
            return doc
        for i, (merged, pids, _, _) in enumerate(infos):
            more = extra.get(i)
            if more:
                order = sorted({*pids, *more})
                merged = {}
                for pid in order:
                    merged.update(rules.attrs[pid])
            if merged:
                set_attrs(doc[i], merged)
        return doc

    def _multi_matches(self, infos: list[Info]) -> dict[int, set[int]] | None:
        """Token -> pattern numbers of the multi-token patterns that match with it as their target
        (None when none does: the common case costs one look at each token's cached starts)."""
        out: dict[int, set[int]] | None = None
        n = len(infos)
        multis = self.rules.multis
        for s, inf in enumerate(infos):
            for m in inf[3]:
                pid, specs, idx = multis[m]
                span = len(specs)
                if s + span <= n and all(j in infos[s + j][2][m] for j in range(1, span)):
                    if out is None:
                        out = {}
                    out.setdefault(s + idx, set()).add(pid)
        return out

    def pipe(self, docs: Iterable[Any], batch_size: int = 128) -> Iterator[Any]:
        for doc in docs:
            yield self(doc)

    def __getattr__(self, name: str) -> Any:
        """Everything else is the replaced ruler's (`patterns`, ...), so code that reads the
        pipeline's attribute ruler sees spaCy's; its patterns must not change after the swap."""
        if name == "inner" or self.inner is None:
            raise AttributeError(name)
        return getattr(self.inner, name)


def speed_up(nlp: Any) -> bool:
    """Swap `nlp`'s "attribute_ruler" for a `FastAttributeRuler` of its patterns; True if swapped.

    Nothing happens (False) when the pipeline has no such component or one of its patterns is
    beyond `compile_patterns`.
    """
    if "attribute_ruler" not in nlp.pipe_names or not isinstance(getattr(nlp, "_components", None), list):
        return False
    old = nlp.get_pipe("attribute_ruler")
    rules = compile_patterns(old)
    if rules is None:
        return False
    # replaced in place, keeping its name and position; spaCy's `replace_pipe` needs a registered
    # factory with a serialisable config, which a compiled cache is not
    comps = nlp._components
    comps[comps.index(("attribute_ruler", old))] = ("attribute_ruler", FastAttributeRuler(rules, old))
    return True
