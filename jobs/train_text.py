"""Mine FACTUAL's annotation conventions from its train split into `extractors/weights/factual_lexicon.json`.

Why a mined lexicon: the scene-graph rules (`extractors/scene_graph.py`) follow English syntax, but
FACTUAL's gold graphs also follow house conventions that syntax cannot decide — which noun-noun
compounds are one object ("coffee table") and which are a material ("wood desk" -> "wooden"), that
"leg of the man" is "( man , have , leg )", that "lying on" is written "lay on", which adjectives
are never annotated. Each convention is a counted vote: the rules run on every train caption, and
each candidate decision is compared with the gold graph. A decision enters the lexicon only when
it was seen often enough and beats the rule's default, so the file stays small (tens of KB) and
readable. CPU only, about a minute: parse the train captions once, then two counting passes.

Usage: python -m laitkit.jobs.train_text [--train CSV] [--out JSON] [--holdout N]
`--holdout N` mines on all but the last N captions and prints the score on those N.

`--fact-filter` instead trains the two learned parts (`extractors/scene_graph_filter.py`) on top of
the shipped lexicon's rules. First the noun tagger (`weights/factual_nouns.npz`): every token spaCy
tags a verb, adjective or adverb is labelled by whether gold names an object by that word ("oven
under the stove"); its threshold is the best token F1 on the held-out captions. Then the fact
filter (`weights/factual_filter.npz`), over the graphs the rules build with those nouns: every
attribute and relation the rules propose on a train caption is labelled by whether its normalised
tuple is in the gold graph; a logistic regression is fitted on all but `--holdout` captions (picked
by `--seed`), its threshold is the one that maximises all-F1 on those held-out captions, and the
shipped weights are then refitted on every train caption. Dev is never read.

`--proposer` trains the fact proposer (`extractors/scene_graph_proposer.py`, weights
`weights/factual_proposer.npz`) over the rules' graphs with the shipped lexicon and noun tagger:
the predicate alternatives FACTUAL writes for a candidate's words are mined from the fit captions,
every relation and attribute candidate is labelled by whether its normalised tuple is in gold, one
logistic regression is fitted on all but `--holdout` captions (picked by `--seed`) and its five
decision thresholds are chosen on the held-out ones (all-F1). CPU, about 5-10 minutes.
`--rerank` also fits the proposer's second stage (`extractors/scene_graph_rerank.py`): the first
stage again on each of 3 folds of the fitting captions, so that every fitting caption has
out-of-fold logits, a dense logistic regression over those logits' competition features, and its
own five thresholds on the held-out captions; it is written into the same file only when it beats
the first stage alone by `--rerank-margin` held-out all-F1 (default 0.002). About 3x the time.

`--naming` trains the object-naming tagger (`extractors/scene_graph_naming.py`, weights
`weights/factual_naming.npz`) over the rules' walk with the shipped lexicon and noun tagger:
every word the walk may add to an object's name is labelled by whether gold names the object
with it; counts of gold names and attributes come from the fitting captions; the threshold is
the best held-out all-F1 of the rules' graphs (same held-out captions as `--proposer`). Then the
object gate (`scene_graph_naming.ObjectGate`, saved in the same file): every object the walk makes
with a name gold sometimes leaves out is labelled by whether gold has an object with its head
word; kept only if its threshold raises held-out all-F1. About a minute. Retrain the proposer
after it (its candidates are over the objects this names).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, astuple, replace
from pathlib import Path
from typing import Any

from laitkit.extractors.factual import (
    Normalizer,
    read_factual_csv,
    score_facts,
    set_match,
    spacy_noun_lemmatizer,
)
from laitkit.extractors.scene_graph import COLOURS, LEXICON_PATH, MATERIALS, Lexicon
from laitkit.extractors.scene_graph_filter import FILTER_PATH, NOUN_TAGGER_PATH
from laitkit.extractors.scene_graph_naming import NAMING_PATH
from laitkit.extractors.scene_graph_proposer import PROPOSER_PATH
from laitkit.extractors.text import TextConfig, TextExtractor, graph_to_facts, object_name

log = logging.getLogger("laitkit.train_text")

DEFAULT_TRAIN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "factual" / "train.csv"


DESCRIPTIVE = MATERIALS | COLOURS


def _decide(votes: Counter, default: Any, min_count: int, min_share: float = 0.5) -> Any:
    """The most voted decision if it is frequent enough and beats `default`; else `default`."""
    if not votes:
        return default
    total = sum(votes.values())
    # ties broken by the decision's spelling, not by insertion order (which follows the iteration
    # order of sets of strings, i.e. PYTHONHASHSEED)
    best, n = min(votes.items(), key=lambda kv: (-kv[1], str(kv[0])))
    if best == default or n < min_count or n / total < min_share or n <= votes.get(default, 0):
        return default
    return best


class Miner:
    """Counts votes for each lexicon table over parsed train captions."""

    def __init__(self, ex: TextExtractor, norm: Normalizer) -> None:
        self.ex = ex
        self.norm = norm

    def gold_sets(self, facts: list) -> tuple[set, set, set, set]:
        objs, attrs, rels = self.norm.tuples(facts)
        return {o[0] for o in objs}, attrs, rels, objs

    def pass_a(self, docs: list, golds: list) -> dict[str, Any]:
        """Token-level conventions: verb lemmas, compounds, quantities."""
        nl = self.norm.obj
        verb_votes: dict[str, Counter] = defaultdict(Counter)
        comp_votes: dict[str, Counter] = defaultdict(Counter)
        pair_votes: dict[str, Counter] = defaultdict(Counter)  # "modifier|head lemma"
        qty_votes: dict[str, Counter] = defaultdict(Counter)
        spacy_lemma: dict[str, str] = {}
        ing_verb: Counter = Counter()
        ing_votes: dict[str, Counter] = defaultdict(Counter)
        adj_tag: Counter = Counter()  # how often a word is tagged an adjective / a noun in train
        noun_tag: Counter = Counter()
        as_attr: Counter = Counter()  # how often gold writes a word as an attribute / as an object
        as_ent: Counter = Counter()
        for doc, gold in zip(docs, golds, strict=True):
            ents, attrs, rels, _ = self.gold_sets(gold)
            as_attr.update({a for _, a in attrs})
            as_ent.update(ents)
            ent_words = {w for e in ents for w in e.split()}
            gold_preds = {w for r in rels for w in r[1].split()[:1]}
            ent_heads = {e.split()[-1] for e in ents}
            for t in doc:
                if t.pos_ == "ADJ":
                    adj_tag[t.lower_] += 1
                elif t.pos_ in ("NOUN", "PROPN"):
                    noun_tag[t.lower_] += 1
                if t.lower_.endswith("ing"):
                    ing_votes[t.lower_]["n" if t.lower_ in ent_words else "v"] += 1
                    if t.tag_ == "VBG":
                        ing_verb[t.lower_] += 1
                if t.pos_ == "VERB":
                    w, lem = t.lower_, t.lemma_.lower()
                    spacy_lemma[w] = lem
                    if lem in gold_preds:
                        verb_votes[w][lem] += 1
                    else:
                        for g in gold_preds:
                            if g != lem and g[:2] == w[:2] and len(g) >= 2:
                                verb_votes[w][g] += 1
                h = t.head
                if t.dep_ == "compound" and h.pos_ in ("NOUN", "PROPN") and h.i != t.i:
                    m, hl = t.lower_, nl(h.lower_)
                    vote = None
                    if any(e.endswith(f"{nl(m)} {hl}") for e in ents):
                        vote = "="
                    elif (nl(m), "have", hl) in rels:
                        vote = "@have"  # "clock face" -> ( clock , have , face )
                    elif rel := compound_relation(nl(m), hl, rels):
                        vote = rel  # "train station" -> ( station , for , train ): "@~for"
                    else:
                        hit = min(
                            (a for (o, a) in attrs if o.split()[-1] == hl and (a == m or a[:3] == m[:3])), default=None
                        )
                        if hit is not None:
                            vote = hit
                        elif hl in ent_heads:
                            vote = ""
                    if vote is not None:
                        comp_votes[m][vote] += 1
                        pair_votes[f"{m}|{h.lemma_.lower()}"][vote] += 1
                if t.dep_ == "prep" and t.lower_ == "of" and h.pos_ in ("NOUN", "PROPN"):
                    objs = [c for c in t.children if c.dep_ == "pobj"]
                    if objs:
                        n1, n2 = h.lemma_.lower(), nl(objs[0].lower_)
                        hit = min((a for (o, a) in attrs if o.split()[-1] == n2 and a.split()[0] == n1), default=None)
                        if hit is not None:
                            qty_votes[n1][hit] += 1
                        elif n2 in ent_heads and nl(h.lower_) not in ent_heads:
                            qty_votes[n1]["-"] += 1  # a quantity FACTUAL does not write ("a lot of")
                        else:
                            qty_votes[n1][""] += 1
        lex: dict[str, Any] = {}
        lex["verb_lemmas"] = {
            w: d for w, v in sorted(verb_votes.items()) if (d := _decide(v, spacy_lemma[w], 3)) != spacy_lemma[w]
        }

        # A noun modifier becomes an attribute only when it describes (a material, a colour, a word
        # that is mostly an adjective): "wood desk" -> wooden, but "laptop keyboard" stays one object.
        def describes(m: str, d: str) -> bool:
            """May noun modifier `m` become attribute `d`? Not when it names things of its own."""
            if d == "" or d[:1] == "@" or m in DESCRIPTIVE or d in DESCRIPTIVE or adj_tag[m] > noun_tag[m]:
                return True
            return as_attr[d] > 2 * as_ent[nl(m)]

        lex["compounds"] = {
            m: d for m, v in sorted(comp_votes.items()) if (d := _decide(v, "=", 2)) != "=" and describes(m, d)
        }
        # A pair decision only where it differs from its modifier's ("computer screen" vs "computer desk").
        lex["compound_pairs"] = {}
        for key, v in sorted(pair_votes.items()):
            m = key.split("|", 1)[0]
            base = lex["compounds"].get(m, "=")
            d = _decide(v, base, 2, 0.6)
            if d != base and (d == "=" or describes(m, d)):  # "tree trunk": one object, not "@have"
                lex["compound_pairs"][key] = d
        lex["quantities"] = {n: d for n, v in sorted(qty_votes.items()) if (d := _decide(v, "", 3)) != ""}
        lex["ing_nouns"] = sorted(w for w, v in ing_votes.items() if _decide(v, "v", 3, 0.6) == "n")
        lex["verb_forms"] = {
            w: lex["verb_lemmas"].get(w, spacy_lemma[w])
            for w, n in sorted(ing_verb.items())
            if n >= 2 and w in spacy_lemma and w not in lex["ing_nouns"]
        }
        return lex

    def pass_b(self, docs: list, golds: list) -> dict[str, Any]:
        """With pass A's lexicon: dropped modifiers, dropped nouns, renamed objects."""
        nl = self.norm.obj
        mod_votes: dict[str, Counter] = defaultdict(Counter)
        noun_votes: dict[str, Counter] = defaultdict(Counter)
        name_votes: dict[str, Counter] = defaultdict(Counter)
        adj_votes: dict[str, Counter] = defaultdict(Counter)
        respell_votes: dict[str, Counter] = defaultdict(Counter)
        for doc, gold in zip(docs, golds, strict=True):
            ents, attrs, rels, _ = self.gold_sets(gold)
            ann = self.ex.annotate_doc(doc)
            objs_pred = [i for i, n in enumerate(ann.graph) if n.kind == "object"]
            respell_vote(respell_votes, ents, {i: (ann.graph[i].lemma, nl(object_name(ann, i))) for i in objs_pred})
            for i in objs_pred:
                name = ann.graph[i].lemma
                on = nl(object_name(ann, i))
                if " " not in name:
                    noun_votes[name]["keep" if on in ents else "drop"] += 1
                elif on not in ents and (head := on.rsplit(" ", 1)[-1]) in ents:
                    name_votes[name][head] += 1  # "suit jacket" written "jacket": rename, never drop
                else:
                    name_votes[name]["="] += 1
            if len(objs_pred) == 1 and len(ents) == 1:
                (e,) = ents
                i = objs_pred[0]
                name_votes[ann.graph[i].lemma][e if e != nl(object_name(ann, i)) else "="] += 1
            for i in objs_pred:
                name = ann.graph[i].lemma
                if " " in name or "-" in name:
                    joined = name.replace(" ", "").replace("-", "")
                    if joined in ents and nl(object_name(ann, i)) not in ents:
                        name_votes[name][joined] += 1
            for t in doc:
                if t.dep_ == "amod" and t.head.pos_ in ("NOUN", "PROPN") and t.i == t.head.i - 1:
                    pair = f"{t.lower_} {t.head.lower_}"
                    if nl(pair) in ents:
                        adj_votes[f"{t.lower_} {t.head.lemma_.lower()}"]["name"] += 1
                    elif nl(t.head.lower_) in ents:
                        adj_votes[f"{t.lower_} {t.head.lemma_.lower()}"]["attr"] += 1
            for n in ann.graph:
                if n.kind == "attribute" and not n.lemma.isdigit():
                    o = nl(object_name(ann, n.subject))
                    if o in ents:
                        mod_votes[n.lemma]["=" if (o, n.lemma) in attrs else ""] += 1
        names = {n: d for n, v in sorted(name_votes.items()) if (d := _decide(v, "=", 3)) != "="}
        for n, v in sorted(respell_votes.items()):  # "cell phone" -> "cellphone", "guy" -> "person"
            if n not in names and (d := _decide(v, "=", 3, 0.6)) != "=":
                names[n] = d
        return {
            "modifiers": {m: "" for m, v in sorted(mod_votes.items()) if _decide(v, "=", 3, 0.6) == ""},
            "drop_nouns": sorted(n for n, v in noun_votes.items() if _decide(v, "keep", 4, 0.75) == "drop"),
            "names": names,
            "adj_names": sorted(p for p, v in adj_votes.items() if _decide(v, "attr", 2, 0.6) == "name"),
        }

    def pass_c(self, docs: list, golds: list) -> dict[str, Any]:
        """Predicate rewrites: renamed, swapped, dropped or turned into attributes."""
        nl = self.norm.obj
        votes: dict[tuple, Counter] = defaultdict(Counter)
        for doc, gold in zip(docs, golds, strict=True):
            ents, attrs, rels, _ = self.gold_sets(gold)
            by_pair: dict[tuple[str, str], list[tuple[str, bool]]] = defaultdict(list)
            for s, p, o in sorted(rels):  # sorted: `cands[0]` below must not follow set order
                by_pair[(s, o)].append((p, False))
                by_pair[(o, s)].append((p, True))
            ann = self.ex.annotate_doc(doc)
            g = ann.graph
            for n in g:
                if n.kind != "relation":
                    continue
                s, o = nl(object_name(ann, n.subject)), nl(object_name(ann, n.object))
                cands = by_pair.get((s, o), [])
                if (n.lemma, False) in cands:
                    dec: Any = (n.lemma, False)
                elif cands:
                    dec = cands[0]
                elif (o, s) in attrs or any(a == s for (x, a) in attrs if x == o):
                    dec = "attr"
                elif s in ents and o in ents:
                    dec = "drop"
                else:
                    continue
                dec = json.dumps(dec)
                p = n.lemma
                votes[("p", p)][dec] += 1
                votes[("po", p, g[n.object].lemma)][dec] += 1
                votes[("sp", g[n.subject].lemma, p)][dec] += 1
        rewrite: dict[str, Any] = {}
        for key, v in sorted(votes.items()):
            pred = key[1] if key[0] in ("p", "po") else key[2]
            identity = json.dumps([pred, False])
            specific = key[0] != "p"
            d = _decide(v, identity, 3, 0.5 if specific else 0.4)
            if d == identity or d == json.dumps("attr"):
                continue
            if specific and d == _decide(votes.get(("p", pred), Counter()), identity, 3, 0.4):
                continue
            dec = json.loads(d)
            name = {"p": pred, "po": f"{pred}|{key[-1]}", "sp": f"{key[1]}|{pred}"}[key[0]]
            rewrite[name] = dec if isinstance(dec, str) else [dec[0], bool(dec[1])]
        return {"rewrite": rewrite}


