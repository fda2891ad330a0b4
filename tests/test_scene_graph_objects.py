"""Objects the rules used to miss or invent (issue 14, part O), on hand-written captions.

Each construction has its exact expected graph with the shipped weights: FACTUAL's spellings of
objects ("cell phone" -> "cellphone", "guy" -> "person"), "trash can" with "can" tagged a modal,
"couch man is sitting on" (the couch the man sits on), a compound FACTUAL splits into two related
objects ("train station" -> ( station , for , train )), a two-word name the parse split ("fire
hydrant" with "hydrant" an adverb). The node `tokens` stay exactly the words each node covers.
The miner's vote functions and the object gate are checked on fixed inputs, independent of the
shipped weights.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from laitkit.extractors.scene_graph_naming import NamingCounts, NamingTagger, ObjectGate
from laitkit.extractors.text import TextConfig, TextExtractor, graph_to_facts
from laitkit.jobs.train_text import compound_relation, respell_vote

CASES = [
    ("a man holding a cell phone", [("man", "hold", "cellphone")]),
    ("the guy is swinging a bat", [("person", "swing", "bat")]),
    ("couch man is sitting on", [("man", "sit on", "couch")]),
    ("coat man is wearing", [("man", "wear", "coat")]),
    ("table fruit is on", [("fruit", "on", "table")]),
    ("garbage can in street", [("garbage can", "in", "street")]),
    ("garbage can filled with garbage", [("garbage can", "fill with", "garbage")]),
    # "can" was the root above "trash": the tree stays a tree
    ("pink trash bag in trash can", [("trash bag", "is", "pink"), ("trash bag", "in", "trash can")]),
    ("trees behind the train station", [("station", "for", "train"), ("trees", "behind", "station")]),
    ("painted bolt on a fire hydrant", [("bolt", "is", "painted"), ("bolt", "on", "fire hydrant")]),
    ("stop sign across road", [("stop sign", "across", "road")]),
    ("a large tree trunk", [("tree trunk", "is", "large")]),
]


@pytest.fixture(scope="module")
def ex() -> TextExtractor:
    return TextExtractor(TextConfig())


@pytest.mark.parametrize(("caption", "expected"), CASES)
def test_construction(ex: TextExtractor, caption: str, expected: list) -> None:
    assert sorted(graph_to_facts(ex.annotate([caption])[0])) == sorted(expected)


def test_tokens_are_the_words(ex: TextExtractor) -> None:
    """A renamed object keeps its own words; the re-read nouns cover exactly theirs."""
    by_caption = {c: ex.annotate([c])[0] for c, _ in CASES}
    objs = {c: {n.lemma: n.tokens for n in a.graph if n.kind == "object"} for c, a in by_caption.items()}
    assert objs["a man holding a cell phone"]["cellphone"] == (4, 5)
    assert objs["the guy is swinging a bat"]["person"] == (1,)
    assert objs["couch man is sitting on"] == {"couch": (0,), "man": (1,)}
    assert objs["garbage can in street"]["garbage can"] == (0, 1)
    assert objs["painted bolt on a fire hydrant"]["fire hydrant"] == (4, 5)
    assert objs["trees behind the train station"] == {"tree": (0,), "train": (3,), "station": (4,)}
    for ann in by_caption.values():
        for n in ann.graph:
            assert list(n.tokens) == sorted(set(n.tokens)) and n.span == (n.tokens[0], n.tokens[-1] + 1), n


def test_respell_votes_pair_the_residual_objects() -> None:
    votes: defaultdict[str, Counter] = defaultdict(Counter)
    # one rules' object and one gold object left over: the same thing spelled otherwise
    respell_vote(votes, {"cellphone", "man"}, {0: ("man", "man"), 1: ("cell phone", "cell phone")})
    assert votes["cell phone"] == Counter({"cellphone": 1}) and votes["man"] == Counter({"=": 1})
    # two left over on either side: no vote for either
    respell_vote(votes, {"person", "dog"}, {0: ("guy", "guy"), 1: ("puppy", "puppy")})
    assert "guy" not in votes and "puppy" not in votes


def test_compound_relation_reads_either_direction() -> None:
    assert compound_relation("train", "station", {("station", "for", "train")}) == "@~for"
    assert compound_relation("tile", "floor", {("tile", "on", "floor")}) == "@on"
    # a verb is a clause of its own, not what the compound says
    assert compound_relation("couch", "man", {("man", "sit on", "couch")}) is None
    assert compound_relation("wall", "clock", set()) is None


def test_object_gate_asks_only_its_names(ex: TextExtractor) -> None:
    """A gate that drops "picture" after a verb keeps it elsewhere and never asks about "man"."""
    shipped = ex.lexicon.naming
    assert shipped is not None
    gate = ObjectGate(
        weights={"b": 1.0, "ohw=taking": -5.0, "on=man": -50.0}, threshold=0.0, names=frozenset({"picture"})
    )
    toy = NamingTagger(shipped.weights, shipped.threshold, shipped.counts, shipped.keep_alone, gate=gate)
    ex2 = TextExtractor(TextConfig())
    ex2.lexicon.naming = toy
    facts = graph_to_facts(ex2.annotate(["a man taking a picture"])[0])
    assert all("picture" not in f for f in facts) and ("man",) in facts
    facts = graph_to_facts(ex2.annotate(["a picture on the wall"])[0])
    assert ("picture", "on", "wall") in facts


def test_gate_round_trips_through_the_weights_file(tmp_path: Path) -> None:
    import numpy as np

    from laitkit.extractors.scene_graph_naming import save_naming

    gate = ObjectGate(weights={"b": 0.5, "on=photo": -1.25}, threshold=-0.25, names=frozenset({"photo", "picture"}))
    p = tmp_path / "naming.npz"
    save_naming(p, ["b", "m=x"], np.asarray([0.1, 0.2]), 0.5, NamingCounts(), 20, gate=gate, source="test")
    back = NamingTagger.load(p)
    assert back is not None and back.gate == gate and back.threshold == 0.5
    save_naming(p, ["b"], np.asarray([0.1]), 0.5, NamingCounts(), 20)
    back = NamingTagger.load(p)
    assert back is not None and back.gate is None


def test_naming_errors_classes() -> None:
    """The breakdown's classes on fixed sets: a respelling, a compound modifier gold makes an object."""
    from laitkit.jobs.naming_errors import classify

    words = {"cell", "phone", "man", "train", "station"}
    m, e, _ = classify({"cellphone", "man"}, {"cell phone", "man"}, set(), set(), "man cell phone", words)
    assert m == ["spelling_joined_or_hyphen"] and e == []
    m, e, _ = classify({"train", "station"}, {"train station"}, set(), set(), "train station", words)
    assert sorted(m) == ["missed:modifier_of_a_predicted_name", "name_too_long:gold_drops_modifier"] and e == []
