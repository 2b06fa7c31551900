"""Small tables are validated, not dropped (issue 18): k folds that hold every labelled row once instead of one
holdout, a pipeline that fits once per fold, and a model that copes with the handful of rows a fold leaves."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from helpers import binary_frames, rules_agents, traditional_job, write_task

from iml_ray.scoring.evaluate import (
    SMALL_TABLE_ROWS,
    held_rows,
    holdout_json,
    make_validation,
    read_holdout,
    validation_folds,
)
from iml_ray.task.inference import analyze_task
from iml_ray.track.loop import run_track


def test_a_small_table_gets_stratified_folds_that_hold_every_labelled_row_once(tmp_path):
    train, test, sample = binary_frames(300, 20)
    train.loc[[3, 50], "label"] = np.nan                  # unlabelled rows are never validation rows
    summary = analyze_task(write_task(tmp_path / "small", train, test, sample))
    k = validation_folds(summary)
    assert k == 5
    folds = make_validation(summary, 0.2, 0, k)
    labelled = np.flatnonzero(train["label"].notna().to_numpy())
    assert len(folds) == 5 and sorted(np.concatenate(folds).tolist()) == labelled.tolist()
    share = train["label"].iloc[labelled].mean()
    assert all(abs(train["label"].iloc[f].mean() - share) < 0.05 for f in folds)   # stratified
    path = tmp_path / "holdout.json"
    path.write_text(json.dumps(holdout_json(folds)))
    assert [f.tolist() for f in read_holdout(path)] == [f.tolist() for f in folds]
    assert held_rows(path).tolist() == labelled.tolist()

    big_train, big_test, big_sample = binary_frames(SMALL_TABLE_ROWS + 1, 20)
    big = analyze_task(write_task(tmp_path / "big", big_train, big_test, big_sample))
    assert validation_folds(big) == 0
    (held,) = make_validation(big, 0.2, 0, validation_folds(big))
    assert len(held) == int(np.ceil(0.2 * (SMALL_TABLE_ROWS + 1)))
    path.write_text(json.dumps(holdout_json([held])))
    assert json.loads(path.read_text()) == held.tolist()          # one holdout stays a plain list of rows


def test_the_rules_plan_small_tables_with_folds_and_count_their_fits_and_their_texts_characters():
    from iml_ray.blueprint import PrepPlan
    from iml_ray.plan.first_fit import estimated_seconds

    prep = PrepPlan(numeric=tuple(f"x{i}" for i in range(20)))
    two, six = estimated_seconds(prep, 100_000, 1), estimated_seconds(prep, 100_000, 1, fits=6)
    assert six - 8.0 == pytest.approx(3 * (two - 8.0))
    # A short review costs a tenth of a long article; a column of unknown length what it always did.
    text = PrepPlan(text=("body",))
    short, long = (estimated_seconds(text, 1000, 1, text_chars={"body": chars}) for chars in (220.0, 2200.0))
    assert long - 8.0 == pytest.approx(10 * (short - 8.0), rel=0.02)
    assert estimated_seconds(text, 1000, 1) == pytest.approx(8.0 + 2 * 1000 * 4e-3, rel=0.01)


def test_a_four_row_task_is_validated_by_leaving_one_row_out_and_verifies(tmp_path):
    """The held-out failure: a 4-row train whose one-row holdout held one class made AUC undefined and every
    candidate fail. Four folds of one row each: every row predicted by a model fitted on the other three."""
    train = pd.DataFrame({"id": [1, 2, 3, 4], "x": [0.1, 0.9, 0.2, 0.8], "colour": ["r", "b", "r", "b"],
                          "label": [0, 1, 0, 1]})
    test = pd.DataFrame({"id": [5, 6], "x": [0.15, 0.85], "colour": ["r", "b"]})
    root = write_task(tmp_path / "four", train, test, pd.DataFrame({"id": [5, 6], "label": 0.5}), "## Evaluation\nAUC")
    summary = analyze_task(root)
    assert validation_folds(summary) == 4
    job = traditional_job(tmp_path, summary, time.time() + 120, improve=False)
    assert job.plans.train.holdout_folds == 4
    folds = make_validation(summary, 0.2, 0, 4)
    assert [len(f) for f in folds] == [1, 1, 1, 1]
    holdout = tmp_path / "holdout.json"
    holdout.write_text(json.dumps(holdout_json(folds)))
    result = run_track(job, rules_agents())
    assert result.status == "verified", result.failure
    out = tmp_path / "cand" / "round_1" / "output"
    valid = pd.read_csv(out / "valid_predictions.csv")
    assert sorted(valid["__row__"]) == [0, 1, 2, 3] and np.isfinite(result.valid_score)
    info = json.loads((out / "run_info.json").read_text())
    assert info["validation"]["folds"] == 4 and len(info["validation"]["fold_s"]) == 4
    # Three rows per fit: one linear model, no inner split to spare.
    assert info["validation"]["model"]["choice"] == "linear (too few rows to choose)"
    submission = pd.read_csv(out / "submission.csv")
    assert submission["label"].iloc[1] > submission["label"].iloc[0]


def test_under_k_folds_the_submission_is_the_average_of_the_fold_fits_and_the_pipeline_rebuilds_it(tmp_path):
    """drug_reviews (710 rows, 5 folds) at 90 s: its out-of-fold AUC measured the fold fits, but the submission came
    from one more fit on every row whose blend and linear strength an inner split of 142 rows chose (test AUC 0.80 to
    0.87 across runs, the TF-IDF baseline 0.83). The fold fits' average is what the folds scored."""
    import importlib.util

    train, test, sample = binary_frames(150, 40)
    summary = analyze_task(write_task(tmp_path / "small", train, test, sample))
    job = traditional_job(tmp_path, summary, time.time() + 120, improve=False)
    assert job.plans.train.holdout_folds == 5 and job.plans.train.pipeline_fits == 5
    folds = make_validation(summary, 0.2, 0, 5)
    (tmp_path / "holdout.json").write_text(json.dumps(holdout_json(folds)))
    result = run_track(job, rules_agents())
    assert result.status == "verified", result.failure
    out = tmp_path / "cand" / "round_1" / "output"
    info = json.loads((out / "run_info.json").read_text())
    assert info["final"]["cross_fit"] == 5 and info["validated_blend"] is None
    submission = pd.read_csv(out / "submission.csv")
    chance = pd.read_csv(out / "test_proba.csv")["1"].to_numpy()          # labels are submitted: P(class 1)

    # Each fold's fit, made again by the candidate's pipeline: their mean predictions of test are the submission.
    script = tmp_path / "cand" / "pipeline_traditional.py"
    spec = importlib.util.spec_from_file_location("cross_fit_pipeline", script)
    pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline)
    assert pipeline.folds_of(pipeline.CROSS_FIT_FOLDS) == [f.tolist() for f in folds]
    data = str(summary.task_dir)
    rows = pipeline.read_split(data, "train").reset_index(drop=True)
    probabilities = []
    for fold in folds:
        kept = np.ones(len(rows), dtype=bool)
        kept[fold] = False
        (outputs,), _ = pipeline.fit_predict(rows[kept], [pipeline.read_split(data, "test")])
        probabilities.append(outputs[0][:, 1])
    assert chance == pytest.approx(np.mean(probabilities, axis=0), abs=1e-6)
    on_every_row = pipeline.fit_predict(rows, [pipeline.read_split(data, "test")])[0][0][0][:, 1]
    assert np.abs(chance - on_every_row).max() > 1e-3

    # The standalone pipeline, run by itself, rebuilds the same submission from the same folds.
    import subprocess
    import sys
    subprocess.run([sys.executable, str(script), "--data", data, "--out", str(tmp_path / "rerun")], check=True,
                   cwd=tmp_path, capture_output=True)
    again = pd.read_csv(tmp_path / "rerun" / "test_proba.csv")["1"].to_numpy()
    assert again == pytest.approx(chance, rel=1e-9)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "rerun" / "submission.csv"), submission)
    assert not (tmp_path / "rerun" / "valid_predictions.csv").exists()