# The predicates a split compound may take: FACTUAL relates "wall clock" / "train station" /
# "tile floor" / "kitchen sink" by a preposition or "have", never by a verb of its own.
COMPOUND_PREDICATES = frozenset({"on", "in", "for", "with", "of", "at", "have", "inside", "near", "by", "made of"})


def compound_relation(m: str, h: str, rels: set) -> str | None:
    """The compound decision for modifier `m` of head `h` that gold relates as two objects, or None.

    "@P": ( m , P , h ); "@~P": ( h , P , m ) ("train station" -> ( station , for , train ),
    "wall clock" -> ( clock , on , wall )). Why: FACTUAL splits such compounds into two objects
    with a relation; dropping the modifier lost the object and its relation.
    """
    for s, p, o in sorted(rels):
        if p not in COMPOUND_PREDICATES:
            continue  # a verb ("couch man is sitting on") is a clause, not what the compound says
        if s == m and o == h:
            return "@" + p
        if s == h and o == m:
            return "@~" + p
    return None


def respell_vote(votes: dict[str, Counter], ents: set[str], objs: dict[int, tuple[str, str]]) -> None:
    """One caption's votes for how FACTUAL writes an object the rules name otherwise.

    `objs`: node index -> (the rules' name, its normalised written form); `ents`: gold object names.
    Every rules' object gold writes as it is votes "="; when exactly one of the rules' objects and
    exactly one gold object are left unmatched, they are taken for the same thing and the name
    votes for gold's spelling. Why the residual pair: FACTUAL normalises spellings and synonyms
    that share no word or letters with the caption ("cell phone" -> "cellphone", "guy" ->
    "person", "hotdog" -> "hot dog", "refridgerator" -> "refrigerator"), which the name votes of
    `pass_b` (same head, joined words) cannot see; the miner then dropped such nouns altogether.
    """
    left = [name for name, written in objs.values() if written not in ents]
    for name, written in objs.values():
        if written in ents:
            votes[name]["="] += 1
    rest = ents.difference(written for _, written in objs.values())
    if len(left) == 1 and len(rest) == 1:
        votes[left[0]][next(iter(rest))] += 1


