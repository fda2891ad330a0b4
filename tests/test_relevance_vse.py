"""The visual-semantic embedding behind the relevance cut: training, scores, checkpoint, SC-NLM,
arithmetic, CLI, shards as input, the calibrated threshold.

Everything real: synthetic scenes rendered here, region features from the project's tiny
detector, the shipped model (extractors/weights/relevance_vse.pt, trained by
`laitkit relevance train --pairs synth`), spaCy for POS, `tokenizers` for WordPiece.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from laitkit.extractors.vse_data import VSEPair, pairs_from_shards, synth_pairs
from laitkit.extractors.vse_eval import calibration_plot, choose_threshold, mismatch_pr, retrieval_metrics
from laitkit.extractors.vse_model import VSEConfig, load_model, save_model
from laitkit.extractors.vse_scorer import builtin_vse
from laitkit.extractors.vse_train import image_inputs, train_vse


@pytest.fixture(scope="module")
def vse_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vse_cache")


@pytest.fixture(scope="module")
def held_out(vse_cache: Path) -> list[VSEPair]:
    """120 synthetic pairs of a seed no model was trained on, with tiny-detector region features
    (cached in `vse_cache`: the CLI test reads the same pairs as `synth:120:7` without the detector)."""
    torch.set_num_threads(2)
    return synth_pairs(120, 7, vse_cache)


@pytest.fixture(scope="module")
def builtin():
    return load_model(builtin_vse())


def test_training_lowers_the_loss_on_a_tiny_set(held_out: list[VSEPair]) -> None:
    pairs = held_out[:48]
    for cfg in (VSEConfig(loss="vse++"), VSEConfig(text="bow", pool="mean", loss="infonce")):
        model, losses = train_vse(pairs, cfg, steps=60, batch_size=24, seed=0)
        assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10]), (cfg, losses[:10], losses[-10:])
        assert model.cfg.feat_dim == pairs[0].boxes.features.shape[1] and model.cfg.num_obj == 10


def test_pixels_model_trains_without_regions(held_out: list[VSEPair]) -> None:
    pairs = [VSEPair(p.key, p.caption, image=p.image) for p in held_out[:32]]
    model, losses = train_vse(pairs, VSEConfig(image="pixels"), steps=30, batch_size=16)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    scores = model.score_bytes([p.image for p in pairs[:4]] + [b"not an image"], [p.caption for p in pairs[:5]])
    assert np.isfinite(scores[:4]).all() and np.isnan(scores[4])


def test_matched_pairs_outscore_shuffled_and_injected_mismatches(held_out: list[VSEPair], builtin) -> None:
    iv = builtin.image_vectors(image_inputs(builtin.cfg, held_out))
    matched = (iv * builtin.text_vectors([p.caption for p in held_out])).sum(1)
    rolled = (iv * np.roll(builtin.text_vectors([p.caption for p in held_out]), 1, axis=0)).sum(1)
    injected = (iv * builtin.text_vectors([p.mismatch for p in held_out])).sum(1)
    assert (matched > rolled).mean() >= 0.9 and (matched > injected).mean() >= 0.95
    precision, recall = mismatch_pr(matched, injected, builtin.calibration.threshold)
    assert precision >= 0.85 and recall >= 0.85, (precision, recall)
    ret = retrieval_metrics(iv, builtin.text_vectors([p.caption for p in held_out]))
    assert ret["i2t_r_at_5"] >= 0.6 and ret["i2t_median_rank"] <= 3


def test_saved_model_reloads_to_identical_scores(held_out: list[VSEPair], builtin, tmp_path: Path) -> None:
    pairs = held_out[:40]
    captions = [p.caption for p in pairs]
    before = builtin.score_pairs(image_inputs(builtin.cfg, pairs), captions)
    path = save_model(builtin, tmp_path / "m" / "model.pt")
    blob = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code in the file
    assert json.loads(blob["data"])["source"].startswith("synthetic web")
    again = load_model(tmp_path / "m")
    assert np.array_equal(before, again.score_pairs(image_inputs(again.cfg, pairs), captions))
    assert again.calibration.threshold == builtin.calibration.threshold
    assert "scnlm" in again.extras and again.tokenizer.to_json() == builtin.tokenizer.to_json()


def test_arithmetic_on_synthetic_colours_and_shapes(held_out: list[VSEPair], builtin) -> None:
    from laitkit.extractors.vse_arith import nearest, query_vector, synth_arithmetic_accuracy

    iv = builtin.image_vectors(image_inputs(builtin.cfg, held_out))
    acc = synth_arithmetic_accuracy(builtin, held_out, iv, n_queries=40)
    assert acc["arithmetic_queries"] >= 10 and acc["arithmetic_top5_accuracy"] >= 0.5, acc
    # One query by hand: an image with one object, its colour swapped for one that some other image has.
    has = [set(p.objects) for p in held_out]
    for i, p in enumerate(held_out):
        if len(p.objects) != 1:
            continue
        colour, shape = p.objects[0]
        others = {c for j, h in enumerate(has) if j != i for c, s in h if s == shape and c != colour}
        if others:
            target = sorted(others)[0]
            top = nearest(iv, query_vector(builtin, iv[i], [colour], [target]), 5, exclude=i)
            without = nearest(iv, iv[i], 5, exclude=i)
            hits = sum((target, shape) in has[j] for j, _ in top)
            assert hits >= 1 and hits > sum((target, shape) in has[j] for j, _ in without)
            break
    else:
        pytest.fail("no one-object scene with a recoloured twin in the held-out set")


def test_scnlm_captions_name_the_right_shapes_and_colours(held_out: list[VSEPair], builtin) -> None:
    from laitkit.datasets.synth.scenes import CLASSES, COLOURS

    sc = builtin.extras["scnlm"]
    iv = builtin.image_vectors(image_inputs(builtin.cfg, held_out))
    caps = [sc.generate(torch.from_numpy(v)) for v in iv]
    assert sum(bool(c) for c in caps) >= 0.9 * len(caps) and all(len(c.split()) <= 30 for c in caps)

    def rate(perm: np.ndarray, vocab: tuple[str, ...], part: int) -> float:
        hits = total = 0
        for cap, j in zip(caps, perm, strict=True):
            for w in set(cap.lower().replace(",", " ").split()) & set(vocab):
                total += 1
                hits += w in {o[part] for o in held_out[j].objects}
        return hits / max(total, 1)

    same, shuffled = np.arange(len(caps)), np.roll(np.arange(len(caps)), 17)
    assert rate(same, CLASSES, 1) > rate(shuffled, CLASSES, 1) + 0.3
    assert rate(same, tuple(COLOURS), 0) > rate(shuffled, tuple(COLOURS), 0) + 0.3


def test_threshold_is_chosen_for_the_target_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    matched, shuffled = rng.normal(0.6, 0.1, 500), rng.normal(0.1, 0.15, 500)
    cal = choose_threshold(matched, shuffled, 0.95)
    p, r = mismatch_pr(matched, shuffled, cal.threshold)
    assert p >= 0.95 and r > 0.9 and (p, r) == (cal.precision, cal.recall)
    looser = choose_threshold(matched, shuffled, 0.8, rule="max_recall")
    highest = choose_threshold(matched, shuffled, 0.95, rule="max_recall")
    assert looser.threshold >= highest.threshold >= cal.threshold
    # The highest threshold meeting the precision floor cuts good pairs for nothing; fewest errors does not.
    cut = lambda c: float((matched < c.threshold).mean())  # noqa: E731
    assert highest.precision >= 0.95 and highest.recall >= cal.recall
    assert cut(cal) < cut(highest) and cut(cal) < 0.05
    errors = lambda c: (matched < c.threshold).sum() + (shuffled >= c.threshold).sum()  # noqa: E731
    assert errors(cal) <= errors(highest) and errors(cal) <= errors(looser)
    with pytest.raises(ValueError, match="threshold rule"):
        choose_threshold(matched, shuffled, 0.9, rule="median")
    png = calibration_plot(cal, tmp_path / "cal.png", run_scores=list(matched[:50]))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pairs_from_shards_and_the_stage_scorer(tmp_path: Path, held_out: list[VSEPair], builtin) -> None:
    from laitkit.datasets.schema import Sample
    from laitkit.datasets.shards import write_shard
    from laitkit.extractors.regions import RegionExtractor, RegionsConfig
    from laitkit.extractors.relevance import RelevanceConfig, make_scorer
    from laitkit.extractors.vse_data import SYNTH_REGIONS

    src = held_out[:6]
    regions = RegionExtractor(RegionsConfig(**SYNTH_REGIONS)).extract([p.image for p in src])
    samples = [Sample(key=f"k{i}", url=f"http://127.0.0.1/{i}.jpg", caption=p.caption, image=p.image, regions=r)
               for i, (p, r) in enumerate(zip(src, regions, strict=True))]
    samples.append(Sample(key="noregions", url="http://127.0.0.1/x.jpg", caption="a red circle", image=src[0].image))
    write_shard(tmp_path / "shards", 0, samples, config_hash="t", feature_dim=regions[0].feature_dim)
    pairs = pairs_from_shards(tmp_path / "shards")
    assert [p.key for p in pairs] == [s.key for s in samples] and pairs[-1].boxes is None
    from laitkit.extractors.vse_inputs import boxset_from_regions

    np.testing.assert_array_equal(pairs[0].boxes.features, boxset_from_regions(regions[0]).features)

    scorer = make_scorer(RelevanceConfig())
    scores, why = scorer.score_samples(samples)
    assert np.isfinite(scores[:6]).all() and np.isnan(scores[6]) and "tiny-cnn" in why[6]
    np.testing.assert_allclose(scores[:6], builtin.score_pairs([p.boxes for p in pairs[:6]], [p.caption for p in src]),
                               rtol=0, atol=1e-6)  # the stage's samples and the shard's pairs: same score
    assert (scores[:6] > builtin.calibration.threshold).mean() >= 0.5  # ~1 % of true pairs fall below (README)
    assert scorer.threshold == builtin.calibration.threshold
    old = make_scorer(RelevanceConfig(scorer="tiny-cnn"))
    assert np.isfinite(old.score_samples(samples)[0]).all() and old.threshold == 0.2


def test_cli_train_eval_caption_query(tmp_path: Path, held_out: list[VSEPair], vse_cache: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from laitkit.jobs.cli import main

    out = tmp_path / "model"
    pairs = "synth:120:7"  # the held-out fixture's pairs: their features are in its cache already
    assert main(["relevance", "train", "--pairs", pairs, "--out", str(out), "--steps", "20",
                 "--scnlm-steps", "20", "--batch-size", "16", "--cache", str(vse_cache), "--threads", "2"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["steps_run"] <= 20 and trained["val_r_at_1_curve"]  # held-out R@1 measured while training
    assert (out / "model.pt").exists() and (out / "model_calibration.png").stat().st_size > 1000
    for action, extra in (("eval", []), ("caption", ["--image", "synth-7-000003"]),
                          ("query", ["--image", "synth-7-000003", "--minus", "red", "--plus", "blue"])):
        assert main(["relevance", action, "--model", str(out), "--pairs", pairs, "--cache", str(vse_cache),
                     *extra]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert evaluated["mismatches"] == "synth-injected mismatched" and 0 <= evaluated["matched_below_threshold"] <= 1


def test_cli_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from laitkit.jobs.cli import main

    assert main(["relevance", "eval", "--model", str(tmp_path / "missing.pt")]) == 2
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["relevance", "eval", "--model", str(tmp_path / "bad.pt")]) == 2
    assert main(["relevance", "train", "--pairs", "synth:x", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("laitkit relevance: error: ") for line in err), err


def test_run_report_names_the_training_data_and_draws_the_calibration(tmp_path: Path) -> None:
    from laitkit.datasets.schema import Reason, Sample
    from laitkit.datasets.shards import write_shard
    from laitkit.pipeline.report import render_markdown, write_report

    out = tmp_path / "run"
    kept = [Sample(key=f"k{i}", url=f"http://127.0.0.1/{i}.jpg", caption="a red circle", relevance_score=0.9 + i / 100)
            for i in range(5)]
    cut = Sample(key="cut", url="http://127.0.0.1/c.jpg", caption="a blue star", relevance_score=-0.2)
    cut.reject("relevance", Reason.LOW_RELEVANCE, "score -0.200 < 0.4")
    write_shard(out / "shards", 0, kept, config_hash="t")
    write_shard(out / "rejected", 0, [cut], config_hash="t")
    (out / "config.json").write_text(json.dumps({"config_hash": "t", "relevance": {"scorer": "vse"}}))
    write_report(out)
    report = json.loads((out / "report.json").read_text())
    sec = report["relevance"]
    assert sec["trained_on"].startswith("synthetic web") and sec["scored"] == 6 and sec["below_threshold"] == 1
    assert (out / "relevance_calibration.png").read_bytes()[:4] == b"\x89PNG"
    md = render_markdown(report)
    assert "trained on: **synthetic web" in md and "![relevance calibration](relevance_calibration.png)" in md
