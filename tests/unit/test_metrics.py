"""The framework's metrics: values, directions, APS, names, descriptions, submission formats."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from iml_ray.metrics import METRICS, UnknownMetric, find_metric_in_text, get_metric, score_predictions
from iml_ray.submission import SubmissionFormat


def test_regression_metrics_on_textbook_values():
    y, p = [1, 2, 3], [1, 2, 5]
    assert get_metric("rmse").score(y, p) == pytest.approx(math.sqrt(4 / 3))
    assert get_metric("mse").score(y, p) == pytest.approx(4 / 3)
    assert get_metric("mae").score(y, p) == pytest.approx(2 / 3)
    assert get_metric("rmsle").score([0, math.e - 1], [0, 0]) == pytest.approx(math.sqrt(0.5))
    assert get_metric("r2").score([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_rmsle_clips_negative_predictions_at_zero():
    assert get_metric("rmsle").score([0.0, 0.0], [-5.0, 0.0]) == pytest.approx(0.0)


def test_classification_metrics_on_small_cases():
    assert get_metric("accuracy").score(["a", "b", "b", "a"], ["a", "b", "a", "a"]) == pytest.approx(0.75)
    assert get_metric("auc").score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert get_metric("logloss").score([1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    three = np.full((2, 3), 1 / 3)
    assert get_metric("logloss").score(["x", "z"], three, ["x", "y", "z"]) == pytest.approx(math.log(3))
    # binary F1 of the positive class: tp=1, fp=1, fn=1 → 0.5
    assert get_metric("f1").score([1, 1, 0, 0], [1, 0, 1, 0], [0, 1]) == pytest.approx(0.5)
    assert get_metric("qwk").score([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    assert get_metric("mcc").score([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


def test_directions():
    assert get_metric("auc").higher_is_better and get_metric("accuracy").higher_is_better
    assert not get_metric("logloss").higher_is_better and not get_metric("rmse").higher_is_better


def test_aps_normalisation():
    assert get_metric("auc").aps(0.9) == pytest.approx(0.9)
    assert get_metric("r2").aps(-3.0) == 0.0
    assert get_metric("rmse").aps(1.0) == pytest.approx(math.exp(-1))
    assert get_metric("mcc").aps(0.5) == pytest.approx(0.75)
    assert get_metric("qwk").aps(-1.0) == pytest.approx(0.0)
    for metric in METRICS.values():
        assert metric.aps(None) == 0.0
        assert metric.aps(float("nan")) == 0.0


def test_aliases_and_unknown_names():
    assert get_metric("ROC_AUC").name == "auc"
    assert get_metric("log loss").name == "logloss"
    assert get_metric("quadratic_weighted_kappa").name == "qwk"
    assert get_metric("macro_f1").name == "f1_macro"
    with pytest.raises(UnknownMetric) as info:
        get_metric("bogus")
    assert "unknown metric 'bogus'" in str(info.value) and "auc" in str(info.value)


def test_bad_predictions_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        get_metric("rmse").score([1.0, 2.0], [1.0, float("nan")])
    with pytest.raises(ValueError):
        get_metric("rmse").score([1.0, 2.0], [1.0])


@pytest.mark.parametrize("text, expected", [
    ("Submissions are evaluated on area under the ROC curve between the predicted probability and the target.", "auc"),
    ("Submissions are evaluated using the multi-class logarithmic loss.", "logloss"),
    ("Submissions are evaluated on Root-Mean-Squared-Error (RMSE) between the logarithm of the predicted value and "
     "the logarithm of the observed sales price.", "rmsle"),
    ("The metric is root mean squared error.", "rmse"),
    ("We score with the quadratic weighted kappa.", "qwk"),
    ("Scored by the Matthews correlation coefficient (MCC).", "mcc"),
    ("Evaluation: macro F1 over the classes.", "f1_macro"),
    ("Predictions are scored by mean absolute error.", "mae"),
    ("Nothing about scoring here.", None),
])
def test_metric_named_in_a_description(text, expected):
    assert find_metric_in_text(text) == expected


def test_evaluation_section_wins_over_earlier_mentions():
    text = ("# Task\nEarlier work reached 90% accuracy on this data.\n\n## Evaluation\n"
            "Submissions are scored on log loss.\n\n## Data\nSee files.")
    assert find_metric_in_text(text) == "logloss"


def _fmt(kind, classes=(), positive=None, columns=("target",)):
    return SubmissionFormat("id", tuple(columns), kind, tuple(classes), positive)


def test_score_label_submission_with_string_vs_int_labels():
    truth = pd.Series([0, 1, 1, 0])
    frame = pd.DataFrame({"target": ["0", "1", "0", "0"]})
    assert score_predictions("accuracy", truth, frame, _fmt("label", (0, 1), 1)) == pytest.approx(0.75)


def test_score_probability_submission_for_auc_and_for_accuracy():
    truth = pd.Series(["no", "no", "yes", "yes"])
    frame = pd.DataFrame({"target": [0.1, 0.4, 0.35, 0.8]})
    fmt = _fmt("probability", ("no", "yes"), "yes")
    assert score_predictions("auc", truth, frame, fmt) == pytest.approx(0.75)
    assert score_predictions("accuracy", truth, frame, fmt) == pytest.approx(0.75)


def test_score_class_probabilities_for_logloss_in_column_order():
    truth = pd.Series(["b", "a"])
    # columns in the sample's order (b, a), classes follow that order
    frame = pd.DataFrame({"b": [0.9, 0.2], "a": [0.1, 0.8]})
    fmt = _fmt("class_probabilities", ("b", "a"), columns=("b", "a"))
    expected = -(math.log(0.9) + math.log(0.8)) / 2
    assert score_predictions("logloss", truth, frame, fmt) == pytest.approx(expected)
    assert score_predictions("accuracy", truth, frame, fmt) == pytest.approx(1.0)


def test_score_values_and_missing_columns():
    truth = pd.Series([1.0, 2.0])
    assert score_predictions("mae", truth, pd.DataFrame({"target": [1.5, 2.0]}), _fmt("value")) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="lack column"):
        score_predictions("mae", truth, pd.DataFrame({"other": [1.0, 2.0]}), _fmt("value"))