def test_folds_give_way_to_the_holdout_when_their_fits_would_force_a_sample(tmp_path):
    """bbc_news at 90 s: six fits of 1,701 long articles would not fit the first round's share, so the first fit took a
    sample of 755 and the submission's model never saw the rest. Every row beats every-row validation."""
    from iml_ray.plan.guideline_rules import make_blueprint
    from iml_ray.plan.knowledge import retrieve
    from iml_ray.task.profiling import profile_task

    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(3000)])
    n = 1500
    # Articles of about 2,000 characters: six fits of 1,200 would not fit 35 % of 60 s, two would.
    frame = pd.DataFrame({"id": range(n), "body": [" ".join(rng.choice(words, 330)) for _ in range(n)],
                          "topic": rng.choice(["a", "b", "c"], n)})
    root = write_task(tmp_path / "long", frame.iloc[:1200], frame.iloc[1200:].drop(columns="topic"),
                      pd.DataFrame({"id": frame["id"].iloc[1200:], "topic": "a"}))
    summary = analyze_task(root)
    profile = profile_task(summary)
    knowledge = retrieve(summary, profile, ("traditional",))
    assert validation_folds(summary) == 5 and profile.columns_with_role("text") == ["body"]
    roomy = make_blueprint(summary, profile, knowledge, ("traditional",), 0, 0.2, 1, time_budget_s=3600)
    assert roomy.train.holdout_folds == 5 and roomy.train.max_train_rows is None
    short = make_blueprint(summary, profile, knowledge, ("traditional",), 0, 0.2, 1, time_budget_s=60)
    assert short.train.holdout_folds == 0 and short.train.max_train_rows is None
    assert any("validated on a holdout, not k folds" in note for note in short.notes)