def mine(captions: list[str], golds: list, nlp_cfg: TextConfig, holdout: int = 0) -> tuple[dict, dict | None]:
    """Parse, mine the two passes on the train part, and score the held-out part if any."""
    ex = TextExtractor(nlp_cfg)
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    t0 = time.perf_counter()
    texts = [c[: nlp_cfg.max_chars] for c in captions]
    docs = list(ex.nlp.pipe(texts, batch_size=nlp_cfg.batch_size, n_process=nlp_cfg.n_process))
    log.info("parsed %d captions in %.1fs", len(docs), time.perf_counter() - t0)
    cut = len(docs) - holdout
    miner = Miner(ex, norm)
    ex.lexicon = Lexicon()
    lex = miner.pass_a(docs[:cut], golds[:cut])
    ex.lexicon = Lexicon(**_lexicon_kwargs(lex))
    lex.update(miner.pass_b(docs[:cut], golds[:cut]))
    log.info("passes A, B: %s", {k: len(v) for k, v in lex.items()})
    ex.lexicon = Lexicon(**_lexicon_kwargs(lex))
    lex.update(miner.pass_c(docs[:cut], golds[:cut]))
    log.info("pass two: %d rewrites", len(lex["rewrite"]))
    score = None
    if holdout:
        ex.lexicon = Lexicon(**_lexicon_kwargs(lex))
        pred = [graph_to_facts(ex.annotate_doc(d)) for d in docs[cut:]]
        score = score_facts(pred, golds[cut:], norm)
    return lex, score


def noun_examples(docs: list, golds: list, norm: Normalizer) -> tuple[list, list]:
    """Per caption: features of its candidate tokens, and whether gold names an object by that word."""
    from laitkit.extractors.scene_graph_filter import CANDIDATE_POS, token_features

    feats: list = []
    labels: list = []
    for doc, gold in zip(docs, golds, strict=True):
        objs, _, _ = norm.tuples(gold)
        heads = {o[0].split(" ")[-1] for o in objs}
        lists = ([t.lower_ for t in doc], [t.pos_ for t in doc], [t.tag_ for t in doc], [t.dep_ for t in doc])
        head = [t.head.i for t in doc]
        cand = [i for i, p in enumerate(lists[1]) if p in CANDIDATE_POS]
        feats.append([token_features(i, *lists, head) for i in cand])
        labels.append([int(norm.obj(lists[0][i]) in heads) for i in cand])
    return feats, labels


def filter_examples(docs: list, golds: list, ex: TextExtractor, norm: Normalizer) -> tuple[list, list]:
    """Per caption: the rules' annotation, its (node index, features) list, and each node's label."""
    from laitkit.extractors.scene_graph import repaired_lists
    from laitkit.extractors.scene_graph_filter import graph_features

    per_caption: list = []
    labels: list = []
    for doc, gold in zip(docs, golds, strict=True):
        ann = ex.annotate_doc(doc)  # `ex` has no fact filter: the rules' whole graph
        deps, heads = [t.dep_ for t in doc], [t.head.i for t in doc]
        lists = ([t.lower_ for t in doc], ann.lemmas, ann.upos, ann.tags, deps, heads)
        nouns = ex.noun_tagger.nouns(lists[0], *lists[2:]) if ex.noun_tagger is not None else frozenset()
        feats = graph_features(ann.graph, *repaired_lists(ex.lexicon, *lists, [t.text_with_ws for t in doc], nouns))
        _, g_attr, g_rel = norm.tuples(gold)
        lab = []
        for j, _ in feats:
            nd = ann.graph[j]
            s = norm.obj(object_name(ann, nd.subject))
            if nd.kind == "attribute":
                lab.append(int((s, norm.attr(nd.lemma)) in g_attr))
            else:
                lab.append(int((s, norm.pred(nd.lemma), norm.obj(object_name(ann, nd.object))) in g_rel))
        per_caption.append((ann, feats))
        labels.append(lab)
    return per_caption, labels


