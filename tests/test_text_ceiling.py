"""The ceiling analysis (`jobs/text_ceiling.py`): an oracle over the proposer's candidates.

The oracle keeps exactly the gold candidates, so it can never score below the stage it bounds;
a gold fact no candidate produces must be counted under its reason. The dev check runs on 50
captions and skips when ../shared is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from laitkit.extractors.factual import (
    Normalizer,
    parse_factual,
    read_factual_csv,
    score_facts,
    set_match,
    spacy_noun_lemmatizer,
)
from laitkit.extractors.text import TextConfig, TextExtractor, graph_to_facts
from laitkit.jobs.text_ceiling import align_gold_objects, ceiling, main, parse_caption

FACTUAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "factual"


@pytest.fixture(scope="module")
def ex() -> TextExtractor:
    return TextExtractor(TextConfig())


def test_missing_candidates_are_counted_by_reason(ex: TextExtractor) -> None:
    caption = "a man in a red shirt"
    gold = parse_factual("( man , juggle , shirt ) , ( shirt , is , red ) , ( man , is , happy ) , ( dog , on , man )")
    res = ceiling(ex, list(ex.nlp.pipe([caption])), [gold])
    assert res["gold_tuples"] == {"obj": 3, "attr": 2, "rel": 2}
    expected = {
        "attr:word_not_in_caption": 1,  # "happy"
        "obj:head_not_in_caption": 1,  # "dog"
        "rel:object_missing": 1,  # ( dog , on , man )
        "rel:predicate_not_in_caption": 1,  # "juggle"
    }
    assert res["missing"]["oracle_candidates"] == expected
    assert res["missing"]["oracle_gold_objects"] == expected
    # reached: objects man and shirt, ( shirt , is , red ); nothing wrong is kept
    ora = res["oracle_candidates"]
    assert ora["obj"] == pytest.approx(2 * 2 / (2 + 3), abs=1e-4)
    assert ora["attr"] == pytest.approx(2 * 1 / (1 + 2), abs=1e-4)
    assert ora["rel"] == 0.0 and ora["set_match"] == 0.0
    # the same graph as gold but for the unreachable facts: a whole-graph match
    res = ceiling(ex, list(ex.nlp.pipe([caption])), [parse_factual("( shirt , is , red ) , ( man , in , shirt )")])
    assert res["oracle_candidates"]["set_match"] == 1.0
    assert res["missing"]["oracle_candidates"] == {}


def test_gold_objects_align_to_their_head_tokens(ex: TextExtractor) -> None:
    (doc,) = ex.nlp.pipe(["he holds a tennis racket and a racket cover on a t-shirt"])
    p = parse_caption(ex, doc)
    assert p is not None
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    objs, lost = align_gold_objects(norm, p.ctx, ["man", "tennis racket", "racket cover", "t-shirt", "dog"])
    got = {n.lemma: [p.tokens[t] for t in n.tokens] for n in objs}
    assert got == {
        "man": ["he"],
        "tennis racket": ["tennis", "racket"],
        "racket cover": ["racket", "cover"],
        "t-shirt": ["shirt"],
    }
    assert lost == ["dog"]


@pytest.mark.skipif(not (FACTUAL / "dev.csv").exists(), reason="FACTUAL data not in ../shared")
def test_oracle_bounds_the_stage_on_dev(ex: TextExtractor) -> None:
    captions, gold = read_factual_csv(FACTUAL / "dev.csv", limit=50)
    docs = list(ex.nlp.pipe(captions))
    res = ceiling(ex, docs, gold)
    norm = Normalizer(spacy_noun_lemmatizer(ex.nlp))
    pred = [graph_to_facts(a) for a in ex.annotate(captions)]
    want = {k: round(v, 4) for k, v in score_facts(pred, gold, norm).items()}
    assert res["system"] == {**want, "set_match": round(set_match(pred, gold, norm), 4)}
    sys_, ora, gold_objs = res["system"], res["oracle_candidates"], res["oracle_gold_objects"]
    for k in ("all", "attr", "rel", "set_match"):
        assert ora[k] >= sys_[k], k
    assert ora["obj"] == sys_["obj"]  # the objects are the rules' ones
    assert gold_objs["obj"] > ora["obj"] and gold_objs["all"] > ora["all"]
    assert ora["all"] < 1.0 and sum(res["missing"]["oracle_candidates"].values()) > 0


def test_missing_split_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("text_ceiling: error: FACTUAL split not found")
