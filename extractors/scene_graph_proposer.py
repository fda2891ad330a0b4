"""A learned fact proposer: scores relations and attributes the rules did not (or did) propose.

Why a proposer and not only a filter: on FACTUAL dev a third of the missed relations and half of
the missed attributes were never proposed by the rules, so dropping facts cannot recover them.
Here the rules' objects stay as they are (their `tokens` are the truth pretraining masks), and
candidates are generated from the dependency parse around them:

- relations: for every pair of objects whose heads are close in the parse, the predicate words on
  the dependency path between them ("sitting" + "on" -> "sit on", "in front of", "next to"), the
  verbs alone ("parked by" -> "park", for the inverted passive), the last verb with what follows
  it ("wear lay on" -> "lay on"), the last preposition run after other words ("sitting on near"
  -> "near"), "have" for "with"/"of"/possessive paths, and every predicate the rules proposed on
  the pair, each in both directions;
- attributes: for every object, the adjectives, numbers and participles near its head in the
  parse (a participle also with its particles, "laying down"), "-ed" verbs without a subject
  ("paved road", tagged a past tense), a few adverbs of state ("people outside"), plus the rules'
  own attributes (`attr_words`).

One logistic regression per family scores each candidate from a few dozen sparse features (the
predicate or attribute word, the objects' names, the dependency labels on the path, distances,
whether and how the rules proposed it). Per pair of objects the best-scoring relation is kept when
it clears a threshold; attributes are kept independently. The thresholds are chosen on held-out
FACTUAL train captions by `jobs/train_text.py --proposer`; dev is only measured.

Every node the proposer writes carries exactly the token indices of its words: a path predicate the
tokens it was built from, a rule fact the rule's tokens.

Cost: training sees every candidate's features as short strings (`rel_features`, the attribute
list in `candidates`). At inference `ScoreTables` holds the same weights re-keyed by the parts of
each feature, so a candidate is scored with a few tuple look-ups and no strings: the features a
pair shares are summed once per pair (and cached by what they are made of), and a pair that one
certain rule relation decides is not scored at all. `Proposer.apply_reference` keeps the string
path; a test checks both choose the same graphs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laitkit.datasets.schema import SceneNode
from laitkit.extractors.factual import NUMBER_WORDS
from laitkit.extractors.scene_graph import SPELLINGS
from laitkit.extractors.scene_graph_rerank import Reranker

PROPOSER_PATH = Path(__file__).resolve().parent / "weights" / "factual_proposer.npz"

# Words that belong to a multiword predicate although they are not verbs or prepositions.
REL_WORDS = frozenset(
    {
        "front", "top", "side", "back", "middle", "edge", "bottom", "next", "close", "out", "ahead",
        "inside", "outside", "near", "underneath", "away", "across", "together", "full", "left", "right",
    }
)  # fmt: skip
PRED_POS = frozenset({"VERB", "ADP", "AUX"})
ATTR_POS = frozenset({"ADJ", "NUM"})
MAX_PATH = 5
MAX_ATTR_PATH = 3
# Adverbs FACTUAL writes as an attribute of an object's state ("people outside", "head down").
ADV_ATTRS = frozenset({"outside", "inside", "down", "up", "overhead", "underneath", "apart", "off", "open", "upright"})


def _bucket(x: int, top: int) -> str:
    """`x` clipped to [-top, top], as text (cached: only a few values occur)."""
    got = _BUCKETS.get((x, top))
    if got is None:
        got = str(max(-top, min(top, x)))
        if len(_BUCKETS) < 10_000:
            _BUCKETS[(x, top)] = got
    return got


_BUCKETS: dict[tuple[int, int], str] = {}


class Context:
    """The per-caption lists the walk used (after its tag repairs), with lazily built ancestors.

    A plain class with `__slots__` (not a dataclass): the build then makes it an extension type
    (`setup.py`'s `slots_pxd`), so its methods (`path`, `ancestors`, ...), called several times
    per pair of objects, read its lists as struct fields instead of through an instance dict.
    Constructed as the dataclass was: `Context(lower, lemma, pos, tag, dep, head, verb_lemmas,
    certain=frozenset())`.
    """

    __slots__ = (
        "lower", "lemma", "pos", "tag", "dep", "head", "verb_lemmas", "certain", "_anc", "_pos", "_words", "_prts",
    )  # fmt: skip

    def __init__(
        self,
        lower: Sequence[str],
        lemma: Sequence[str],
        pos: Sequence[str],
        tag: Sequence[str],
        dep: Sequence[str],
        head: Sequence[int],
        verb_lemmas: dict[str, str],
        certain: frozenset[int] = frozenset(),
    ) -> None:
        self.lower = lower
        self.lemma = lemma
        self.pos = pos
        self.tag = tag
        self.dep = dep
        self.head = head
        self.verb_lemmas = verb_lemmas
        self.certain = certain
        self._anc: dict[int, list[int]] = {}
        self._pos: dict[int, dict[int, int]] = {}
        self._words: list[str] | None = None
        self._prts: dict[int, list[int]] | None = None

    def replace(self, **changes: object) -> Context:
        """A copy with some fields changed, as `dataclasses.replace` made when this was a
        dataclass (the lazy caches start empty; an unknown field is a TypeError)."""
        kw = {k: getattr(self, k) for k in _CONTEXT_FIELDS}
        kw.update(changes)
        return Context(**kw)

    def ancestors(self, i: int) -> list[int]:
        """`i` and its heads up to the root."""
        a = self._anc.get(i)
        if a is None:
            a = [i]
            head = self.head
            while head[a[-1]] != a[-1] and len(a) < 40:
                a.append(head[a[-1]])
            self._anc[i] = a
        return a

    def path(self, a: int, b: int) -> tuple[list[int], list[int]]:
        """(up, down): tokens from `a` up to the lowest common head, and from there down to `b`.

        `up` starts at `a` and ends at the common head; `down` starts below it and ends at `b`.
        """
        if self._hangs_off(a, b):  # the commonest path ("red" of "car")
            return [a, b], []
        aa, bb = self.ancestors(a), self.ancestors(b)
        bset = self._where(b, bb)
        for k, t in enumerate(aa):
            if t in bset:
                return aa[: k + 1], list(reversed(bb[: bset[t]]))
        return aa, list(reversed(bb))  # two roots (a fragment): no common head

    def _hangs_off(self, a: int, b: int) -> bool:
        """Is `b` the head of `a`, with `b`'s chain ending at a root? Then the path is `a` -> `b`.
        (On broken heads, a cycle, the general walk below is kept as it is.)"""
        if self.head[a] != b or a == b:
            return False
        bb = self.ancestors(b)
        return self.head[bb[-1]] == bb[-1]

    def _where(self, b: int, bb: list[int]) -> dict[int, int]:
        """Position of each ancestor of `b` in its chain (cached: most paths end at an object)."""
        got = self._pos.get(b)
        if got is None:
            got = self._pos[b] = {t: k for k, t in enumerate(bb)}
        return got

    def path_len(self, a: int, b: int) -> int:
        """Number of arcs on `path(a, b)`, without building it."""
        if self._hangs_off(a, b):
            return 1
        aa, bb = self.ancestors(a), self.ancestors(b)
        bset = self._where(b, bb)
        for k, t in enumerate(aa):
            if t in bset:
                return k + bset[t]
        return len(aa) + len(bb) - 1

    def word(self, t: int) -> str:
        if self.pos[t] in ("VERB", "AUX"):
            return self.verb_lemmas.get(self.lower[t]) or self.lemma[t].lower()
        return self.lower[t]

    def words(self) -> list[str]:
        """`word(t)` of every token, made once per caption."""
        w = self._words
        if w is None:
            # `word` unrolled: most tokens are not verbs and keep their lower-cased text
            w = self._words = list(self.lower)
            vl, lemma = self.verb_lemmas, self.lemma
            for t, p in enumerate(self.pos):
                if p == "VERB" or p == "AUX":
                    w[t] = vl.get(w[t]) or lemma[t].lower()
        return w

    def particles(self) -> dict[int, list[int]]:
        """Verb token -> its particles ("up" of "pick up"), in sentence order."""
        p = self._prts
        if p is None:
            p = self._prts = {}
            if "prt" not in self.dep:  # most captions: one C-level scan
                return p
            pos, head = self.pos, self.head
            for k, d in enumerate(self.dep):
                if d == "prt" and pos[head[k]] == "VERB":
                    p.setdefault(head[k], []).append(k)
        return p


# what `Context.replace` copies: its fields, not its lazy caches (the slots starting with "_")
_CONTEXT_FIELDS = tuple(f for f in Context.__slots__ if not f.startswith("_"))


def _preds_from(ctx: Context, toks: list[int]) -> tuple[tuple[str, tuple[int, ...]], tuple[str, tuple[int, ...]]]:
    """Predicate words and tokens from path tokens `toks` (in sentence order): all predicate words
    (verbs, prepositions, `REL_WORDS`), and the verbs alone; each with its verbs' particles
    ("pick up"). A copula "be" is never part of a predicate."""
    pos, lower, lemma = ctx.pos, ctx.lower, ctx.lemma
    full: list[int] = []
    verbs: list[int] = []
    for t in toks:
        p = pos[t]
        if p == "AUX" and lemma[t].lower() == "be":
            continue
        if p == "VERB" or p == "AUX":
            verbs.append(t)
            full.append(t)
        elif p in PRED_POS or lower[t] in REL_WORDS:
            full.append(t)
    words = ctx.words()
    prts = ctx.particles()
    out = []
    for keep in (full, verbs):
        if keep and prts:
            keep.extend([k for t in keep if t in prts for k in prts[t] if k not in keep])
            keep.sort()
        out.append((" ".join([words[t] for t in keep]) if keep else "", tuple(keep)))
    return out[0], out[1]


def _tail(ctx: Context, full: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """The last verb of a path predicate and the words after it ("wear lay on" -> "lay on",
    "wear ride" -> "ride"); ("", ()) when the path has no verb after its first word.

    Why: when the path between two objects crosses two verbs (coordinated or chained), FACTUAL
    often names the relation by the verb nearest the object ("boys wear helmets and ride
    bicycles" -> ride); neither the whole path nor "the verbs" is that predicate, so it was never
    a candidate (the commonest kind of gold relation missing from the candidates on train)."""
    pos, lemma = ctx.pos, ctx.lemma
    last = -1
    for k in range(len(full) - 1, 0, -1):
        t = full[k]
        if (pos[t] == "VERB" or pos[t] == "AUX") and lemma[t].lower() != "be":
            last = k
            break
    if last < 1:
        return "", ()
    keep = full[last:]
    words = ctx.words()
    return " ".join([words[t] for t in keep]), keep


def _last_prep(ctx: Context, inner: list[int]) -> tuple[str, tuple[int, ...]]:
    """The last run of prepositions (and `REL_WORDS`) on a path, nearest the second object, when
    something else stands before it ("sitting on near" -> "near", "in background in" -> "in");
    ("", ()) otherwise.

    Why: when a path crosses a verb or a noun and two prepositional phrases, FACTUAL names the
    relation by the preposition that governs the object ("a chair in the room near the window" ->
    (chair, near, window), "boys playing with a ball on the beach" -> (boys, on, beach));
    the whole path, its verbs and its last verb spell something else, so that predicate was never
    a candidate (the commonest construction among gold predicates missing from the candidates on
    held-out train captions, `jobs/relation_errors.py`)."""
    pos, lower = ctx.pos, ctx.lower
    k = len(inner)
    while k > 0 and not (pos[inner[k - 1]] == "ADP" or lower[inner[k - 1]] in REL_WORDS):
        k -= 1
    end = k
    while k > 0 and (pos[inner[k - 1]] == "ADP" or lower[inner[k - 1]] in REL_WORDS):
        k -= 1
    if k == 0 or end == 0:
        return "", ()
    keep = tuple(inner[k:end])
    words = ctx.words()
    return " ".join([words[t] for t in keep]), keep


class Proposer:
    """Weights of the relation and attribute scorers and their thresholds."""

    def __init__(
        self,
        vocab: Sequence[str],
        weights: np.ndarray,
        thresholds: Thresholds,
        alts: dict[str, list[str]] | None = None,
        rerank: Reranker | None = None,
    ) -> None:
        self.alts = alts or {}
        self.thresholds = thresholds
        self.rerank = rerank
        self.index = {x: i for i, x in enumerate(vocab)}
        self.w = np.concatenate([np.asarray(weights, dtype=np.float64), [0.0]])  # last: unknown features
        self.unknown = len(vocab)
        self.tables = ScoreTables(vocab, self.w[:-1].tolist())

    @classmethod
    def load(cls, path: str | Path | None = None) -> Proposer | None:
        """The shipped proposer (or `path`); None when the file is absent."""
        p = Path(path) if path is not None else PROPOSER_PATH
        if not p.exists():
            return None
        with np.load(p, allow_pickle=False) as z:
            alts = {k: v.split("|") for k, v in zip(z["alt_keys"].tolist(), z["alt_values"].tolist(), strict=True)}
            thr = Thresholds(*(float(x) for x in z["thresholds"]))
            rerank = Reranker(z["rerank_rel"], z["rerank_attr"]) if "rerank_rel" in z.files else None
            return cls(z["vocab"].tolist(), z["weights"], thr, alts, rerank)

    def scores(self, rows: Sequence[Sequence[str]]) -> np.ndarray:
        """Logits of candidate feature rows: one gather over all the rows' feature indices."""
        if not rows:
            return np.zeros(0)
        get, unk = self.index.get, self.unknown
        lens = [len(r) for r in rows]
        idx = np.fromiter((get(x, unk) for r in rows for x in r), dtype=np.int64, count=sum(lens))
        seg = np.repeat(np.arange(len(rows)), lens)
        return np.bincount(seg, weights=self.w[idx], minlength=len(rows))

    def apply(self, graph: list[SceneNode], ctx: Context) -> list[SceneNode]:
        """The graph with objects unchanged and relations/attributes chosen by the model.

        Scores come from `ScoreTables` while the candidates are made (no feature strings for the
        predicate-dependent features, nothing at all for pairs a certain rule fact decides);
        `apply_reference` is the same decision from the training features, kept as the check.
        """
        for n in graph:  # (a plain loop: cheaper than any() over a generator for 3-4 nodes)
            if n.kind == "object":
                break
        else:
            return graph
        rcands, acands, keep = candidates(graph, ctx, self.alts, self.tables)
        z = [c[3] for c in rcands] + [c[3] for c in acands]
        if self.rerank is not None:
            z = self.rerank.rescore(graph, rcands, acands, z)
        return decide(graph, rcands, acands, keep, z, self.thresholds)

    def apply_reference(self, graph: list[SceneNode], ctx: Context) -> list[SceneNode]:
        """`apply` through the training path: every candidate's feature strings, summed by index."""
        if not any(n.kind == "object" for n in graph):
            return graph
        rcands, acands, keep = candidates(graph, ctx, self.alts)
        z = self.scores([c[3] for c in rcands] + [c[3] for c in acands])
        if self.rerank is not None:
            z = self.rerank.rescore(graph, rcands, acands, z)
        return decide(graph, rcands, acands, keep, z, self.thresholds)


_NO: dict = {}


class ScoreTables:
    """The weights re-keyed by the parts of each feature, so scoring builds no strings per candidate.

    Why: a relation candidate has 21 features and a caption ~6 candidates; building each
    feature's string ("pso=man|on|table") and hashing it was a large part of the proposer's time.
    Here the 11 features shared by a pair (and direction) are summed once per pair (cached by the
    strings they are made of), the predicate's own ones once per predicate, and the rest sit in
    dicts nested by what the pair fixes (names, path, words), so a candidate costs a handful of
    look-ups by its predicate string, whose hash Python has cached. A feature whose parts contain
    the separator "|" cannot be split back apart; such a candidate is scored from its strings
    (`rel_features`), so the sums are the same up to float rounding.
    """

    def __init__(self, vocab: Sequence[str], weights: Sequence[float]) -> None:
        self.wd: dict[str, float] = dict(zip(vocab, weights, strict=True))
        t: dict[str, dict] = {k: {} for k in ("p", "p1", "ps", "po", "pso", "psw", "pdp", "pw", "ord", "src")}
        for key, w in self.wd.items():
            pre, _, rest = key.partition("=")
            tab = t.get(pre)
            if tab is None:
                continue
            bars = rest.count("|")
            if pre in ("p", "p1", "src"):
                if not bars:
                    tab[rest] = w
            elif pre in ("ps", "po") and bars == 1:
                tab[tuple(rest.split("|"))] = w
            elif pre == "pso" and bars == 2:
                tab[tuple(rest.split("|"))] = w
            elif pre == "psw" and bars == 2:
                pred, sw, ru = rest.split("|")
                tab[(pred, sw == "True", ru == "True")] = w
            elif pre in ("pdp", "pw") and bars >= 1:
                tab[tuple(rest.rsplit("|", 1))] = w
            elif pre == "ord" and bars >= 1:
                sw, first = rest.split("|", 1)
                tab[(sw == "True", first)] = w
        self.t = t
        # the same weights nested by what a pair fixes, so a candidate looks up its predicate only
        self.n_ps: dict[str, dict[str, float]] = {}
        self.n_po: dict[str, dict[str, float]] = {}
        self.n_pso: dict[tuple[str, str], dict[str, float]] = {}
        self.n_pdp: dict[str, dict[str, float]] = {}
        self.n_pw: dict[str, dict[str, float]] = {}
        for (pred, sl), w in t["ps"].items():
            self.n_ps.setdefault(sl, {})[pred] = w
        for (pred, ol), w in t["po"].items():
            self.n_po.setdefault(ol, {})[pred] = w
        for (sl, pred, ol), w in t["pso"].items():
            self.n_pso.setdefault((sl, ol), {})[pred] = w
        for (pd, pred), w in t["pdp"].items():
            self.n_pdp.setdefault(pd, {})[pred] = w
        for (pw, pred), w in t["pw"].items():
            self.n_pw.setdefault(pw, {})[pred] = w
        for k in ("ps", "po", "pso", "pdp", "pw"):
            del t[k]  # only the nested copies are read
        srcs = ("path", "verb", "tail", "lprep", "have", "rule", "alt")
        self.src_w = {(x, r): t["src"].get(x + str(r), 0.0) for x in srcs for r in (False, True)}
        self.src_pair = {x: (self.src_w[(x, False)], self.src_w[(x, True)]) for x in srcs}  # [src][is_rule]
        self._pred: dict[str, tuple[float, str]] = {}
        self._memo: dict[tuple, tuple] = {}
        self._alts_of: dict | None = None
        self._alts: dict[str, tuple[tuple[str, bool], ...]] = {}
        # the four attribute features that name the text, nested by it: text -> ("a=" weight,
        # {object: "ao="}, {source: "asrc="}, {path: "apdw="}); for a text without "|" each
        # nested look-up finds exactly the key its string would ("ao=" + ol + "|" + txt splits
        # back at its last "|", "asrc=" at its first), so no string is built per candidate
        a_tab: dict[str, list] = {}
        for key, w in self.wd.items():
            pre, _, rest = key.partition("=")
            if pre == "a":
                a_tab.setdefault(rest, [0.0, {}, {}, {}])[0] = w
            elif pre in ("ao", "asrc", "apdw") and "|" in rest:
                if pre == "asrc":
                    txt, part = rest.split("|", 1)
                    a_tab.setdefault(txt, [0.0, {}, {}, {}])[2][part] = w
                else:
                    part, txt = rest.rsplit("|", 1)
                    a_tab.setdefault(txt, [0.0, {}, {}, {}])[1 if pre == "ao" else 3][part] = w
        self.a_tab: dict[str, tuple] = {k: tuple(v) for k, v in a_tab.items()}

    def pred(self, pred: str) -> tuple[float, ...]:
        """The weights of a predicate's features that depend on nothing else, cached:
        ("p=" + "p1=", "ord=" for swap False / True, "psw=" for 2 * swap + is_rule = 0..3)."""
        got = self._pred.get(pred)
        if got is None:
            if len(self._pred) > 200_000:
                self._pred.clear()
            t = self.t
            first = pred.split(" ", 1)[0]
            got = (
                t["p"].get(pred, 0.0) + t["p1"].get(first, 0.0),
                t["ord"].get((False, first), 0.0),
                t["ord"].get((True, first), 0.0),
                *(t["psw"].get((pred, sw, r), 0.0) for sw in (False, True) for r in (False, True)),
            )
            self._pred[pred] = got
        return got

    def pair_bases(
        self,
        sa: str,
        sb: str,
        pd: str,
        dep_a: str,
        dep_b: str,
        tag_a: str,
        tag_b: str,
        nob: str,
        plen: int,
        via: bool,
        n_rule: int,
    ) -> tuple:
        """The summed weights of a pair's features that do not depend on the predicate.

        Indexed by `2 * swap + is_rule`; each part is cached by the strings it is made of, so a
        pair of a kind seen before costs a few look-ups.
        """
        memo = self._memo
        if len(memo) > 500_000:
            memo.clear()
        # the whole pair first (one look-up when this kind of pair was seen), then its parts
        pl_c, nr_c = 6 if plen > 6 else (-6 if plen < -6 else plen), 3 if n_rule > 3 else n_rule
        k0 = ("pair", sa, sb, pd, dep_a, dep_b, tag_a, tag_b, nob, plen, via, n_rule)
        got = memo.get(k0)
        if got is not None:
            return got
        k1 = ("so", sa, sb)
        so = memo.get(k1)
        if so is None:
            so = memo[k1] = (self.sum(["so=" + sa + "|" + sb]), self.sum(["so=" + sb + "|" + sa]))
        k2 = ("pd", pd, nob)
        pdw = memo.get(k2)
        if pdw is None:
            pdw = memo[k2] = tuple(
                self.sum(["b", "sw=" + str(sw), "pd=" + pd, "pdsw=" + pd + "|" + str(sw), "nob=" + nob])
                for sw in (False, True)
            )
        k3 = ("sd", dep_a, dep_b, tag_a, tag_b)
        sd = memo.get(k3)
        if sd is None:
            sd = memo[k3] = (
                self.sum(["sd=" + dep_a + "|" + dep_b + "|False", "st=" + tag_a + "|" + tag_b]),
                self.sum(["sd=" + dep_b + "|" + dep_a + "|True", "st=" + tag_b + "|" + tag_a]),
            )
        # keyed by the clipped numbers (what the buckets are made of), so a hit builds no string
        k4 = ("r", pl_c, via, nr_c)
        ru = memo.get(k4)
        if ru is None:
            pl, nrb = _bucket(plen, 6), _bucket(n_rule, 3)
            ru = memo[k4] = tuple(
                self.sum(["plen=" + pl + str(r), "via=" + str(via) + str(r), "nr=" + nrb + str(r)])
                for r in (False, True)
            )
        f, t = so[0] + pdw[0] + sd[0], so[1] + pdw[1] + sd[1]
        got = memo[k0] = (
            f + ru[0],
            f + ru[1],
            t + ru[0],
            t + ru[1],
            (dep_a, dep_b, tag_a, tag_b, nob, plen, via, n_rule),
        )
        return got

    def split_alts(self, alts: dict[str, list[str]] | None) -> dict[str, tuple[tuple[str, bool], ...]]:
        """`alts` as (predicate, reversed) pairs: "~under" -> ("under", True); cached per dict."""
        if not alts:
            return {}
        if self._alts_of is not alts:
            self._alts = {p: tuple((a[1:], True) if a[0] == "~" else (a, False) for a in v) for p, v in alts.items()}
            self._alts_of = alts
        return self._alts

    def attr_score(
        self, txt: str, ol: str, src: str, dep_t: str, tag_t: str, pd: str, dist: int, others: int, nob: str, dep_h: str
    ) -> float:
        """Logit of an attribute candidate: the features without its text summed once per kind of
        context (cached), plus the four that name the text."""
        memo = self._memo
        dist_b, oth_b = _bucket(dist, 4), _bucket(others, 2)
        key = ("a", src, dep_t, tag_t, pd, dist_b, oth_b, nob, dep_h)
        g = memo.get(key)
        if g is None:
            g = memo[key] = self.sum(
                ["ab", "asc=" + src, "ad=" + dep_t + "|" + src, "at=" + tag_t + "|" + src, "apd=" + pd + "|" + src,
                 "adist=" + dist_b + src, "aoth=" + oth_b + src, "anob=" + nob + src, "aod=" + dep_h + "|" + src]
            )  # fmt: skip
        if "|" not in txt:
            e = self.a_tab.get(txt)
            if e is None:
                return g + 0.0 + 0.0 + 0.0 + 0.0  # (the same additions as the string path's misses)
            return g + e[0] + e[1].get(ol, 0.0) + e[2].get(src, 0.0) + e[3].get(pd, 0.0)
        get = self.wd.get
        return (
            g
            + get("a=" + txt, 0.0)
            + get("ao=" + ol + "|" + txt, 0.0)
            + get("asrc=" + txt + "|" + src, 0.0)
            + get("apdw=" + pd + "|" + txt, 0.0)
        )

    def sum(self, feats: Sequence[str]) -> float:
        get = self.wd.get
        return sum([get(x, 0.0) for x in feats])


@dataclass(frozen=True)
class Thresholds:
    """Logit thresholds of the proposer's decisions (chosen on held-out train captions).

    rel_add: a new relation on a pair of objects the rules left unrelated; rel_drop: a rule
    relation is kept above it; rel_margin: a new predicate replaces the rules' one on the same pair
    when it scores this much higher; attr_add / attr_drop: the same for attributes.
    """

    rel_add: float = 0.0
    rel_drop: float = -2.0
    rel_margin: float = 1.0
    attr_add: float = 0.0
    attr_drop: float = -2.0


NEW, RULE, CERTAIN = 0, 1, 2


def decide(
    graph: Sequence[SceneNode],
    rcands: list[tuple],
    acands: list[tuple],
    keep: list[SceneNode],
    z: np.ndarray,
    thr: Thresholds,
) -> list[SceneNode]:
    """The new graph from scored candidates (see `Thresholds`): objects first in their order, the
    rules' self-relations, attributes, then relations (the rules' order of kinds).

    Per pair of objects: a certain rule relation stays as it is; otherwise the rules' relations stay
    when they score over `rel_drop`, unless a new candidate beats the best of them by `rel_margin`;
    a pair without rule relations gets its best candidate over `rel_add`. `z`: logits of `rcands`
    followed by those of `acands`.
    """
    objs = [i for i, n in enumerate(graph) if n.kind == "object"]
    new_idx = {o: k for k, o in enumerate(objs)}
    nr = len(rcands)
    out = [graph[i] for i in objs] + keep
    seen: set[tuple] = set()
    # when the objects are the graph's first nodes, a rule fact chosen as it was is its own node
    same: dict[tuple, SceneNode] | None = None
    if objs and objs[-1] == len(objs) - 1:
        same = {}
        for nd in graph[len(objs) :]:
            if nd.kind == "attribute":
                same[("a", nd.subject, nd.lemma)] = nd
            elif nd.kind == "relation":
                same[(nd.subject, nd.lemma, nd.object)] = nd
    for j, c in enumerate(acands):
        s, txt, toks, _, kind = c
        zj = z[nr + j]
        ok = kind == CERTAIN or zj >= (thr.attr_drop if kind == RULE else thr.attr_add)
        if ok and (s, txt) not in seen:
            seen.add((s, txt))
            nd = same.get(("a", s, txt)) if same is not None else None
            if nd is None or nd.tokens != toks:
                nd = SceneNode(kind="attribute", lemma=txt, tokens=toks, subject=new_idx[s])
            out.append(nd)
    # per pair of objects (either order): [certain, rule, best new candidate, its logit]
    pairs: dict[tuple[int, int], list] = {}
    for j, c in enumerate(rcands):
        a, b, kind = c[0], c[1], c[4]
        p = pairs.get((a, b) if a < b else (b, a))
        if p is None:
            p = pairs[(a, b) if a < b else (b, a)] = [[], [], -1, 0.0]
        if kind == NEW:
            if p[2] < 0 or z[j] > p[3]:  # the first of equal maxima, as max() would
                p[2], p[3] = j, z[j]
        else:
            p[0 if kind == CERTAIN else 1].append(j)
    chosen: list[int] = []
    for sure, rule, best_new, zb in pairs.values():
        if sure:
            chosen.extend(sure)
        elif rule:
            top = max(z[j] for j in rule)
            if best_new >= 0 and zb >= top + thr.rel_margin and zb >= thr.rel_add:
                chosen.append(best_new)
            else:
                chosen.extend(j for j in rule if z[j] >= thr.rel_drop)
        elif best_new >= 0 and zb >= thr.rel_add:
            chosen.append(best_new)
    for j in sorted(chosen):
        s, o, (pred, toks), _, _ = rcands[j]
        key = (s, pred, o)
        if key not in seen:
            seen.add(key)
            nd = same.get((s, pred, o)) if same is not None else None
            if nd is None or nd.tokens != toks:
                nd = SceneNode(kind="relation", lemma=pred, tokens=toks, subject=new_idx[s], object=new_idx[o])
            out.append(nd)
    return out


def candidates(
    graph: Sequence[SceneNode],
    ctx: Context,
    alts: dict[str, list[str]] | None = None,
    tables: ScoreTables | None = None,
) -> tuple[list[tuple], list[tuple], list[SceneNode]]:
    """Relation candidates (s, o, (pred, tokens), features, kind), attribute candidates (s, text,
    tokens, features, kind), and the rule nodes passed through unchanged (relations of an object
    with itself, renumbered to the proposer's object order).

    `s`/`o` are node indices in `graph`. Without `tables` (training, and the reference check) the
    features are lists of strings. With `tables` (inference) the fourth field is the candidate's
    logit instead, and what `decide` would not look at is not made: a pair that one certain rule
    relation decides gets only that relation, a certain attribute no score (both 0.0).
    """
    lower, dep, tag, pos = ctx.lower, ctx.dep, ctx.tag, ctx.pos
    objs = [i for i, n in enumerate(graph) if n.kind == "object"]
    new_idx = {o: k for k, o in enumerate(objs)}
    hd = {i: graph[i].span[1] - 1 for i in objs}
    n_obj = len(objs)
    nob = _bucket(n_obj, 5)
    obj_tok = {t for i in objs for t in graph[i].tokens}
    head_of = {hd[i]: i for i in objs}
    rule_rel: dict[tuple[int, int], list[SceneNode]] = {}
    rule_attr: dict[int, list[SceneNode]] = {}
    keep: list[SceneNode] = []
    certain = {id(graph[j]) for j in ctx.certain if j < len(graph)}
    sure_attr: set[tuple[int, str]] = set()
    for nd in graph:
        if nd.kind == "relation" and nd.subject >= 0 and nd.object >= 0:
            if nd.subject == nd.object:
                keep.append(
                    SceneNode(
                        kind="relation",
                        lemma=nd.lemma,
                        tokens=nd.tokens,
                        subject=new_idx[nd.subject],
                        object=new_idx[nd.object],
                    )
                )
            else:
                rule_rel.setdefault((nd.subject, nd.object), []).append(nd)
        elif nd.kind == "attribute" and nd.subject >= 0:
            rule_attr.setdefault(nd.subject, []).append(nd)
            if id(nd) in certain:
                sure_attr.add((nd.subject, nd.lemma))
    boxed = _boxed_pairs(graph, ctx, objs, hd, rule_rel, certain) if certain and rule_rel else _NONE
    rcands: list[tuple] = []
    alt_split = None
    if tables is not None:
        alt_split = tables.split_alts(alts)
        n_ps, n_po, n_pso, n_pdp, n_pw = tables.n_ps, tables.n_po, tables.n_pso, tables.n_pdp, tables.n_pw
        src_w = tables.src_pair
        pred_w = tables._pred.get
    for x in range(n_obj):
        for y in range(x + 1, n_obj):
            a, b = objs[x], objs[y]
            r_ab, r_ba = rule_rel.get((a, b), _NONE), rule_rel.get((b, a), _NONE)
            if tables is not None and certain and (r_ab or r_ba):
                sure = [(sw, nd) for sw, rr in ((False, r_ab), (True, r_ba)) for nd in rr if id(nd) in certain]
                if len(sure) == 1:  # decided: `decide` keeps exactly this relation
                    sw, nd = sure[0]
                    s, o = (b, a) if sw else (a, b)
                    rcands.append((s, o, (nd.lemma, tuple(nd.tokens)), 0.0, CERTAIN))
                    continue
            if boxed and (a, b) in boxed and not r_ab and not r_ba:
                continue
            ha, hb = hd[a], hd[b]
            up, down = ctx.path(ha, hb)
            plen = len(up) + len(down) - 1
            if plen > MAX_PATH and not r_ab and not r_ba:
                continue
            inner = sorted(set(up[1:] + down[:-1]))
            via = not head_of.keys().isdisjoint(inner)
            pd = _pd(dep, pos, up, down)
            pw = " ".join([lower[t] for t in inner if t not in obj_tok])[:40]
            cands: dict[tuple[str, bool], tuple[tuple[int, ...], str]] = {}
            kinds: dict[tuple[str, bool], int] = {}
            full, verbs = _preds_from(ctx, inner)
            if full[0]:
                cands[(full[0], False)] = (full[1], "path")
                cands[(full[0], True)] = (full[1], "path")
            if verbs[0] and verbs[0] != full[0]:
                cands[(verbs[0], False)] = (verbs[1], "verb")
                cands[(verbs[0], True)] = (verbs[1], "verb")
            tail = _tail(ctx, full[1])
            if tail[0] and tail[0] != verbs[0]:
                cands.setdefault((tail[0], False), (tail[1], "tail"))
                cands.setdefault((tail[0], True), (tail[1], "tail"))
            lprep = _last_prep(ctx, inner)
            if lprep[0] and lprep[0] != full[0] and lprep[0] != tail[0]:
                cands.setdefault((lprep[0], False), (lprep[1], "lprep"))
                cands.setdefault((lprep[0], True), (lprep[1], "lprep"))
            hv = [t for t in inner if lower[t] in _HAVE_WORDS] or ([ha] if dep[ha] == "poss" else [])
            if hv or dep[ha] == "compound" or dep[hb] == "compound":
                toks = tuple(hv) if hv else ((ha,) if dep[ha] == "compound" else (hb,))
                cands.setdefault(("have", False), (toks, "have"))
                cands.setdefault(("have", True), (toks, "have"))
            for swap, rr in ((False, r_ab), (True, r_ba)):
                for nd in rr:
                    cands[(nd.lemma, swap)] = (nd.tokens, "rule")
                    kinds[(nd.lemma, swap)] = CERTAIN if id(nd) in certain else RULE
            if alt_split is not None:
                for (pred, swap), (toks, _src) in list(cands.items()):
                    more = alt_split.get(pred)
                    if more:
                        val = (toks, "alt")
                        for alt, flip in more:
                            cands.setdefault((alt, swap ^ flip), val)
            elif alts:
                for (pred, swap), (toks, _src) in list(cands.items()):
                    for alt in alts.get(pred, ()):  # "~under": the other direction ("below" -> "under")
                        if alt[0] == "~":
                            cands.setdefault((alt[1:], not swap), (toks, "alt"))
                        else:
                            cands.setdefault((alt, swap), (toks, "alt"))
            n_rule = len(r_ab) + len(r_ba)
            sa, sb = graph[a].lemma, graph[b].lemma
            if tables is not None and "|" not in sa and "|" not in sb:
                base = tables.pair_bases(sa, sb, pd, dep[ha], dep[hb], tag[ha], tag[hb], nob, plen, via, n_rule)
                rule_lemmas = (
                    {nd.lemma for nd in r_ab} if r_ab else _NONE,
                    {nd.lemma for nd in r_ba} if r_ba else _NONE,
                )
                # the tables' bound `get`s, taken once per pair: a call of a bound method skips the
                # method look-up that `d.get(...)` pays per candidate (compiled, that look-up cost
                # about as much as the dict look-up itself)
                pdp_d, pw_d = n_pdp.get(pd, _NO).get, n_pw.get(pw, _NO).get
                by_dir = (
                    (a, b, sa, sb, n_ps.get(sa, _NO).get, n_po.get(sb, _NO).get, n_pso.get((sa, sb), _NO).get),
                    (b, a, sb, sa, n_ps.get(sb, _NO).get, n_po.get(sa, _NO).get, n_pso.get((sb, sa), _NO).get),
                )
                for key, (toks, src) in cands.items():
                    pred, swap = key
                    s, o, sl, ol, ps_d, po_d, pso_d = by_dir[swap]
                    if "|" in pred:
                        f = tables.sum(rel_features(pred, swap, src, sl, ol, pd, pw, r_ab, r_ba, *base[4]))
                    else:
                        is_rule = src == "rule" or pred in rule_lemmas[swap]
                        pw_ = pred_w(pred) or tables.pred(pred)
                        k = swap + swap + is_rule
                        f = (
                            base[k]
                            + pw_[0]
                            + ps_d(pred, 0.0)
                            + po_d(pred, 0.0)
                            + pso_d(pred, 0.0)
                            + src_w[src][is_rule]
                            + pw_[3 + k]
                            + pdp_d(pred, 0.0)
                            + pw_d(pred, 0.0)
                            + pw_[1 + swap]
                        )
                    rcands.append((s, o, (pred, toks), f, kinds.get(key, NEW) if kinds else NEW))
                continue
            ctxf = (r_ab, r_ba, dep[ha], dep[hb], tag[ha], tag[hb], nob, plen, via, n_rule)
            for (pred, swap), (toks, src) in cands.items():
                s, o, sl, ol = (b, a, sb, sa) if swap else (a, b, sa, sb)
                f = rel_features(pred, swap, src, sl, ol, pd, pw, *ctxf)
                z = f if tables is None else tables.sum(f)
                rcands.append((s, o, (pred, tuple(toks)), z, kinds.get((pred, swap), NEW)))
    acands: list[tuple] = []
    n = len(lower)
    cand_w = attr_words(ctx, obj_tok)
    attr_sets = {j: {x.lemma for x in nds} for j, nds in rule_attr.items()}
    path_len = ctx.path_len
    for i in objs if cand_w or rule_attr else ():  # (no adjective, number or rule attribute: none)
        h = hd[i]
        ol = graph[i].lemma
        props: dict[str, tuple[tuple[int, ...], str, int]] = {}
        ruled: set[int] = set()
        for nd in rule_attr.get(i, _NONE):
            props[nd.lemma] = (nd.tokens, "rule", nd.tokens[0] if nd.tokens else h)
            ruled.update(nd.tokens)
        for t, w, toks, src in cand_w:
            if w in props or t in ruled or path_len(t, h) > MAX_ATTR_PATH:
                continue
            props[w] = (toks, src, t)
        for txt, (toks, src, t) in props.items():
            kind = NEW if src != "rule" else (CERTAIN if (i, txt) in sure_attr else RULE)
            if kind == CERTAIN and tables is not None:
                acands.append((i, txt, tuple(toks), 0.0, kind))
                continue
            up, down = ctx.path(t, h) if 0 <= t < n else ([t], [])
            pd = _pd(dep, pos, up, down)
            others = (
                sum(1 for j, lem in attr_sets.items() if j != i and txt in lem)
                if len(attr_sets) > (i in attr_sets)
                else 0
            )
            if tables is not None:
                z = tables.attr_score(txt, ol, src, dep[t], tag[t], pd, t - h, others, nob, dep[h])
                acands.append((i, txt, tuple(toks), z, kind))
                continue
            f = [
                "ab",
                "a=" + txt,
                "ao=" + ol + "|" + txt,
                "asc=" + src,
                "asrc=" + txt + "|" + src,
                "ad=" + dep[t] + "|" + src,
                "at=" + tag[t] + "|" + src,
                "apd=" + pd + "|" + src,
                "apdw=" + pd + "|" + txt,
                "adist=" + _bucket(t - h, 4) + src,
                "aoth=" + _bucket(others, 2) + src,
                "anob=" + nob + src,
                "aod=" + dep[h] + "|" + src,
            ]
            acands.append((i, txt, tuple(toks), f, kind))
    return rcands, acands, keep


_NONE: tuple = ()


def _boxed_pairs(
    graph: Sequence[SceneNode],
    ctx: Context,
    objs: list[int],
    hd: dict[int, int],
    rule_rel: dict[tuple[int, int], list[SceneNode]],
    certain: set[int],
) -> set[tuple[int, int]]:
    """Pairs (Y, Z), as (lower, higher) node index, that get no relation candidate: in "X of Y
    <prep> Z" the rules related the container X to Z for sure ("a mug of coffee on the table" ->
    ( mug , on , table )), so the location belongs to X and Y has none of its own.

    Why by construction: the path from Y to Z crosses "of X on", whose last preposition is a
    candidate ("on"); the logistic then weighed ( coffee , on , table ) against one threshold, and
    whether it cleared it moved with every retraining.
    """
    head, dep, lower = ctx.head, ctx.dep, ctx.lower
    out: set[tuple[int, int]] = set()
    for (x, z), nds in rule_rel.items():
        if not any(id(nd) in certain for nd in nds):
            continue
        for y in objs:
            hy = hd[y]
            if y == x or y == z or dep[hy] != "pobj" or lower[head[hy]] != "of" or head[head[hy]] != hd[x]:
                continue
            out.add((y, z) if y < z else (z, y))
    return out


def _pd(dep: Sequence[str], pos: Sequence[str], up: list[int], down: list[int]) -> str:
    """The dependency path as one string: labels up to the common head, its POS, labels down
    ("amod|NOUN|", "prep|NOUN|pobj"); the one- and two-arc paths without building lists."""
    if len(up) == 2 and not down:
        return dep[up[0]] + "|" + pos[up[1]] + "|"
    if len(up) == 1 and len(down) == 1:
        return "|" + pos[up[0]] + "|" + dep[down[0]]
    return "^".join([dep[t] for t in up[:-1]]) + "|" + pos[up[-1]] + "|" + "v".join([dep[t] for t in down])


_HAVE_WORDS = frozenset({"with", "of", "'s", "has", "have"})


def attr_words(ctx: Context, obj_tok: set[int]) -> list[tuple[int, str, tuple[int, ...], str]]:
    """The caption's attribute candidates as (token, text, tokens, source), in token order.

    "tok": adjectives, numbers, participles and adjectival words, in FACTUAL's spelling; "prt":
    a participle with its particles ("laying down", "pulled back", "lit up"); "vbd": an "-ed" verb
    without a subject, which spaCy tags as a past tense in caption fragments ("paved road beside
    the field", "wires stretched"); "adv": the adverbs FACTUAL writes as a state ("people
    outside", "head down"). The last three were never candidates: on held-out train captions
    they were the commonest attribute kinds missing from the candidates.
    """
    lower, dep, tag, pos, head = ctx.lower, ctx.dep, ctx.tag, ctx.pos, ctx.head
    n = len(lower)
    prts = ctx.particles()
    subj: set[int] | None = None
    out: list[tuple[int, str, tuple[int, ...], str]] = []
    for t in range(n):
        if t in obj_tok:
            continue
        p, tg = pos[t], tag[t]
        if p in ATTR_POS or tg == "VBN" or tg == "VBG" or dep[t] == "acomp" or dep[t] == "amod":
            src = "tok"
        elif tg == "VBD" and lower[t][-2:] == "ed":
            if subj is None:
                subj = {head[k] for k in range(n) if dep[k] in ("nsubj", "nsubjpass") and head[k] != k}
            if t in subj:
                continue
            src = "vbd"
        elif p == "ADV" and lower[t] in ADV_ATTRS:
            src = "adv"
        else:
            continue
        w = NUMBER_WORDS.get(lower[t], lower[t])
        out.append((t, SPELLINGS.get(w, w), (t,), src))
        if p == "VERB" and t in prts:
            more = [k for k in prts[t] if k > t]
            if more:
                out.append((t, " ".join([lower[t], *(lower[k] for k in more)]), (t, *more), "prt"))
    return out


def rel_features(
    pred: str,
    swap: bool,
    src: str,
    sl: str,
    ol: str,
    pd: str,
    pw: str,
    r_ab: Sequence[SceneNode],
    r_ba: Sequence[SceneNode],
    dep_a: str,
    dep_b: str,
    tag_a: str,
    tag_b: str,
    nob: str,
    plen: int,
    via: bool,
    n_rule: int,
) -> list[str]:
    """The feature strings of one relation candidate (what training fits; `ScoreTables` re-keys them).

    `sl`/`ol`: the subject's and object's names in this direction; `pd`: the dependency path of
    the pair; `pw`: its words; `r_ab`/`r_ba`, `dep_a`, `tag_a`, ...: the rules' relations and the
    heads' labels of the pair in its own (a, b) order.
    """
    is_rule = src == "rule" or any(nd.lemma == pred for nd in (r_ba if swap else r_ab))
    ds, do, ts, to = (dep_b, dep_a, tag_b, tag_a) if swap else (dep_a, dep_b, tag_a, tag_b)
    first = pred.split(" ", 1)[0]
    return [
        "b",
        "so=" + sl + "|" + ol,
        "sw=" + str(swap),
        "pd=" + pd,
        "pdsw=" + pd + "|" + str(swap),
        "nob=" + nob,
        "sd=" + ds + "|" + do + "|" + str(swap),
        "st=" + ts + "|" + to,
        "plen=" + _bucket(plen, 6) + str(is_rule),
        "via=" + str(via) + str(is_rule),
        "nr=" + _bucket(n_rule, 3) + str(is_rule),
        "p=" + pred,
        "p1=" + first,
        "ps=" + pred + "|" + sl,
        "po=" + pred + "|" + ol,
        "pso=" + sl + "|" + pred + "|" + ol,
        "src=" + src + str(is_rule),
        "psw=" + pred + "|" + str(swap) + "|" + str(is_rule),
        "pdp=" + pd + "|" + pred,
        "pw=" + pw + "|" + pred,
        "ord=" + str(swap) + "|" + first,
    ]