def _rows(feats: list, labels: list, ids: list[int], key: Any = None) -> tuple[list, list]:
    X = [f if key is None else key(f) for i in ids for f in feats[i]]
    y = [v for i in ids for v in labels[i]]
    return X, y


def _parse_and_hold_out(
    ex: TextExtractor, captions: list[str], cfg: TextConfig, seed: int, holdout: int
) -> tuple[list, list[int], list[int]]:
    """Parse every caption once and split the indices into held-out and fitting ones, by seed.

    Why one function: the filter and the proposer must hold out the same captions for the same seed
    (at most a fifth of them), so their thresholds are chosen on data neither was fitted on.
    """
    t0 = time.perf_counter()
    docs = list(ex.nlp.pipe([c[: cfg.max_chars] for c in captions], batch_size=cfg.batch_size))
    log.info("parsed %d captions in %.1fs", len(docs), time.perf_counter() - t0)
    return docs, *held_out_ids(len(captions), seed, holdout)


def held_out_ids(n: int, seed: int, holdout: int) -> tuple[list[int], list[int]]:
    """(held-out, fitting) caption indices of `n` for `seed`; also what `text_ceiling` measures on."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n).tolist()
    holdout = min(holdout, n // 5)
    return sorted(order[:holdout]), sorted(order[holdout:])


def train_filter(
    captions: list[str], golds: list, out: Path, seed: int = 0, holdout: int = 3000, cfg: TextConfig | None = None,
    nouns_out: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Fit the noun tagger, then the fact filter on top of it (see module docstring).

    Returns the held-out scores of the rules alone, with the noun tagger, and with both.
    """

    from laitkit.extractors.scene_graph_filter import drop_nodes, fit_logistic, save_filter

    cfg = cfg or TextConfig()
    nouns_out = nouns_out or out.with_name(NOUN_TAGGER_PATH.name)
    meta = {"source": "FACTUAL train.csv (Li et al., 2023; MIT), laitkit.jobs.train_text", "seed": str(seed)}
    ex = TextExtractor(replace(cfg, fact_filter="/nonexistent", noun_tagger="/nonexistent", proposer="/nonexistent"))
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    docs, held, fit_ids = _parse_and_hold_out(ex, captions, cfg, seed, holdout)
    all_ids = list(range(len(captions)))
    gold_h = [golds[i] for i in held]

    # 1. the noun tagger: threshold = best token F1 on the held-out captions
    nf, nl = noun_examples(docs, golds, norm)
    vocab, w = fit_logistic(*_rows(nf, nl, fit_ids))
    wd = dict(zip(vocab, w.tolist(), strict=True))
    z = [sum(wd.get(x, 0.0) for x in f) for i in held for f in nf[i]]
    yh = [v for i in held for v in nl[i]]

    def token_f1(thr: float) -> float:
        tp = sum(1 for a, b in zip(z, yh, strict=True) if a >= thr and b)
        n_pred = sum(1 for a in z if a >= thr)
        return 2 * tp / max(1, n_pred + sum(yh))

    grid = [x / 4 for x in range(-8, 13)]
    noun_thr = max(grid, key=lambda t: (token_f1(t), t))
    log.info("noun tagger: held-out token F1 %.3f at threshold %.2f", token_f1(noun_thr), noun_thr)
    vocab, w = fit_logistic(*_rows(nf, nl, all_ids))
    nouns_out.parent.mkdir(parents=True, exist_ok=True)
    save_filter(nouns_out, vocab, w, noun_thr, **meta)

    # 2. the fact filter over the rules' graphs with the noun tagger's verdicts
    def score(anns: list) -> dict[str, float]:
        pred = [graph_to_facts(a) for a in anns]
        return {**score_facts(pred, gold_h, norm), "set_match": set_match(pred, gold_h, norm)}

    rules_only = score([ex.annotate_doc(docs[i]) for i in held])
    ex = TextExtractor(replace(cfg, fact_filter="/nonexistent", noun_tagger=str(nouns_out), proposer="/nonexistent"))
    per_caption, labels = filter_examples(docs, golds, ex, norm)
    base = score([per_caption[i][0] for i in held])
    t0 = time.perf_counter()
    vocab, w = fit_logistic(*_rows([[f for _, f in fs] for _, fs in per_caption], labels, fit_ids))
    log.info("fitted %d features in %.1fs", len(vocab), time.perf_counter() - t0)
    wd = dict(zip(vocab, w.tolist(), strict=True))
    logits = {i: [sum(wd.get(x, 0.0) for x in f) for _, f in per_caption[i][1]] for i in held}

    def score_at(thr: float) -> dict[str, float]:
        anns = []
        for i in held:
            ann, feats = per_caption[i]
            drop = {j for (j, _), zz in zip(feats, logits[i], strict=True) if zz < thr}
            anns.append(replace(ann, graph=drop_nodes(ann.graph, drop)))
        return score(anns)

    grid = [x / 4 for x in range(-16, 5)]
    scores = {thr: score_at(thr) for thr in grid}
    for thr in grid:
        log.info("threshold %5.2f: %s", thr, {k: round(v, 4) for k, v in scores[thr].items()})
    # the best all-F1 among thresholds that do not lose whole-graph matches against no filter
    ok = [t for t in grid if scores[t]["set_match"] >= base["set_match"]] or [min(grid)]
    best = max(ok, key=lambda t: (scores[t]["all"], -abs(t)))
    log.info("held-out all-F1: rules %.4f, + nouns %.4f, + filter %.4f (threshold %.2f)",
             rules_only["all"], base["all"], scores[best]["all"], best)  # fmt: skip
    vocab, w = fit_logistic(*_rows([[f for _, f in fs] for _, fs in per_caption], labels, all_ids))
    save_filter(out, vocab, w, best, **meta)
    log.info("wrote %s (%d bytes) and %s (%d bytes)", out, out.stat().st_size, nouns_out, nouns_out.stat().st_size)
    return {
        "holdout": holdout,
        "noun_threshold": noun_thr,
        "threshold": best,
        "f1_rules": rules_only,
        "f1_nouns": base,
        "f1_filtered": scores[best],
    }


