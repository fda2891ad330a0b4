"""The text stage's fast paths give exactly what their general paths give.

`ScoreTables.attr_score` reads the four text-naming attribute weights from tables nested by the
text instead of building their strings; `SceneNode` keeps tokens that are already in normal form
without re-sorting them; `Context` is a slotted class (an extension type when compiled). Each is
checked against the definition it replaces, on the shipped weights, bit for bit.
"""

from __future__ import annotations

import dataclasses
import pickle
import random

import pytest

from laitkit.datasets.schema import SceneNode
from laitkit.extractors.scene_graph_proposer import Context, Proposer, ScoreTables


def _string_attr_score(tab: ScoreTables, txt: str, ol: str, src: str, pd: str, g: float) -> float:
    """The four text-naming features summed from their strings, in `attr_score`'s order."""
    get = tab.wd.get
    return (
        g
        + get("a=" + txt, 0.0)
        + get("ao=" + ol + "|" + txt, 0.0)
        + get("asrc=" + txt + "|" + src, 0.0)
        + get("apdw=" + pd + "|" + txt, 0.0)
    )


def test_nested_attribute_tables_match_the_strings() -> None:
    prop = Proposer.load()
    if prop is None:
        pytest.skip("no shipped proposer weights")
    tab = prop.tables
    # the texts, objects, sources and paths that occur in the weights, plus unseen ones
    parts: dict[str, set[str]] = {"txt": {"zzz-unseen"}, "ol": {"nobody"}, "src": {"tok", "rule"}, "pd": {"|x|"}}
    for key in tab.wd:
        pre, _, rest = key.partition("=")
        if pre == "ao" and "|" in rest:
            ol, txt = rest.rsplit("|", 1)
            parts["ol"].add(ol)
            parts["txt"].add(txt)
        elif pre == "asrc" and "|" in rest:
            parts["src"].add(rest.split("|", 1)[1])
        elif pre == "apdw" and "|" in rest:
            parts["pd"].add(rest.rsplit("|", 1)[0])
    rng = random.Random(0)
    pick = {k: sorted(v) for k, v in parts.items()}
    # (a text with "|" takes the string path; an object with "|" splits at the text's "|")
    cases = [("a|b", "man", "tok", "amod|NOUN|"), ("red", "x|y", "tok", "amod|NOUN|")]
    cases += [tuple(rng.choice(pick[k]) for k in ("txt", "ol", "src", "pd")) for _ in range(3000)]
    found = 0
    for txt, ol, src, pd in cases:
        got = tab.attr_score(txt, ol, src, "amod", "JJ", pd, -1, 0, "2", "nsubj")
        g = tab._memo[("a", src, "amod", "JJ", pd, "-1", "0", "2", "nsubj")]
        want = _string_attr_score(tab, txt, ol, src, pd, g)
        assert got == want, (txt, ol, src, pd)
        found += want != g
    assert found > 100  # the sample really hits weights, not only misses


@pytest.mark.parametrize(
    "kw",
    [
        {"tokens": (3,)},
        {"tokens": (2, 5)},
        {"tokens": (5, 2)},
        {"tokens": (4, 4)},
        {"tokens": [1, 3, 2, 3]},
        {"tokens": (True,)},
        {"tokens": (1, 2, 3)},
        {"span": (2, 4)},
        {"span": (0, 0)},
    ],
)
def test_scene_node_normal_form(kw: dict) -> None:
    """Fast or general path, a node's tokens are sorted distinct ints and its span covers them."""
    n = SceneNode(kind="relation", lemma="on", subject=0, object=1, **kw)
    toks = kw.get("tokens")
    want = tuple(sorted({int(t) for t in toks})) if toks else tuple(range(*kw["span"]))
    assert n.tokens == want and all(type(t) is int for t in n.tokens)
    assert n.span == ((want[0], want[-1] + 1) if want else kw["span"])
    assert dataclasses.replace(n, subject=2) == SceneNode(
        kind="relation", lemma="on", subject=2, object=1, tokens=want, span=n.span
    )
    assert pickle.loads(pickle.dumps(n)) == n
    assert SceneNode.from_dict(n.to_dict()) == n


def test_context_keeps_the_dataclass_construction() -> None:
    ctx = Context(["a", "dog", "runs"], ["a", "dog", "run"], ["DET", "NOUN", "VERB"], ["DT", "NN", "VBZ"],
                  ["det", "nsubj", "ROOT"], [1, 2, 2], {})  # fmt: skip
    assert ctx.certain == frozenset() and ctx.path(0, 2) == ([0, 1, 2], [])
    assert ctx.words() == ["a", "dog", "run"]
    other = ctx.replace(certain=frozenset({1}))
    assert other.certain == frozenset({1}) and other.lower is ctx.lower and ctx.certain == frozenset()
    with pytest.raises(TypeError):
        ctx.replace(not_a_field=1)
    with pytest.raises(AttributeError):
        ctx.not_a_field = 1  # slotted: a misspelt field is an error, not a silent new attribute
