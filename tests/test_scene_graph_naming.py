"""The learned object-naming tagger (`extractors/scene_graph_naming.py`) and where the walk asks it.

The shipped tagger must give FACTUAL's names for a few hand-written phrases (one object
"tennis racket", a material attribute for "wooden table", the head alone where gold writes it
so); a word it puts in a name is in the name's tokens and never also an attribute, and a word it
leaves out does not become an attribute unless the lexicon writes one. Two fixed toy taggers
(always / never in the name) check the walk's side independently of the shipped weights. The
training script must run end to end on a slice of FACTUAL train.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from laitkit.datasets.schema import TextAnnotation
from laitkit.extractors.scene_graph import PRONOUNS
from laitkit.extractors.scene_graph_naming import NAMING_PATH, NamingCounts, NamingTagger, naming_features
from laitkit.extractors.text import TextConfig, TextExtractor, graph_to_facts

FACTUAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "factual"

NAMES = [
    ("a tennis racket", {("tennis racket",)}),
    ("a traffic light on a pole", {("traffic light", "on", "pole")}),
    ("a hot dog on a plate", {("hot dog", "on", "plate")}),
    ("a wooden table", {("table", "is", "wooden")}),
    ("a man wearing a baseball cap", {("man", "wear", "baseball cap")}),
    ("a laptop keyboard", {("laptop keyboard",)}),
    ("a hotel lobby", {("lobby",)}),  # FACTUAL writes the head alone ("hotel lobby" -> lobby)
]


@pytest.fixture(scope="module")
def ex() -> TextExtractor:
    return TextExtractor(TextConfig())


def check_tokens_exact(ann: TextAnnotation, renamed: frozenset[str] = frozenset()) -> None:
    """Every object's tokens are exactly its words, and no attribute shares a word with a name.

    `renamed`: names the lexicon or the pronoun table writes differently from the words.
    """
    for n in ann.graph:
        if n.kind != "object":
            continue
        assert n.tokens == tuple(range(n.span[0], n.span[1])), n
        words = n.lemma.replace("-", " - ").split()
        if n.lemma in renamed or n.lemma in PRONOUNS.values():
            continue
        assert len(words) == len(n.tokens), n
        assert words[:-1] == [ann.tokens[t].lower() for t in n.tokens[:-1]], n
        last = n.tokens[-1]  # the head's lemma (or the word itself, where the walk retagged it)
        assert words[-1] in (ann.lemmas[last].lower(), ann.tokens[last].lower()), n
    for n in ann.graph:
        if n.kind == "attribute":  # a word in the name is not also the object's attribute
            assert not set(ann.graph[n.subject].tokens) & set(n.tokens), (n, ann.graph)


def test_shipped_tagger_loads() -> None:
    t = NamingTagger.load()
    assert t is not None and NAMING_PATH.exists()
    assert len(t.weights) > 1000 and np.isfinite(t.threshold)
    assert len(t.counts.pair) > 1000 and len(t.counts.mod) > 1000 and t.counts.alone
    assert NAMING_PATH.stat().st_size < 2 * 1024 * 1024
    assert NamingTagger.load("/nonexistent/naming.npz") is None


@pytest.mark.parametrize(("caption", "expected"), NAMES, ids=[c for c, _ in NAMES])
def test_shipped_tagger_names(ex: TextExtractor, caption: str, expected: set) -> None:
    (ann,) = ex.annotate([caption])
    assert set(graph_to_facts(ann)) == expected
    check_tokens_exact(ann, frozenset(ex.lexicon.names.values()))


def test_tokens_exact_on_dev_captions(ex: TextExtractor) -> None:
    caps = [
        "a black and white tennis dress",
        "man sitting on a yellow vw bug",
        "a muddy dirt road next to the fire hydrant",
        "a woman in a t-shirt holding a hot dog",
        "the boy 's left ear",
        "glass inn table next to the chair",
    ]
    if (FACTUAL / "dev.csv").exists():
        from laitkit.extractors.factual import read_factual_csv

        caps += read_factual_csv(FACTUAL / "dev.csv", limit=200)[0]
    for ann in ex.annotate(caps):
        check_tokens_exact(ann, frozenset(ex.lexicon.names.values()))


def toy(always: bool) -> NamingTagger:
    """A tagger that puts every candidate word in the name (or none)."""
    return NamingTagger(weights={"b": 5.0 if always else -5.0}, threshold=0.0, counts=NamingCounts())


def test_walk_follows_the_tagger_both_ways() -> None:
    ex = TextExtractor(TextConfig(proposer="/nonexistent"))
    ex.lexicon.naming = toy(True)
    (ann,) = ex.annotate(["a wooden table next to a yellow vw bug"])
    assert set(graph_to_facts(ann)) == {("wooden table", "next to", "yellow vw bug")}
    check_tokens_exact(ann)
    ex.lexicon.naming = toy(False)
    (ann,) = ex.annotate(["a laptop keyboard on a tennis court"])
    # the compound left out of the name is dropped, not turned into an attribute
    assert set(graph_to_facts(ann)) == {("keyboard", "on", "court")}
    check_tokens_exact(ann)
    # words the rules are sure of stay theirs: a hyphenated word, an "@have" compound
    got = [set(graph_to_facts(a)) for a in ex.annotate(["a woman in a t-shirt", "the birds wings"])]
    assert {f[-1] for f in got[0]} == {"t-shirt"} and got[1] == {("birds", "have", "wings")}


def test_features_read_the_counts() -> None:
    counts = NamingCounts(pair={"tennis|racket": (30, 0)}, mod={"tennis": (40, 1)}, alone={})
    lists = (["a", "tennis", "racket"], ["a", "tennis", "racket"], ["DET", "NOUN", "NOUN"], ["DT", "NN", "NN"])
    f = naming_features(1, 2, 2, "name", lists[0], lists[1], lists[2], lists[3], ["det", "compound", "ROOT"],
                        [2, 2, 2], counts)  # fmt: skip
    assert {"mh=tennis|racket", "pn=X", "pa=0", "pr=4", "r=name", "att=True"} <= set(f)


@pytest.mark.skipif(not (FACTUAL / "train.csv").exists(), reason="FACTUAL data (../shared) absent")
def test_training_script_runs_on_a_slice(tmp_path: Path) -> None:
    from laitkit.jobs.train_text import main

    out = tmp_path / "naming.npz"
    assert main(["--naming", "--limit", "600", "--holdout", "100", "--out", str(out)]) == 0
    t = NamingTagger.load(out)
    assert t is not None and len(t.weights) > 20 and t.counts.pair
    with np.load(out) as z:
        assert "FACTUAL" in str(z["source"])