def _proposer_caption(doc: Any, gold: list, ex: TextExtractor, norm: Normalizer, alts: dict) -> Any:
    """The rules' graph of one caption, its proposer candidates, and the normalised name lookup."""
    from laitkit.datasets.schema import TextAnnotation
    from laitkit.extractors.scene_graph import rule_graph
    from laitkit.extractors.scene_graph_proposer import candidates

    lower = [t.lower_ for t in doc]
    if not lower:
        return None
    lemma, upos, tag = [t.lemma_ for t in doc], [t.pos_ for t in doc], [t.tag_ for t in doc]
    dep, head = [t.dep_ for t in doc], [t.head.i for t in doc]
    nouns = ex.noun_tagger.nouns(lower, upos, tag, dep, head) if ex.noun_tagger is not None else frozenset()
    graph, ctx = rule_graph(ex.lexicon, lower, lemma, upos, tag, dep, head, [t.text_with_ws for t in doc], nouns)
    ann = TextAnnotation(model="", tokens=[t.text for t in doc], upos=upos, tags=tag, lemmas=lemma, graph=graph)
    rc, ac, keep = candidates(graph, ctx, alts)
    names: dict[int, str] = {}

    def nm(i: int) -> str:
        if i not in names:
            names[i] = norm.obj(object_name(ann, i))
        return names[i]

    return graph, rc, ac, keep, nm


def mine_alternatives(docs: list, golds: list, ex: TextExtractor, norm: Normalizer, top: int = 3) -> dict:
    """Predicate -> the gold predicates FACTUAL writes instead, on the same pair of objects.

    "has" between a girl and her shorts is written "wear", "below" is "under": a candidate's
    words can be right about the pair and wrong about the predicate. Counted over the candidates
    of train captions; an alternative needs 3 votes, at most `top` per predicate; "~p" is `p` with
    subject and object swapped ("below" -> "~under").
    """
    votes: dict[str, Counter] = defaultdict(Counter)
    for doc, gold in zip(docs, golds, strict=True):
        c = _proposer_caption(doc, gold, ex, norm, {})
        if c is None:
            continue
        _, rc, _, _, nm = c
        _, _, g_rel = norm.tuples(gold)
        by_pair: dict[tuple[str, str], set] = defaultdict(set)
        for s, p, o in g_rel:
            by_pair[(s, o)].add(p)
            by_pair[(o, s)].add("~" + p)  # written the other way round
        for x in rc:
            pred = norm.pred(x[2][0])
            for g in by_pair.get((nm(x[0]), nm(x[1])), ()):  # (order free: `rank_alternatives` decides ties)
                if g != pred:
                    votes[pred][g] += 1
    return rank_alternatives(votes, top)


def rank_alternatives(votes: dict[str, Counter], top: int = 3, min_votes: int = 3) -> dict[str, list[str]]:
    """Predicate -> its `top` alternatives with `min_votes` votes, by votes and then by spelling.

    Why the spelling: `Counter.most_common` breaks ties by insertion order, which followed the
    iteration order of sets of strings (PYTHONHASHSEED), so 7 of ~720 lists changed from run to
    run and the fitted weights with them.
    """
    ranked = {p: sorted(v.items(), key=lambda kv: (-kv[1], kv[0])) for p, v in sorted(votes.items())}
    return {p: [g for g, n in r[:top] if n >= min_votes] for p, r in ranked.items() if r and r[0][1] >= min_votes}


def proposer_examples(
    docs: list, golds: list, ex: TextExtractor, norm: Normalizer, feat_index: dict, alts: dict
) -> list:
    """Per caption: (graph, rel cands, attr cands, keep, feature-index rows, labels, n rel cands).

    Features become integer ids through `feat_index` as they are made, so that ~40k captions of
    candidates fit in memory as arrays rather than millions of strings.
    """
    out = []
    for doc, gold in zip(docs, golds, strict=True):
        c = _proposer_caption(doc, gold, ex, norm, alts)
        if c is None:
            out.append(None)
            continue
        graph, rc, ac, keep, nm = c
        _, g_attr, g_rel = norm.tuples(gold)
        lab = [int((nm(c[0]), norm.pred(c[2][0]), nm(c[1])) in g_rel) for c in rc]
        lab += [int((nm(c[0]), norm.attr(c[1])) in g_attr) for c in ac]
        rows = [[feat_index.setdefault(x, len(feat_index)) for x in c[3]] for c in rc + ac]
        strip = [(c[0], c[1], c[2], (), c[4]) for c in rc], [(c[0], c[1], c[2], (), c[4]) for c in ac]
        out.append((graph, *strip, keep, rows, lab, len(rc)))
    return out


def _fit_rows(
    rows: list, labels: list, n_feat: int, min_count: int = 2, l2: float = 1.0, maxiter: int = 400
) -> Any:
    """Logistic regression over integer feature rows; returns a dense weight vector (0 for rare ids)."""
    import numpy as np
    from scipy.sparse import csr_matrix

    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.fromiter((x for r in rows for x in r), dtype=np.int64, count=int(indptr[-1]))
    counts = np.bincount(indices, minlength=n_feat)
    keep = counts >= min_count
    # Only the kept features are columns: a dropped one has no data and stays 0 under the L2 term,
    # so fitting without it is the same problem, and L-BFGS's vector work shrinks with the columns
    # (the attribute family uses a fifth of the shared feature space; the K out-of-fold fits of
    # `train_proposer` run this K + 1 times).
    col = np.cumsum(keep) - 1
    kept = keep[indices]
    row = np.repeat(np.arange(len(rows)), np.diff(indptr))[kept]
    X = csr_matrix((np.ones(len(row)), (row, col[indices[kept]])), shape=(len(rows), int(keep.sum())))
    out = np.zeros(n_feat)
    out[keep] = _fit_logistic(X, X.T.tocsr(), labels, l2, maxiter)
    return out


def _fit_logistic(X: Any, XT: Any, labels: list, l2: float, maxiter: int) -> Any:
    """L2-regularised logistic regression by L-BFGS over a (sparse or dense) design matrix `X`
    and its transpose `XT` (for a sparse `X`, a row-major copy: the gradient's product is then as
    fast as the forward one). The one fit of every proposer family and of its second stage."""
    import numpy as np
    from scipy.optimize import minimize

    s = 2.0 * np.asarray(labels, dtype=np.float64) - 1.0

    def loss(w: Any) -> tuple[float, Any]:
        m = -s * (X @ w)
        val = np.logaddexp(0.0, m).sum() + 0.5 * l2 * float(w @ w)
        g = XT @ (-s / (1.0 + np.exp(-m))) + l2 * w
        return val, g

    res = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": maxiter})
    log.info("L-BFGS: %d rows, %d iterations, converged %s (%s)", X.shape[0], res.nit, res.success, res.message)
    return res.x


def _logits(w: Any, e: tuple) -> Any:
    """First-stage logits of one caption's candidates (`proposer_examples` rows) under weights `w`."""
    import numpy as np

    rows = e[4]
    idx = np.fromiter((x for r in rows for x in r), dtype=np.int64, count=sum(len(r) for r in rows))
    return np.bincount(np.repeat(np.arange(len(rows)), [len(r) for r in rows]), weights=w[idx], minlength=len(rows))


def _folds(ids: list[int], k: int, seed: int) -> list[list[int]]:
    """`ids` split into `k` folds at random (by `seed`), each sorted."""
    import numpy as np

    order = np.random.default_rng(seed + 1).permutation(len(ids))
    return [sorted(ids[j] for j in order[f::k]) for f in range(k)]


