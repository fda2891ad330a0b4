"""The attribute error breakdown job (`jobs/attribute_errors.py`) on hand-written captions and golds.

Why: its counts decide where attribute work goes, so each class must be what its name says; every
case below has one gold and one predicted graph whose class is known.
"""

from __future__ import annotations

import pytest

from laitkit.extractors.factual import Normalizer, spacy_noun_lemmatizer
from laitkit.extractors.text import TextConfig, TextExtractor, graph_to_facts
from laitkit.jobs.attribute_errors import breakdown


@pytest.fixture(scope="module")
def ex() -> TextExtractor:
    return TextExtractor(TextConfig())


def test_classes_of_missed_and_wrong_attributes(ex: TextExtractor) -> None:
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    caps = ["a red car", "a red car", "a red car", "a red car next to a bus", "a red car"]
    golds = [
        [("car", "is", "red")],  # right: no error
        [("car", "is", "blue")],  # "blue" nowhere in the caption; "red" written by nobody
        [("truck", "is", "red")],  # no truck predicted: an object miss, and "car" is no gold object
        [("bus", "is", "red"), ("car",), ("car", "next to", "bus")],  # the attribute on the other object
        [("car", "is", "reddish")],  # the caption spells it differently
    ]
    preds = [graph_to_facts(a) for a in ex.annotate(caps)]
    assert preds[0] == [("car", "is", "red")] and ("car", "is", "red") in preds[3]
    res = breakdown(ex, norm, caps, golds)
    assert res["gold_attributes"] == 5 and res["pred_attributes"] == 5
    assert res["missed_by_class"] == {"not_in_caption": 1, "object": 1, "on_other_object": 1, "spelling": 1}
    assert sum(res["wrong_by_class"].values()) == 4 == res["wrong"]
    kinds = {k.split(":")[0] for k in res["wrong_by_class"]}
    assert kinds == {"gold_writes_nothing", "object", "gold_on_other_object"}
    assert res["examples"]["wrong:gold_writes_nothing"] == {"red": 2}
