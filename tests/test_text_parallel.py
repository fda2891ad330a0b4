"""Worker processes of the text stage, node token lists in the schema, and exact set match.

The workers are real spawned processes with their own spaCy pipeline: the test checks they give
byte-identical annotations in input order, keep serving after a call (started once), and survive
an abandoned stream. Schema tests check that 1.0 records (span only) still read, from JSON and
from a Parquet-shaped Arrow table built with the 1.0 node struct.
"""

from __future__ import annotations

import gc

import pyarrow as pa
import pytest

from laitkit.datasets.arrow_codec import samples_to_table, table_to_samples
from laitkit.datasets.schema import SCHEMA_VERSION, Sample, SceneNode, TextAnnotation
from laitkit.extractors.factual import Normalizer, set_match, spacy_noun_lemmatizer
from laitkit.extractors.text import TextConfig, TextExtractor
from laitkit.extractors.text_parallel import ParallelTextExtractor, pack, unpack

CAPTIONS = [
    "two boys riding skateboards",
    "the cat is black",
    "",
    "a man who is holding a cup",
    "people wear helmets and ride bicycles down a hill",
    "car was parked by a police officer",
    "😀 ((( , , ) ))",
    "a plate of pasta with tomatoes",
] * 5


@pytest.fixture(scope="module")
def ex() -> TextExtractor:
    return TextExtractor(TextConfig())


def test_workers_match_in_process_and_keep_order(ex: TextExtractor) -> None:
    want = [a.to_dict() for a in ex.annotate(CAPTIONS)]
    with ParallelTextExtractor(TextConfig(batch_size=3), workers=2) as par:
        assert par.workers == 2
        pids = [p.pid for p in par._procs]
        # 14 batches of 3 with at most 4 in flight: results come back out of order and are reordered
        frozen = gc.get_freeze_count()
        assert [a.to_dict() for a in par.annotate(CAPTIONS)] == want
        assert gc.get_freeze_count() == frozen  # the parent's collector is left as it was
        stream = par.annotate_iter(iter(CAPTIONS))
        assert next(stream).to_dict() == want[0]
        stream.close()  # abandoned mid-stream: its late results must not leak into the next call
        assert [a.to_dict() for a in par.annotate(CAPTIONS[::-1])] == want[::-1]
        assert [p.pid for p in par._procs] == pids and all(p.is_alive() for p in par._procs)  # started once
        procs = list(par._procs)
    assert not any(p.is_alive() for p in procs)


def test_extractor_with_n_process_uses_workers(ex: TextExtractor) -> None:
    ex2 = TextExtractor(TextConfig(n_process=2, batch_size=4))
    try:
        assert [a.to_dict() for a in ex2.annotate(CAPTIONS[:8])] == [a.to_dict() for a in ex.annotate(CAPTIONS[:8])]
        pool = ex2._pool
        assert pool is not None and ex2.annotate(["a wall"])[0].graph[0].lemma == "wall"
        assert ex2._pool is pool  # the same workers serve every call
    finally:
        ex2.close()
    assert ex2._pool is None


def test_bad_config_fails_at_start() -> None:
    with pytest.raises(RuntimeError, match="failed to start"):
        ParallelTextExtractor(TextConfig(model="no_such_spacy_model_xyz"), workers=1)
    with pytest.raises(ValueError):
        ParallelTextExtractor(TextConfig(), workers=0)


def test_pack_round_trip(ex: TextExtractor) -> None:
    for ann in ex.annotate(CAPTIONS[:8]):
        assert unpack(ann.model, pack(ann)) == ann


def test_scene_node_tokens_and_span() -> None:
    n = SceneNode(kind="relation", lemma="ride down", tokens=(6, 4), subject=0, object=1)
    assert n.tokens == (4, 6) and n.span == (4, 7)
    assert SceneNode.from_dict(n.to_dict()) == n
    assert n.to_dict()["tokens"] == [4, 6] and n.to_dict()["span"] == [4, 7]
    old = SceneNode("object", "fire hydrant", (1, 3))  # 1.0 style: span only
    assert old.tokens == (1, 2)


def test_schema_1_0_records_still_read() -> None:
    node_10 = {"kind": "object", "lemma": "dog", "span": [1, 3], "subject": -1, "object": -1, "count": 1}
    assert SceneNode.from_dict(node_10).tokens == (1, 2)
    text_10 = {"model": "m", "tokens": ["a", "hot", "dog"], "upos": ["DET", "ADJ", "NOUN"], "tags": ["DT", "JJ", "NN"]}
    text_10 |= {"lemmas": ["a", "hot", "dog"], "graph": [node_10]}
    # a 1.0 Arrow table: the text struct's graph nodes have no `tokens` field
    table = samples_to_table([Sample(key="k", url="u", text=TextAnnotation.from_dict(text_10))])
    text_type = table.schema.field("text").type
    node_type = text_type.field("graph").type.value_type
    old_node = pa.struct([f for f in node_type if f.name != "tokens"])
    old_text = pa.struct([pa.field("graph", pa.list_(old_node)) if f.name == "graph" else f for f in text_type])
    old_col = pa.array([text_10], old_text)
    old = table.set_column(table.schema.get_field_index("text"), "text", old_col)
    old = old.set_column(old.schema.get_field_index("schema_version"), "schema_version", pa.array(["1.0"]))
    (s,) = table_to_samples(old)
    assert s.schema_version == "1.0" and SCHEMA_VERSION == "1.1"
    assert s.text is not None and s.text.graph[0].tokens == (1, 2) and s.text.graph[0].span == (1, 3)
    (s2,) = table_to_samples(table)
    assert s2.text == s.text


def test_set_match_counts_whole_graphs(ex: TextExtractor) -> None:
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    gold = [[("cat", "is", "black")], [("dogs", "on", "grass"), ("dogs", "is", "2")], [("wall",)]]
    pred = [[("cat", "is", "black")], [("dog", "is", "two"), ("dog", "on", "grass")], [("wall",), ("floor",)]]
    assert set_match(pred, gold, norm) == pytest.approx(2 / 3)  # order and lemma do not matter; extras do
    assert set_match([], [], norm) == 1.0
    with pytest.raises(ValueError):
        set_match(pred[:1], gold, norm)
