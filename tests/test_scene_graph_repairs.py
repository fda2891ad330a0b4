"""The walk's parse repairs (`scene_graph._Walk.retag`) on parses written out by hand.

Why parses by hand: spaCy's small model makes these errors only on some captions, and which ones
moves with the model version; the repair must hold for the parse itself. Each case is the parse
spaCy gave for a FACTUAL-like fragment, and the rules' graph must read it as the caption means.
"""

from __future__ import annotations

from laitkit.extractors.scene_graph import Lexicon, rule_graph


def _graph(rows: list[tuple[str, str, str, str, str, int]]) -> set[tuple[str, ...]]:
    """The rules' facts (shipped lexicon, no learned parts) of a parse given as
    (text, lemma, pos, tag, dep, head) rows."""
    lower = [r[0].lower() for r in rows]
    lemma, pos, tag, dep, head = ([r[k] for r in rows] for k in range(1, 6))
    ws = [r[0] + " " for r in rows]
    graph, _ = rule_graph(Lexicon.load(), lower, list(lemma), list(pos), list(tag), list(dep), list(head), ws)
    name = {i: n.lemma for i, n in enumerate(graph) if n.kind == "object"}
    out: set[tuple[str, ...]] = set()
    for n in graph:
        if n.kind == "relation":
            out.add((name[n.subject], n.lemma, name[n.object]))
        elif n.kind == "attribute":
            out.add((name[n.subject], "is", n.lemma))
    return out


def test_object_left_as_an_apposition_of_the_verbs_noun() -> None:
    # "an adult kicking the soccer ball": "kicking" without an object, "ball" an apposition of "adult"
    rows = [
        ("an", "an", "DET", "DT", "det", 1),
        ("adult", "adult", "NOUN", "NN", "ROOT", 1),
        ("kicking", "kick", "VERB", "VBG", "acl", 1),
        ("the", "the", "DET", "DT", "det", 5),
        ("soccer", "soccer", "NOUN", "NN", "compound", 5),
        ("ball", "ball", "NOUN", "NN", "appos", 1),
    ]
    assert _graph(rows) == {("adult", "kick", "soccer ball")}


def test_two_noun_name_split_into_an_object_and_an_apposition() -> None:
    # "fireman using a water hydrant": "water" the object of "using", "hydrant" an apposition
    rows = [
        ("fireman", "fireman", "NOUN", "NN", "ROOT", 0),
        ("using", "use", "VERB", "VBG", "acl", 0),
        ("a", "a", "DET", "DT", "det", 3),
        ("water", "water", "NOUN", "NN", "dobj", 1),
        ("hydrant", "hydrant", "NOUN", "NN", "appos", 0),
    ]
    assert _graph(rows) == {("fireman", "use", "water hydrant")}


def test_reciprocal_written_as_one_word() -> None:
    # "two birds sitting next to eachother": "to eachother" also read as an infinitive
    rows = [
        ("two", "two", "NUM", "CD", "nummod", 1),
        ("birds", "bird", "NOUN", "NNS", "ROOT", 1),
        ("sitting", "sit", "VERB", "VBG", "acl", 1),
        ("next", "next", "ADV", "RB", "advmod", 2),
        ("to", "to", "PART", "TO", "aux", 5),
        ("eachother", "eachother", "VERB", "VB", "advcl", 2),
    ]
    assert _graph(rows) == {("bird", "sit next to", "bird"), ("bird", "is", "2")}


def test_participle_tagged_as_a_noun_or_adjective() -> None:
    # "a zebra standing under the tree" with "standing" a noun; "hand touching screen" with
    # "touching" an adjective and "hand" a nominal modifier of "screen"
    zebra = [
        ("a", "a", "DET", "DT", "det", 1),
        ("zebra", "zebra", "NOUN", "NN", "ROOT", 1),
        ("standing", "standing", "NOUN", "NN", "acl", 1),
        ("under", "under", "ADP", "IN", "prep", 2),
        ("the", "the", "DET", "DT", "det", 5),
        ("tree", "tree", "NOUN", "NN", "pobj", 3),
    ]
    assert _graph(zebra) == {("zebra", "stand under", "tree")}
    hand = [
        ("hand", "hand", "NOUN", "NN", "nmod", 2),
        ("touching", "touching", "ADJ", "JJ", "amod", 2),
        ("screen", "screen", "NOUN", "NN", "ROOT", 2),
    ]
    assert _graph(hand) == {("hand", "touch", "screen")}


def test_real_infinitive_after_next_is_left_alone() -> None:
    # "man waiting next to ride": nothing to repair when "next" hangs from no noun or verb before it
    rows = [
        ("next", "next", "ADV", "RB", "ROOT", 0),
        ("to", "to", "PART", "TO", "aux", 2),
        ("ride", "ride", "VERB", "VB", "xcomp", 0),
    ]
    assert _graph(rows) == set()