def fit_reranker(captions: list[tuple], l2: float = 1.0) -> Any:
    """The proposer's second stage (`extractors/scene_graph_rerank.py`) from (graph, relation
    candidates, attribute candidates, labels, out-of-fold first-stage logits) per caption: one
    dense logistic regression per family over `stage2_features`."""

    from laitkit.extractors.scene_graph_rerank import N_ATTR, N_REL, Reranker, dense, object_heads, stage2_features

    xr: list = []
    yr: list = []
    xa: list = []
    ya: list = []
    for graph, rc, ac, lab, z in captions:
        ri, rrows, ai, arows = stage2_features(rc, ac, z, object_heads(graph))
        xr += rrows
        yr += [lab[j] for j in ri]
        xa += arows
        ya += [lab[len(rc) + j] for j in ai]

    def fit(rows: list, labels: list, n: int) -> Any:
        X = dense(rows, n)
        return _fit_logistic(X, X.T, labels, l2, 2000)

    return Reranker(fit(xr, yr, N_REL), fit(xa, ya, N_ATTR))


def train_proposer(
    captions: list[str],
    golds: list,
    out: Path,
    seed: int = 0,
    holdout: int = 3000,
    cfg: TextConfig | None = None,
    rerank: bool = False,
    rerank_margin: float = 0.002,
    folds: int = 3,
) -> dict[str, Any]:
    """Fit the fact proposer (`extractors/scene_graph_proposer.py`) over the rules' graphs.

    Labels: a candidate relation or attribute is positive when its normalised tuple is in the
    caption's gold graph. The relation and the attribute scorers share one feature space (their
    feature names differ) and are fitted together on all but `holdout` train captions (picked by
    `seed`); the decision thresholds are chosen on those held-out captions for the best all-F1,
    and the shipped weights are exactly the ones the thresholds were chosen for (no refit: the
    thresholds stay calibrated, and training takes half the time). Returns the held-out scores of
    the rules + fact filter (the previous pipeline), of the first stage alone, of the second stage
    (with `rerank`) and of the shipped proposer.

    `rerank`: fit the second stage (`scene_graph_rerank.py`) on out-of-fold first-stage logits of
    the fitting captions (`folds` fits of the first stage on the other folds), choose its own
    thresholds on the held-out captions, and ship it when its held-out all-F1 is at least
    `rerank_margin` above the first stage's alone.
    """
    import numpy as np

    from laitkit.extractors.scene_graph_proposer import Thresholds, decide

    cfg = cfg or TextConfig()
    ex = TextExtractor(replace(cfg, fact_filter="/nonexistent", proposer="/nonexistent"))
    old = TextExtractor(replace(cfg, proposer="/nonexistent"))
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    docs, held, fit_ids = _parse_and_hold_out(ex, captions, cfg, seed, holdout)
    gold_h = [golds[i] for i in held]

    def score(graph_of: Any) -> dict[str, float]:
        from laitkit.datasets.schema import TextAnnotation

        pred = []
        for i in held:
            d = docs[i]
            g = graph_of(i)
            ann = TextAnnotation(
                model="", tokens=[t.text for t in d], upos=[], tags=[], lemmas=[t.lemma_ for t in d], graph=g
            )
            pred.append(graph_to_facts(ann))
        return {**score_facts(pred, gold_h, norm), "set_match": set_match(pred, gold_h, norm)}

    before = score(lambda i: old.annotate_doc(docs[i]).graph)
    log.info("held-out, rules + fact filter: %s", {k: round(v, 4) for k, v in before.items()})
    t0 = time.perf_counter()
    alts = mine_alternatives([docs[i] for i in fit_ids], [golds[i] for i in fit_ids], ex, norm)
    log.info("%d predicates with alternatives in %.1fs", len(alts), time.perf_counter() - t0)
    feat_index: dict[str, int] = {}
    t0 = time.perf_counter()
    ex_data = proposer_examples(docs, golds, ex, norm, feat_index, alts)
    log.info("candidates of %d captions, %d features in %.1fs", len(docs), len(feat_index), time.perf_counter() - t0)

    def rows_of(ids: list[int], family: slice) -> tuple[list, list]:
        """Feature rows and labels of one family: relations (slice(0, 1)) or attributes (slice(1, 2))."""
        rows, labs = [], []
        for i in ids:
            if ex_data[i] is not None:
                nr = ex_data[i][6]
                cut = (0, nr, len(ex_data[i][4]))
                rows.extend(ex_data[i][4][cut[family.start] : cut[family.stop]])
                labs.extend(ex_data[i][5][cut[family.start] : cut[family.stop]])
        return rows, labs

    # The two families share no feature, so their joint objective is two separate ones; fitted
    # apart, a change in the attribute candidates cannot move the relation weights through where
    # L-BFGS stops (it stops at its iteration limit, short of the optimum).
    def fit(ids: list[int]) -> Any:
        w_rel, w_attr = (_fit_rows(*rows_of(ids, fam), len(feat_index)) for fam in (slice(0, 1), slice(1, 2)))
        if np.count_nonzero(w_rel * w_attr):
            raise AssertionError("a feature is shared by relation and attribute candidates")
        return w_rel + w_attr

    t0 = time.perf_counter()
    w = fit(fit_ids)
    log.info("fitted relations and attributes in %.1fs", time.perf_counter() - t0)
    logit = {i: _logits(w, ex_data[i]) for i in held if ex_data[i]}

    def search(z: dict[int, Any]) -> tuple[Thresholds, dict[str, float]]:
        """The five thresholds for the best held-out all-F1 over logits `z`, and that score."""

        def graph_at(i: int, thr: Thresholds) -> list:
            e = ex_data[i]
            if e is None:
                return []
            graph, rc, ac, keep, _, _, _ = e
            return decide(graph, rc, ac, keep, z[i], thr)

        # coordinate search, one threshold at a time; two rounds over all five, because the
        # attribute thresholds move the pooled F1 the relation ones were chosen on
        thr = Thresholds()
        grid = [x / 4 for x in range(-16, 9)]
        names = ("rel_drop", "rel_add", "rel_margin", "attr_drop", "attr_add")
        for name in names + names:
            vals = [x for x in grid if x >= 0] if name == "rel_margin" else grid
            trial = {v: replace(thr, **{name: v}) for v in vals}
            sc = {v: score(lambda i, t=trial[v]: graph_at(i, t)) for v in vals}
            v = max(vals, key=lambda v: (sc[v]["all"], sc[v]["set_match"], -abs(v)))
            thr = replace(thr, **{name: v})
            log.info("%s = %.2f: %s", name, v, {k: round(x, 4) for k, x in sc[v].items()})
        return thr, score(lambda i: graph_at(i, thr))

    thr1, stage1 = search(logit)
    log.info("held-out, first stage alone %s: %s", thr1, {k: round(v, 4) for k, v in stage1.items()})
    thr, after, use, stage2 = thr1, stage1, False, None
    if rerank:
        # the second stage: fitted on the fitting captions' out-of-fold first-stage logits
        t0 = time.perf_counter()
        oof: dict[int, Any] = {}
        for k, fold in enumerate(_folds(fit_ids, folds, seed)):
            w_k = fit(sorted(set(fit_ids) - set(fold)))
            oof.update({i: _logits(w_k, ex_data[i]) for i in fold if ex_data[i]})
            log.info("out-of-fold first stage %d/%d: %.1fs", k + 1, folds, time.perf_counter() - t0)
        second = fit_reranker([(*ex_data[i][:3], ex_data[i][5], oof[i]) for i in sorted(oof)])
        thr2, stage2 = search({i: second.rescore(*ex_data[i][:3], z) for i, z in logit.items()})
        log.info("held-out, with the second stage %s: %s", thr2, {k: round(v, 4) for k, v in stage2.items()})
        # it costs ~50 us per caption (5x the proposer's budget for it): shipped only for a gain
        # over the first stage alone beyond `rerank_margin` held-out all-F1
        use = stage2["all"] >= stage1["all"] + rerank_margin
        if use:
            thr, after = thr2, stage2
    log.info("held-out, proposer %s (second stage %s): %s", thr, use, {k: round(v, 4) for k, v in after.items()})
    vocab = sorted(feat_index, key=feat_index.__getitem__)
    nz = [k for k in range(len(vocab)) if abs(w[k]) > 1e-4]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        vocab=np.asarray([vocab[k] for k in nz]),
        weights=np.asarray(w[nz], dtype=np.float32),
        thresholds=np.asarray(astuple(thr), dtype=np.float64),
        alt_keys=np.asarray(list(alts), dtype=str),
        alt_values=np.asarray(["|".join(v) for v in alts.values()], dtype=str),
        source=np.asarray("FACTUAL train.csv (Li et al., 2023; MIT), laitkit.jobs.train_text --proposer"),
        seed=np.asarray(str(seed)),
        **({"rerank_rel": second.w_rel, "rerank_attr": second.w_attr} if use else {}),
    )
    log.info("wrote %s (%d bytes, %d features)", out, out.stat().st_size, len(nz))
    return {
        "holdout": holdout,
        "thresholds": asdict(thr),
        "second_stage": use,
        "f1_before": before,
        "f1_first_stage": stage1,
        **({"f1_second_stage": stage2} if stage2 is not None else {}),
        "f1_proposer": after,
    }


