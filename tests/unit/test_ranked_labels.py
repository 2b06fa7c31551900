"""MAP@k tasks: the description's metric, up to k labels per row best first, scored as Kaggle scores them, checked,
blended and written by the generated pipeline."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from helpers import verified_candidate, write_task

from iml_ray.metrics.in_description import find_metric_in_text
from iml_ray.metrics.predictions import score_predictions
from iml_ray.metrics.registry import get_metric
from iml_ray.metrics.submission import SubmissionFormat
from iml_ray.task.inference import analyze_task

DESCRIPTION = "# Name it\n\n## Evaluation\nSubmissions are evaluated on Mean Average Precision @ 3 (MAP@3).\n"


def kaggle_apk(actual, predicted, k):
    """ml_metrics' apk, the reference Kaggle's MAP@k graders use."""
    predicted = predicted[:k]
    score, hits = 0.0, 0.0
    for i, p in enumerate(predicted):
        if p in actual and p not in predicted[:i]:
            hits += 1.0
            score += hits / (i + 1.0)
    return score / min(len(actual), k) if actual else 0.0


def test_map_at_k_is_kaggles_mean_of_apk():
    truth = ["a", "b", "c", "d", "b", "a"]
    predicted = ["a b c", "a b c", "a b c", "a b c", "a a b", "c b a d"]
    expected = np.mean([kaggle_apk([t], p.split(), 3) for t, p in zip(truth, predicted)])
    assert get_metric("map@3").score(np.array(truth), np.array(predicted)) == pytest.approx(expected)
    assert expected == pytest.approx((1 + 1 / 2 + 1 / 3 + 0 + 1 / 3 + 1 / 3) / 6)
    assert get_metric("map@1").score(np.array(truth), np.array(predicted)) == pytest.approx(1 / 6)


def test_a_label_holding_spaces_is_one_prediction():
    truth, classes = np.array(["mid range", "low, cheap"]), ["high value", "low, cheap", "mid range"]
    assert get_metric("map@3").score(truth, np.array(["mid range", "high value"]), classes) == pytest.approx(0.5)


@pytest.mark.parametrize("name, k", [("map@3", 3), ("MAP@5", 5), ("map_3", 3), ("map 12", 12), ("MAP_at_7", 7)])
def test_map_names_carry_their_k(name, k):
    metric = get_metric(name)
    assert (metric.name, metric.higher_is_better, metric.needs) == (f"map@{k}", True, "label")
    assert metric.aps(0.4) == pytest.approx(0.4)


@pytest.mark.parametrize("text, expected", [
    ("Submissions are evaluated according to the Mean Average Precision @ 3 (MAP@3):", "map@3"),
    ("The leaderboard is scored by MAP@5.", "map@5"),
    ("Scored on the mean average precision at 3 of your predictions.", "map@3"),
    ("A map of the city at 3 pm.", None),
])
def test_map_named_in_a_description(text, expected):
    assert find_metric_in_text(text) == expected


def _digits_task(tmp_path, labels=("zero", "one", "two", "three", "four")):
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, len(labels), n)
    frame = pd.DataFrame({"id": range(n), "x1": y + rng.normal(0, 0.9, n), "x2": rng.normal(size=n),
                          "name": np.asarray(labels, dtype=object)[y]})
    train, test = frame.iloc[:300], frame.iloc[300:].drop(columns="name")
    sample = pd.DataFrame({"id": test["id"], "name": " ".join(labels[:3])})
    return analyze_task(write_task(tmp_path / "t", train, test, sample, DESCRIPTION)), train["name"]


def test_a_map_task_answers_up_to_k_labels_per_row(tmp_path):
    summary, _ = _digits_task(tmp_path)
    fmt = summary.submission
    assert (summary.metric, summary.problem_type, fmt.kind, fmt.top_k) == ("map@3", "multiclass", "label", 3)
    assert "up to 3 labels per row" in summary.decisions["submission"]
    assert SubmissionFormat.from_json(fmt.to_json()) == fmt


def test_with_no_metric_named_a_sample_listing_k_labels_per_row_asks_for_map_at_k(tmp_path):
    _digits_task(tmp_path)
    (tmp_path / "t" / "description.md").write_text("Name the digit.")
    summary = analyze_task(tmp_path / "t")
    assert (summary.metric, summary.submission.top_k) == ("map@3", 3)
    assert summary.decisions["metric"] == "default: MAP@3, since the sample submission lists 3 labels per row"
    sample = pd.read_csv(tmp_path / "t" / "sample_submission.csv")
    sample.assign(name="one").to_csv(tmp_path / "t" / "sample_submission.csv", index=False)
    assert analyze_task(tmp_path / "t").metric == "accuracy"


def test_labels_holding_spaces_are_answered_one_per_row(tmp_path):
    summary, _ = _digits_task(tmp_path, labels=("a b", "c", "d e", "f"))
    assert (summary.metric, summary.submission.top_k) == ("map@3", 1)


def test_ranked_answers_are_scored_with_the_truths_spelling():
    fmt = SubmissionFormat("id", ("y",), "label", (1, 2, 3, 10), label_dtype="int64", top_k=3)
    frame = pd.DataFrame({"id": ["a", "b", "c"], "y": ["2 1 3", "10 2 1", "3.0 1 2"]})
    truth = pd.Series([1, 10, 2])
    assert score_predictions("map@3", truth, frame, fmt) == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)


def test_the_checker_refuses_unknown_labels_and_too_many_per_row(tmp_path):
    from iml_ray.safety.contract import check_answer_frame

    summary, _ = _digits_task(tmp_path)
    good = pd.DataFrame({"name": ["one two zero", "four"]})
    assert check_answer_frame(good, summary, "submission.csv") == []
    unknown = pd.DataFrame({"name": ["one two seven", "four"]})
    assert any("unknown label(s) ['seven']" in p for p in check_answer_frame(unknown, summary, "submission.csv"))
    many = pd.DataFrame({"name": ["one two zero four", "four"]})
    assert any("1 to 3 space-separated labels" in p for p in check_answer_frame(many, summary, "submission.csv"))


def test_a_blend_of_label_probabilities_ranks_the_averaged_ones():
    from iml_ray.agents.stacking import blend_function

    blend = blend_function()
    members = [pd.DataFrame({"id": ["1"], "a": ["0.5"], "b": ["0.3"], "c": ["0.2"]}),
               pd.DataFrame({"id": ["1"], "a": ["0.1"], "b": ["0.3"], "c": ["0.6"]})]
    fmt = {"kind": "label_probabilities", "labels": ["a", "b", "c"], "target_columns": ["y"], "columns": ["id", "y"],
           "top_k": 2}
    assert blend(members, [1, 1], fmt)["y"].tolist() == ["c a"]
    assert blend(members, [1, 1], {**fmt, "top_k": 1})["y"].tolist() == ["c"]


def test_the_generated_pipeline_writes_the_k_likeliest_labels_best_first(tmp_path):
    summary, truth = _digits_task(tmp_path)
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    out = tmp_path / "cand" / f"round_{result.details['best_round']}" / "output"
    answers = pd.read_csv(out / "submission.csv", dtype=str)
    proba = pd.read_csv(out / "test_proba.csv", dtype=str)
    labels = [c for c in proba.columns if c != "id"]
    values = proba[labels].astype(float).to_numpy()
    expected = [" ".join(labels[i] for i in np.argsort(-row, kind="stable")[:3]) for row in values]
    assert answers["name"].tolist() == expected
    assert all(len(set(row.split())) == 3 for row in answers["name"])
    # The framework's validation score is MAP@3 of the ranked validation answers, above their first label's accuracy.
    valid = pd.read_csv(out / "valid_predictions.csv", dtype=str)
    held = truth.iloc[valid["__row__"].astype(int).to_numpy()].reset_index(drop=True)
    map3 = score_predictions("map@3", held, valid, summary.submission)
    first = valid["name"].str.split().str[0].reset_index(drop=True)
    assert result.valid_score == pytest.approx(map3)
    assert map3 > float((first == held).mean())
