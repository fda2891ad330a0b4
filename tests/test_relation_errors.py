"""The relation error breakdown job (`jobs/relation_errors.py`) on hand-written captions and golds.

Why: the counts it prints decide which candidate kinds are worth adding, so each class must be
what its name says; every case below has one gold and one predicted graph whose class is known.
"""

from __future__ import annotations

import pytest

from laitkit.extractors.factual import Normalizer, spacy_noun_lemmatizer
from laitkit.extractors.text import TextConfig, TextExtractor, graph_to_facts
from laitkit.jobs.relation_errors import breakdown, same_spelling


@pytest.fixture(scope="module")
def ex() -> TextExtractor:
    return TextExtractor(TextConfig())


def test_classes_of_missed_and_wrong_relations(ex: TextExtractor) -> None:
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    caps = ["a cat on a table", "a cat on a table", "a man riding a horse", "a cat and a dog", "a cat and a dog"]
    golds = [
        [("table", "on", "cat")],  # reversed (missed and wrong)
        [("cat",), ("table",)],  # gold relates nothing: the prediction is wrong
        [("man", "ride", "horse"), ("man", "on", "saddle")],  # no saddle predicted: an object miss
        [("cat", "next to", "dog")],  # unrelated pair, "next to" no candidate: a multiword preposition
        [("cat", "chase", "dog")],  # unrelated pair, "chase" nowhere in the caption
    ]
    preds = [graph_to_facts(a) for a in ex.annotate(caps)]
    assert preds[0] == [("cat", "on", "table")] and preds[2] == [("man", "ride", "horse")]
    assert preds[3] == [("cat",), ("dog",)]
    res = breakdown(ex, norm, caps, golds)
    assert res["gold_relations"] == 5 and res["pred_relations"] == 3
    assert res["missed_by_class"] == {
        "reversed": 1,
        "object": 1,
        "unrelated:not_candidate:multiword_prep": 1,
        "unrelated:not_candidate:predicate_word_not_in_caption": 1,
    }
    assert res["wrong_by_class"] == {"reversed": 1, "gold_writes_nothing": 1}
    assert res["missed"] == 4 and res["wrong"] == 2
    assert res["examples"]["gold_writes_nothing"] == {"on": 1}


def test_same_spelling() -> None:
    assert same_spelling("sit on", "sitting on") and same_spelling("on", "on top of")
    assert not same_spelling("near", "sit near") and not same_spelling("in", "on")