def test_a_networks_time_limit_is_shared_by_the_fits_that_k_folds_make(tmp_path):
    from iml_ray.blueprint import PrepPlan, TrackPlan, TrainPlan
    from iml_ray.plan.guideline_rules import make_blueprint
    from iml_ray.plan.improvements import RoundFacts, next_improvement
    from iml_ray.plan.knowledge import retrieve
    from iml_ray.plan.repairs import Plans
    from iml_ray.task.profiling import profile_task

    train, test, sample = binary_frames(300, 20)
    summary = analyze_task(write_task(tmp_path / "small", train, test, sample))
    profile = profile_task(summary)
    tracks = ("traditional", "custom_nn")
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1, time_budget_s=600)
    network = next(t for t in blueprint.tracks if t.model_template == "custom_nn")
    assert blueprint.train.holdout_folds == 5 and network.nn["time_limit_s"] == 36.0      # 15 % of 600 s, over 5 fits x 2
    # The traditional track's LightGBM: a quarter of the budget over five early-stopped fits and their refits; the
    # network has no LightGBM to limit.
    traditional = blueprint.track("traditional")
    assert traditional.lightgbm["time_limit_s"] == round(0.25 * 600 / (5 * 2.4), 1)
    assert "time_limit_s" not in network.lightgbm
    untimed = make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1)
    assert "time_limit_s" not in untimed.track("traditional").lightgbm

    # A network its limit stopped trains longer: the five fits, not two, are what the round's time buys.
    plans = Plans(PrepPlan(), TrackPlan("custom_nn", models=("nn",), model_template="custom_nn", nn={"time_limit_s": 5.0}),
                  TrainPlan(holdout_folds=5))
    facts = RoundFacts(40.0, {"validation": {"model": {"stopped": "time limit", "epochs": 3}}}, 300, False)
    step = next_improvement(plans, facts, seconds_left=200.0)
    assert step.step == "network_time" and step.plans.track.nn["time_limit_s"] == 20.0          # x4 at most
    assert step.expected_s == pytest.approx(15.0 + 5 * 20.0)                                    # overhead + 5 fits