class _CountsView:
    """A count table minus one caption's own contributions (leave-one-out for the fitting rows)."""

    def __init__(self, base: dict, own: dict) -> None:
        self.base, self.own = base, own

    def get(self, key: str, default: tuple[int, int] = (0, 0)) -> tuple[int, int]:
        a, b = self.base.get(key, default)
        x, y = self.own.get(key, (0, 0))
        return a - x, b - y


def _naming_tables(keys: list) -> tuple[dict, dict]:
    """(pair table, modifier table) of "key" -> (as name, as attribute) from `gold_count_keys` lists."""
    pair: Counter = Counter()
    mod: Counter = Counter()
    for pn, pa, mn, ma in keys:
        pair.update((k, 0) for k in pn)
        pair.update((k, 1) for k in pa)
        mod.update((k, 0) for k in mn)
        mod.update((k, 1) for k in ma)
    out = []
    for c in (pair, mod):
        t: dict[str, tuple[int, int]] = {}
        for (k, side), v in c.items():
            a, b = t.get(k, (0, 0))
            t[k] = (a + v, b) if side == 0 else (a, b + v)
        out.append(t)
    return out[0], out[1]


class _NameRecorder:
    """Stands in for the naming tagger during training: records each candidate's features and
    gold label, and follows gold (the rules' decision where gold says nothing) so that the next
    candidate of the same name is seen in the context a right decision leads to.

    Label 1: gold names an object by the name with the word ("tennis racket", or a longer name
    ending in it); 0: gold names it without the word; no row when gold names neither.
    """

    def __init__(self, norm: Normalizer) -> None:
        self.norm = norm
        self.counts: Any = None
        self.ents: set[str] = set()
        self.rows: list[list[str]] = []
        self.labels: list[int] = []
        self.split: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())

    def split_pairs(self) -> tuple[frozenset[str], frozenset[str]]:
        return self.split  # the fitting captions' pairs (`NamingTagger.split_pairs`)

    def keep(self, j: int, i: int, start: int, rule: str, w: Any) -> bool:
        from laitkit.extractors.scene_graph_naming import naming_features

        nl = self.norm.obj
        ext = nl("".join(w.ws[j:i]).lower() + w.lower[i])
        cur = nl("".join(w.ws[start:i]).lower() + w.lower[i])
        label = None
        if ext in self.ents or any(e.endswith(" " + ext) for e in self.ents):
            label = 1
        elif cur in self.ents:
            label = 0
        if label is None:
            return rule in ("name", "adjname")
        self.rows.append(naming_features(j, i, start, rule, w.lower, w.lemma, w.pos, w.tag, w.dep, w.head, self.counts))
        self.labels.append(label)
        return bool(label)

    def drop_object(self, i: int, name: str, w: Any) -> bool:
        return False  # the object gate is trained after the tagger (`train_object_gate`)


def train_naming(
    captions: list[str],
    golds: list,
    out: Path,
    seed: int = 0,
    holdout: int = 3000,
    cfg: TextConfig | None = None,
    keep_alone: int = 20,
) -> dict[str, Any]:
    """Fit the object-naming tagger (`extractors/scene_graph_naming.py`) over the rules' walk.

    Count tables come from the gold graphs of the fitting captions (each fitting row sees them
    without its own caption's part); the logistic regression is fitted on the fitting captions'
    candidates and its threshold is the one with the best all-F1 of the rules' graphs (noun tagger
    on, no proposer) on the held-out captions, the same ones `--proposer` holds out for this seed.
    The shipped weights and tables are exactly those the threshold was chosen for. Dev is never read.
    """
    from laitkit.extractors.scene_graph_filter import fit_logistic
    from laitkit.extractors.scene_graph_naming import NamingCounts, NamingTagger, gold_count_keys, save_naming

    cfg = cfg or TextConfig()
    ex = TextExtractor(replace(cfg, fact_filter="/nonexistent", proposer="/nonexistent", naming="/nonexistent"))
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    docs, held, fit_ids = _parse_and_hold_out(ex, captions, cfg, seed, holdout)
    tuples = [norm.tuples(g) for g in golds]
    own = [gold_count_keys(t[0], t[1]) for t in tuples]
    pair, mod = _naming_tables([own[i] for i in fit_ids])
    rec = _NameRecorder(norm)
    rec.split = NamingTagger({}, 0.0, NamingCounts(pair=pair)).split_pairs()
    t0 = time.perf_counter()
    for i in fit_ids:
        op, om = _naming_tables([own[i]])
        rec.counts = NamingCounts(pair=_CountsView(pair, op), mod=_CountsView(mod, om))  # type: ignore[arg-type]
        rec.ents = {o[0] for o in tuples[i][0]}
        ex.lexicon.naming = rec
        ex.annotate_doc(docs[i])
    log.info("naming: %d candidate rows (%.0f%% in the name) in %.1fs",
             len(rec.rows), 100 * sum(rec.labels) / max(1, len(rec.labels)), time.perf_counter() - t0)  # fmt: skip
    vocab, w = fit_logistic(rec.rows, rec.labels)
    alone = Counter(o[0] for i in fit_ids for o in tuples[i][0] if " " not in o[0])
    counts = NamingCounts(pair=pair, mod=mod, alone=dict(alone))
    gold_h = [golds[i] for i in held]

    def score(tagger: Any) -> dict[str, float]:
        ex.lexicon.naming = tagger
        pred = [graph_to_facts(ex.annotate_doc(docs[i])) for i in held]
        return {**score_facts(pred, gold_h, norm), "set_match": set_match(pred, gold_h, norm)}

    base = score(None)
    log.info("held-out, rules without the tagger: %s", {k: round(v, 4) for k, v in base.items()})
    wd = dict(zip(vocab, w.tolist(), strict=True))
    grid = [x / 4 for x in range(-8, 9)]
    scores = {thr: score(NamingTagger(wd, thr, counts, keep_alone=keep_alone)) for thr in grid}
    for thr in grid:
        log.info("threshold %5.2f: %s", thr, {k: round(v, 4) for k, v in scores[thr].items()})
    best = max(grid, key=lambda t: (scores[t]["all"], scores[t]["obj"], -abs(t)))
    tagger = NamingTagger(wd, best, counts, keep_alone=keep_alone)
    gate, gate_scores = train_object_gate(ex, docs, tuples, fit_ids, tagger, score, scores[best])
    out.parent.mkdir(parents=True, exist_ok=True)
    src = "FACTUAL train.csv (Li et al., 2023; MIT), laitkit.jobs.train_text --naming"
    save_naming(out, vocab, w, best, counts, keep_alone, gate=gate, source=src, seed=str(seed))
    log.info("wrote %s (%d bytes, threshold %.2f)", out, out.stat().st_size, best)
    return {
        "holdout": len(held),
        "threshold": best,
        "f1_rules": base,
        "f1_naming": scores[best],
        "gate_threshold": None if gate is None else gate.threshold,
        "f1_gate": gate_scores,
    }


