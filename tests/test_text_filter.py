"""The learned fact filter (`extractors/scene_graph_filter.py`) and the parallel text stage.

(The shipped pipeline uses the fact proposer, which replaces the filter; the filter stays as the
fallback when no proposer weights are present, and is tested here with the proposer off.)

The filter may only remove attributes and relations: objects and every kept node's `tokens` must
be exactly the rule parser's. Its training script must run end to end on a small slice of FACTUAL
train (the shipped weights come from the full split; training them is not a test's job).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from laitkit.datasets.schema import Sample, SceneNode
from laitkit.extractors.factual import Normalizer, read_factual_csv, score_facts, spacy_noun_lemmatizer
from laitkit.extractors.scene_graph_filter import FILTER_PATH, FactFilter, drop_nodes, fit_logistic
from laitkit.extractors.text import TextConfig, TextExtractor, graph_to_facts

FACTUAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "factual"
CAPTIONS = [
    "two boys riding skateboards",
    "a man who is holding a cup",
    "people wear helmets and ride bicycles down a hill",
    "a plate of pasta with tomatoes",
    "a large wooden table with a blue cloth next to the wall",
    "a woman in a red dress holding an umbrella on a street",
    "the man 's hand on the table",
    "",
]


@pytest.fixture(scope="module")
def both() -> tuple[TextExtractor, TextExtractor]:
    # the proposer (tests/test_scene_graph_proposer.py) replaces the filter when present: off here
    off = "/nonexistent"
    return TextExtractor(TextConfig(proposer=off)), TextExtractor(TextConfig(fact_filter=off, proposer=off))


def test_shipped_filter_is_small_and_loads() -> None:
    assert FILTER_PATH.exists() and FILTER_PATH.stat().st_size < 20 * 1024 * 1024
    filt = FactFilter.load()
    assert filt is not None and len(filt.weights) > 1000 and np.isfinite(filt.threshold)
    assert FactFilter.load("/nonexistent/filter.npz") is None


def test_filter_keeps_objects_and_exact_tokens(both: tuple[TextExtractor, TextExtractor]) -> None:
    learned, rules = both
    assert learned.fact_filter is not None and rules.fact_filter is None
    for a, b in zip(learned.annotate(CAPTIONS), rules.annotate(CAPTIONS), strict=True):
        objs_a = [n for n in a.graph if n.kind == "object"]
        objs_b = [n for n in b.graph if n.kind == "object"]
        assert objs_a == objs_b
        # every kept fact is one of the rules' facts, on the same objects, with the same words
        keyed_b = {(n.kind, n.lemma, n.tokens, b.graph[n.subject].tokens) for n in b.graph if n.kind != "object"}
        for n in a.graph:
            if n.kind != "object":
                assert a.graph[n.subject].kind == "object"
                assert n.kind == "attribute" or a.graph[n.object].kind == "object"
                assert (n.kind, n.lemma, n.tokens, a.graph[n.subject].tokens) in keyed_b
        assert set(graph_to_facts(a)) <= set(graph_to_facts(b)) | {f for f in graph_to_facts(a) if len(f) == 1}


def test_drop_nodes_renumbers_references() -> None:
    g = [
        SceneNode(kind="object", lemma="cat", tokens=(1,)),
        SceneNode(kind="attribute", lemma="black", tokens=(0,), subject=0),
        SceneNode(kind="object", lemma="mat", tokens=(4,)),
        SceneNode(kind="relation", lemma="on", tokens=(2,), subject=0, object=2),
    ]
    out = drop_nodes(g, {1})
    assert [n.lemma for n in out] == ["cat", "mat", "on"]
    assert (out[2].subject, out[2].object, out[2].tokens) == (0, 1, (2,))
    assert drop_nodes(g, set()) is g


def test_fit_logistic_separates_a_toy_problem() -> None:
    rows = [["b", "good"]] * 30 + [["b", "bad"]] * 30 + [["b", "rare"]]
    y = [1] * 30 + [0] * 30 + [1]
    vocab, w = fit_logistic(rows, y, l2=0.1)
    wd = dict(zip(vocab, w, strict=True))
    assert "rare" not in wd  # seen once: left out
    assert wd["good"] > 1.0 > -1.0 > wd["bad"]


@pytest.mark.skipif(not (FACTUAL / "train.csv").exists(), reason="../shared/data/factual not present")
def test_training_script_runs_on_a_slice(tmp_path: Path) -> None:
    from laitkit.jobs.train_text import train_filter

    captions, golds = read_factual_csv(FACTUAL / "train.csv", limit=200)
    out = tmp_path / "filter.npz"
    res = train_filter(captions, golds, out, seed=1, holdout=40)
    filt = FactFilter.load(out)
    assert filt is not None and filt.weights and res["threshold"] == pytest.approx(filt.threshold)
    # the threshold is picked so that the held-out score does not get worse than the rules'
    assert res["f1_filtered"]["all"] >= res["f1_rules"]["all"]
    assert res["f1_filtered"]["set_match"] >= res["f1_rules"]["set_match"]
    again = tmp_path / "again.npz"
    train_filter(captions, golds, again, seed=1, holdout=40)
    with np.load(out) as a, np.load(again) as b:  # reproducible from the seed
        assert a["vocab"].tolist() == b["vocab"].tolist() and np.array_equal(a["weights"], b["weights"])


@pytest.mark.skipif(not (FACTUAL / "dev.csv").exists(), reason="../shared/data/factual not present")
def test_filter_helps_relations_on_dev_slice(both: tuple[TextExtractor, TextExtractor]) -> None:
    learned, rules = both
    captions, gold = read_factual_csv(FACTUAL / "dev.csv", limit=400)
    norm = Normalizer(spacy_noun_lemmatizer(rules.nlp))
    f_rules = score_facts([graph_to_facts(a) for a in rules.annotate(captions)], gold, norm)
    f_learned = score_facts([graph_to_facts(a) for a in learned.annotate(captions)], gold, norm)
    assert f_learned["rel"] > f_rules["rel"] and f_learned["all"] > f_rules["all"], (f_learned, f_rules)


def test_text_stage_streams_through_worker_processes() -> None:
    from laitkit.pipeline.text_stage import TextStage

    caps = CAPTIONS * 3
    one = TextStage(TextConfig())
    two = TextStage(replace(TextConfig(), n_process=2, batch_size=4))
    try:
        for _ in range(2):  # the same workers serve every batch the actor gets
            s1 = [Sample(key=str(i), url="u", caption=c) for i, c in enumerate(caps)]
            s2 = [Sample(key=str(i), url="u", caption=c) for i, c in enumerate(caps)]
            one.process(s1)
            two.process(s2)
            assert [s.text.to_dict() for s in s2] == [s.text.to_dict() for s in s1]
        pool = two.extractor._pool
        assert pool is not None and pool.workers == 2
        procs = list(pool._procs)
    finally:
        two.close()
    assert not any(p.is_alive() for p in procs)
