"""The proposer's second stage: competition features, and what both scoring paths must agree on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from laitkit.datasets.schema import SceneNode
from laitkit.extractors.scene_graph_proposer import CERTAIN, NEW, RULE, Proposer
from laitkit.extractors.scene_graph_rerank import (
    ATTR_NAMES,
    CERTAIN_Z,
    N_ATTR,
    N_REL,
    REL_NAMES,
    Reranker,
    stage2_features,
)


def _rel(s: int, o: int, pred: str, toks: tuple[int, ...], kind: int = NEW) -> tuple:
    return (s, o, (pred, toks), None, kind)


def _get(row: list[tuple[int, float]], kind: int, names: tuple[str, ...], name: str) -> float:
    return dict(row).get((0 if kind == NEW else len(names)) + names.index(name), 0.0)


def test_kinds_are_the_proposers() -> None:
    import laitkit.extractors.scene_graph_rerank as rr

    assert (rr.NEW, rr.RULE, rr.CERTAIN) == (NEW, RULE, CERTAIN)


def test_attachment_competition_is_seen() -> None:
    """ "a plate(0) of pasta(2) with(3) tomatoes(4)": (plate, with, tomatoes) and (pasta, with,
    tomatoes) share the object and the word "with"; each sees the other's margin, and a candidate
    on a third object sees no competitor for its object."""
    rc = [
        _rel(0, 4, "with", (3,)),
        _rel(2, 4, "with", (3,)),
        _rel(0, 2, "have", (1,), RULE),
        _rel(2, 0, "on", (1,)),
    ]
    z = [1.0, 2.5, 0.5, -1.0]
    ri, rows, ai, arows = stage2_features(rc, [], z, {0: 0, 2: 2, 4: 4})
    assert ri == [0, 1, 2, 3] and not ai and not arows
    r0, r1 = rows[0], rows[1]
    # plate-with-tomatoes loses by 1.5 to pasta-with-tomatoes on the object and on the token
    assert _get(r0, NEW, REL_NAMES, "d_obj-") == pytest.approx(-1.5)
    assert _get(r0, NEW, REL_NAMES, "d_tok-") == pytest.approx(-1.5)
    assert _get(r1, NEW, REL_NAMES, "d_obj+") == pytest.approx(1.5)
    assert _get(r0, NEW, REL_NAMES, "has_pair") == 0.0  # alone on its pair
    # by position "with" attaches to pasta, the object nearest on its left; plate is one further
    assert _get(r1, NEW, REL_NAMES, "near_left") == 1.0 and _get(r1, NEW, REL_NAMES, "near_right") == 1.0
    assert _get(r0, NEW, REL_NAMES, "near_left") == 0.0 and _get(r0, NEW, REL_NAMES, "gap1") == 1.0
    # the rule "have" on (plate, pasta) competes with the reverse "on" of the same pair
    r2 = rows[2]
    assert all(k >= len(REL_NAMES) for k, _ in r2)  # a rule candidate writes the rule block
    assert _get(r2, RULE, REL_NAMES, "d_rev+") == pytest.approx(1.5)
    assert _get(r2, RULE, REL_NAMES, "d_pair+") == pytest.approx(1.5)
    assert _get(rows[3], NEW, REL_NAMES, "rank1") == 1.0 and _get(rows[3], NEW, REL_NAMES, "pair_rule") == 1.0
    assert all(0 <= k < N_REL for r in rows for k, _ in r)


def test_attribute_of_another_object_and_relation_words() -> None:
    """A word proposed as an attribute of two objects: each sees the other's score; a word that is
    also a relation's predicate sees that relation."""
    rc = [_rel(0, 3, "stand on", (1, 2))]
    ac = [(0, "red", (4,), None, NEW), (3, "red", (4,), None, RULE), (0, "standing", (1,), None, NEW)]
    z = [3.0, 0.0, 2.0, -1.0]
    ri, rows, ai, arows = stage2_features(rc, ac, z, {0: 0, 3: 3})
    assert ai == [0, 1, 2]
    assert _get(arows[0], NEW, ATTR_NAMES, "d_tok-") == pytest.approx(-2.0)
    assert _get(arows[1], RULE, ATTR_NAMES, "d_tok+") == pytest.approx(2.0)
    assert _get(arows[2], NEW, ATTR_NAMES, "d_rtok-") == pytest.approx(-4.0)
    assert _get(arows[2], NEW, ATTR_NAMES, "d_own-") == pytest.approx(-1.0)
    assert _get(rows[0], NEW, REL_NAMES, "d_atok+") == pytest.approx(4.0)
    assert all(0 <= k < N_ATTR for r in arows for k, _ in r)


def test_a_pair_one_certain_relation_decides_reads_the_same_on_both_paths() -> None:
    """The fast path makes only the certain relation of such a pair (its logit unscored); the
    string path makes all of the pair's candidates. The second stage must see the same thing."""
    full = [_rel(0, 1, "on", (2,), CERTAIN), _rel(0, 1, "near", (2,)), _rel(1, 0, "have", (3,)), _rel(0, 4, "on", (2,))]
    fast = [full[0], full[3]]
    ri_f, rows_f, _, _ = stage2_features(fast, [], [0.0, 0.3], {0: 0, 1: 1, 4: 4})
    ri_r, rows_r, _, _ = stage2_features(full, [], [7.0, 1.0, 2.0, 0.3], {0: 0, 1: 1, 4: 4})
    assert [fast[j] for j in ri_f] == [full[j] for j in ri_r] == [full[3]]
    assert rows_f == rows_r
    assert _get(rows_f[0], NEW, REL_NAMES, "d_tok-") == pytest.approx(0.3 - CERTAIN_Z)


def test_rescore_keeps_certain_logits_and_rejects_wrong_sizes() -> None:
    rc = [_rel(0, 1, "on", (2,), CERTAIN), _rel(1, 2, "in", (4,))]
    r = Reranker(np.ones(N_REL), np.ones(N_ATTR))
    graph = [SceneNode(kind="object", lemma=w, tokens=(k,)) for k, w in enumerate(["cat", "mat", "box"])]
    out = r.rescore(graph, rc, [], [0.0, 1.0])
    assert out[0] == 0.0 and out[1] != 1.0
    with pytest.raises(ValueError):
        Reranker(np.ones(N_REL - 1), np.ones(N_ATTR))


FACTUAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "factual"


@pytest.mark.skipif(not (FACTUAL / "train.csv").exists(), reason="FACTUAL data (../shared) absent")
def test_training_fits_and_ships_the_second_stage(tmp_path: Path) -> None:
    """`--rerank` fits the second stage on out-of-fold logits; with a margin it always clears,
    it is written and loaded (without `--rerank`: `test_training_script_runs_on_a_slice`)."""
    from laitkit.jobs.train_text import main

    out = tmp_path / "prop.npz"
    args = ["--proposer", "--rerank", "--rerank-margin", "-1", "--limit", "300", "--holdout", "60", "--out", str(out)]
    assert main(args) == 0
    prop = Proposer.load(out)
    assert prop is not None and prop.rerank is not None
    assert np.abs(prop.rerank.w_rel).max() > 0 and np.abs(prop.rerank.w_attr).max() > 0
    with np.load(out) as z:
        assert z["rerank_rel"].shape == (N_REL,) and z["rerank_attr"].shape == (N_ATTR,)