class _ObjectRecorder:
    """Stands in for the naming tagger while the object gate is trained: names as the tagger does,
    keeps every object, and records each asked object's features and whether gold has an object
    with its head word (label 1) or not (0)."""

    def __init__(self, tagger: Any, nl: Any) -> None:
        self.tagger = tagger
        self.counts = tagger.counts
        self.nl = nl
        self.heads: set[str] = set()
        self.rows: list[tuple[str, list[str], int]] = []

    def keep(self, j: int, i: int, start: int, rule: str, w: Any) -> bool:
        return self.tagger.keep(j, i, start, rule, w)

    def split_pairs(self) -> tuple[frozenset[str], frozenset[str]]:
        return self.tagger.split_pairs()

    def drop_object(self, i: int, name: str, w: Any) -> bool:
        from laitkit.extractors.scene_graph_naming import object_features

        label = int(self.nl(name).split(" ")[-1] in self.heads or self.nl(w.lower[i]) in self.heads)
        self.rows.append((name, object_features(i, name, w), label))
        return False


def train_object_gate(
    ex: TextExtractor, docs: list, tuples: list, fit_ids: list[int], tagger: Any, score: Any, base: dict
) -> tuple[Any, dict | None]:
    """Fit the object gate (`scene_graph_naming.ObjectGate`) on the fitting captions' objects.

    Asked names: those gold leaves out (no gold object with that head word) at least 3 times and
    in at least 5 % of their fitting-caption uses. The threshold is the best held-out all-F1 of the
    rules' graphs with the naming tagger (`score`); None when no threshold beats no gate (`base`).
    """
    from laitkit.extractors.scene_graph_filter import fit_logistic
    from laitkit.extractors.scene_graph_naming import ObjectGate

    rec = _ObjectRecorder(tagger, ex_norm_obj(ex))
    for i in fit_ids:
        rec.heads = {o[0].split(" ")[-1] for o in tuples[i][0]}
        ex.lexicon.naming = rec
        ex.annotate_doc(docs[i])
    seen: Counter = Counter()
    neg: Counter = Counter()
    for name, _, lab in rec.rows:
        seen[name] += 1
        neg[name] += 1 - lab
    names = frozenset(n for n in seen if neg[n] >= 3 and neg[n] >= 0.05 * seen[n])
    rows = [(f, lab) for name, f, lab in rec.rows if name in names]
    log.info("object gate: %d names asked, %d rows (%d left out by gold)",
             len(names), len(rows), sum(1 for _, lab in rows if not lab))  # fmt: skip
    vocab, w = fit_logistic([f for f, _ in rows], [lab for _, lab in rows])
    wd = dict(zip(vocab, w.tolist(), strict=True))
    grid = [x / 4 for x in range(-16, 1)]
    sc = {t: score(replace(tagger, gate=ObjectGate(wd, t, names), _pair={})) for t in grid}
    for t in grid:
        log.info("gate threshold %5.2f: %s", t, {k: round(v, 4) for k, v in sc[t].items()})
    best = max(grid, key=lambda t: (sc[t]["all"], sc[t]["set_match"], -t))
    if sc[best]["all"] <= base["all"]:
        return None, None
    return ObjectGate(wd, best, names), sc[best]


def ex_norm_obj(ex: TextExtractor) -> Any:
    """The scorer's object normaliser for `ex`'s spaCy pipeline."""
    return Normalizer(spacy_noun_lemmatizer(ex.nlp)).obj


def _lexicon_kwargs(lex: dict[str, Any]) -> dict[str, Any]:
    kw = {k: v for k, v in lex.items() if k in Lexicon.__dataclass_fields__}
    for k in ("drop_nouns", "ing_nouns", "adj_names"):
        if k in kw:
            kw[k] = frozenset(kw[k])
    return kw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default=str(DEFAULT_TRAIN))
    ap.add_argument("--out", default=str(LEXICON_PATH))
    ap.add_argument("--holdout", type=int, default=0, help="score on the last N captions instead of writing")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--fact-filter", action="store_true", help="train the learned fact filter instead")
    ap.add_argument("--proposer", action="store_true", help="train the learned fact proposer instead")
    ap.add_argument("--naming", action="store_true", help="train the learned object-naming tagger instead")
    ap.add_argument("--seed", type=int, default=0, help="fact filter / proposer: which captions are held out")
    ap.add_argument("--rerank", action="store_true", help="proposer: also fit its second stage (K-fold, slower)")
    ap.add_argument(
        "--rerank-margin", type=float, default=0.002, help="ship the second stage for this held-out all-F1 gain"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    captions, golds = read_factual_csv(args.train, limit=args.limit)
    if args.naming:
        out = Path(args.out) if args.out != str(LEXICON_PATH) else NAMING_PATH
        print(json.dumps(train_naming(captions, golds, out, seed=args.seed, holdout=args.holdout or 3000)))
        return 0
    if args.proposer:
        out = Path(args.out) if args.out != str(LEXICON_PATH) else PROPOSER_PATH
        res = train_proposer(
            captions, golds, out, seed=args.seed, holdout=args.holdout or 3000,
            rerank=args.rerank, rerank_margin=args.rerank_margin,
        )  # fmt: skip
        print(json.dumps(res))
        return 0
    if args.fact_filter:
        out = Path(args.out) if args.out != str(LEXICON_PATH) else FILTER_PATH
        res = train_filter(captions, golds, out, seed=args.seed, holdout=args.holdout or 3000)
        print(json.dumps(res))
        return 0
    off = "/nonexistent"
    cfg = TextConfig(lexicon=off, fact_filter=off, noun_tagger=off, proposer=off, naming=off)
    lex, score = mine(captions, golds, cfg, holdout=args.holdout)
    if score is not None:
        print(json.dumps({"holdout": args.holdout, "f1": score}))
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lex["source"] = "FACTUAL train.csv (Li et al., 2023; MIT), mined by laitkit.jobs.train_text"
    out.write_text(json.dumps(lex, indent=0, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("wrote %s (%d bytes)", out, out.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
