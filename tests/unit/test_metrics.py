"""The framework's metrics: values, directions, APS, names, descriptions, submission formats."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from iml_ray.metrics.in_description import find_metric_in_text
from iml_ray.metrics.predictions import score_predictions
from iml_ray.metrics.registry import METRICS, Metric, UnknownMetric, get_metric
from iml_ray.metrics.submission import SubmissionFormat

CANONICAL = ("accuracy", "auc", "balanced_accuracy", "balanced_logloss", "f1", "f1_macro", "f1_weighted", "logloss",
             "mae", "mape", "mcc", "mse", "qwk", "r2", "rmse", "rmsle", "smape", "gini", "pearson", "spearman")
LOSSES = ("logloss", "balanced_logloss", "rmse", "rmsle", "mae", "mse", "mape", "smape")
# Several targets: each the mean over target columns of its unit metric.
COLUMN_WISE = {"mean_auc": "auc", "mean_logloss": "logloss", "mean_rmsle": "rmsle", "mcrmse": "rmse", "mean_mae": "mae",
               "mean_spearman": "spearman"}


def score(name, y_true, y_pred, classes=None):
    return get_metric(name).score(y_true, y_pred, classes)


# ------------------------------------------------------------------ values


def test_regression_metrics_on_textbook_values():
    y, p = [1, 2, 3], [1, 2, 5]
    assert score("rmse", y, p) == pytest.approx(math.sqrt(4 / 3))
    assert score("mse", y, p) == pytest.approx(4 / 3)
    assert score("mae", y, p) == pytest.approx(2 / 3)
    # residual sum of squares 4, total sum of squares 2
    assert score("r2", y, p) == pytest.approx(-1.0)
    # log1p of [0, e - 1] is [0, 1]
    assert score("rmsle", [0, math.e - 1], [0, 0]) == pytest.approx(math.sqrt(0.5))


def test_the_pinball_loss_carries_its_level_in_its_name_and_weighs_misses_by_side():
    from iml_ray.metrics.registry import quantile_level

    y, q = np.array([1.0, 2.0, 3.0, 10.0]), np.full(4, 2.0)
    # Under-predictions (y > q) cost the level per unit, over-predictions 1 - level: by hand.
    assert score("pinball_0.9", y, q) == pytest.approx((0.1 * 1 + 0 + 0.9 * 1 + 0.9 * 8) / 4)
    assert score("pinball_0.5", y, q) == pytest.approx(0.5 * skm.mean_absolute_error(y, q))
    for name in ("pinball_0.9", "Pinball loss 0.9", "quantile_loss@90", "quantile-0.9", "pinball_90"):
        assert get_metric(name).name == "pinball_0.9" and quantile_level(name) == pytest.approx(0.9)
    metric = get_metric("pinball_0.25")
    assert not metric.higher_is_better and metric.needs == "value" and metric.aps(0.5) == pytest.approx(math.exp(-0.5))
    for bad in ("pinball_1.5", "pinball_0", "quantile_loss_150"):
        with pytest.raises(UnknownMetric, match="pinball_<level>"):
            get_metric(bad)


@pytest.mark.parametrize("text, expected", [
    ("## Evaluation\nScored by the pinball loss at the 90th percentile.", "pinball_0.9"),
    ("## Evaluation\nThe quantile loss (tau = 0.25) of your predictions.", "pinball_0.25"),
    ("## Evaluation\nMean pinball loss, quantile level 0.05.", "pinball_0.05"),
    ("## Evaluation\nThe pinball loss of your predictions.", "pinball_0.5"),
    ("## Evaluation\nMean absolute error. We also report the pinball loss at 0.9.", "mae"),
])
def test_a_pinball_loss_and_its_level_named_in_a_description(text, expected):
    assert find_metric_in_text(text) == expected


def test_rmsle_clips_negative_predictions_at_zero():
    assert score("rmsle", [0.0, 0.0], [-5.0, -0.5]) == pytest.approx(0.0)
    assert score("rmsle", [math.e - 1], [-3.0]) == pytest.approx(1.0)


@pytest.mark.parametrize("bad_truth", [-2.0, -1.0])
def test_rmsle_refuses_true_values_outside_log1p(bad_truth):
    with pytest.raises(ValueError, match="RMSLE"):
        score("rmsle", [1.0, bad_truth], [1.0, 1.0])


def test_accuracy_and_balanced_accuracy():
    assert score("accuracy", ["a", "b", "b", "a"], ["a", "b", "a", "a"]) == pytest.approx(0.75)
    # always predicting the majority: accuracy 3/4, but recall 1 and 0 average to 1/2
    assert score("accuracy", [0, 0, 0, 1], [0, 0, 0, 0]) == pytest.approx(0.75)
    assert score("balanced_accuracy", [0, 0, 0, 1], [0, 0, 0, 0]) == pytest.approx(0.5)


def test_binary_auc():
    # of the 4 positive/negative pairs, 3 are ranked right
    assert score("auc", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert score("auc", [False, False, True, True], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_auc_is_refused_when_it_is_undefined():
    with pytest.raises(ValueError, match="single class"):
        score("auc", [1, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match="0/1"):
        score("auc", ["no", "yes"], [0.2, 0.9])


def test_multiclass_auc_is_sklearns_one_vs_rest_macro_in_any_column_order():
    rng = np.random.default_rng(0)
    y = np.array(["a", "b", "c"] * 4)
    proba = rng.random((12, 3))
    proba /= proba.sum(axis=1, keepdims=True)
    expected = skm.roc_auc_score(y, proba, multi_class="ovr", labels=["a", "b", "c"])
    assert score("auc", y, proba, ["a", "b", "c"]) == pytest.approx(expected)
    # the same probabilities with their columns in another order
    assert score("auc", y, proba[:, [2, 0, 1]], ["c", "a", "b"]) == pytest.approx(expected)
    # probabilities rounded in a CSV no longer sum to one; still scored, same ranking
    assert score("auc", y, np.round(proba, 2) * 0.99, ["a", "b", "c"]) == pytest.approx(
        score("auc", y, np.round(proba, 2), ["a", "b", "c"]))


def test_multiclass_auc_needs_every_class_in_the_truth():
    with pytest.raises(ValueError, match="no true rows"):
        score("auc", ["a", "b"], [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]], ["a", "b", "c"])


def test_binary_logloss():
    assert score("logloss", [1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert score("logloss", [1, 0], [0.9, 0.2]) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)
    # a certain mistake is clipped to 1e-15, not an infinite loss
    assert score("logloss", [1], [0.0]) == pytest.approx(-math.log(1e-15))


def test_multiclass_logloss_clips_renormalises_and_follows_the_classes_order():
    uniform = np.full((2, 3), 1 / 3)
    assert score("logloss", ["x", "z"], uniform, ["x", "y", "z"]) == pytest.approx(math.log(3))
    # rows of 2s are clipped to just under 1 and renormalised to 1/3 each
    assert score("logloss", ["x", "z"], np.full((2, 3), 2.0), ["x", "y", "z"]) == pytest.approx(math.log(3))
    # columns in the order of `classes`, not sorted: sklearn alone would read them as a, b, c
    proba = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.2, 0.5]]
    expected = -(math.log(0.7) + math.log(0.6) + math.log(0.5)) / 3
    assert score("logloss", ["c", "a", "b"], proba, ["c", "a", "b"]) == pytest.approx(expected)
    # a class absent from the truth still has its column
    assert score("logloss", ["a", "a"], [[0.5, 0.25, 0.25]] * 2, ["a", "b", "c"]) == pytest.approx(math.log(2))


def test_multiclass_logloss_refuses_unknown_labels_and_wrong_widths():
    with pytest.raises(ValueError, match="not among the classes"):
        score("logloss", ["a", "q"], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"])
    with pytest.raises(ValueError, match="3 probability columns for 2 classes"):
        score("logloss", ["a", "b"], np.full((2, 3), 1 / 3), ["a", "b"])


def test_binary_f1_scores_the_positive_class():
    y, p = [1, 1, 1, 0], [1, 1, 0, 0]
    # positive 1: tp 2, fp 0, fn 1 → 4/5; positive 0: tp 1, fp 1, fn 0 → 2/3
    assert score("f1", y, p, [0, 1]) == pytest.approx(0.8)
    assert score("f1", y, p, [1, 0]) == pytest.approx(2 / 3)
    assert score("f1", y, p) == pytest.approx(0.8)   # no classes: the larger label
    assert score("f1", ["yes", "yes", "yes", "no"], ["yes", "yes", "no", "no"]) == pytest.approx(0.8)
    # larger by value, not by text ("10" < "2" as text)
    assert score("f1", ["10", "10", "10", "2"], ["10", "10", "2", "2"]) == pytest.approx(0.8)


def test_f1_is_macro_beyond_two_classes_and_f1_macro_always():
    y, p = ["a", "b", "c", "a"], ["a", "b", "b", "c"]
    # per class F1: a 2/3, b 2/3, c 0
    assert score("f1", y, p) == pytest.approx(4 / 9)
    assert score("f1_macro", y, p) == pytest.approx(4 / 9)
    # binary: the mean of the two classes' F1 (4/5 and 2/3)
    assert score("f1_macro", [1, 1, 1, 0], [1, 1, 0, 0], [0, 1]) == pytest.approx(11 / 15)


def test_qwk_is_quadratically_weighted_kappa():
    # two classes: observed disagreement 1 against 2 expected by chance
    assert score("qwk", [0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.5)
    # three classes: unweighted kappa would be 0.5; the far miss (2 → 0) weighs 4
    assert score("qwk", [0, 1, 2], [0, 1, 0]) == pytest.approx(0.0)
    assert score("qwk", [0, 1, 2], [0, 1, 0]) != pytest.approx(skm.cohen_kappa_score([0, 1, 2], [0, 1, 0]))
    assert score("qwk", [0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)


def test_qwk_orders_numeric_string_labels_by_value():
    assert score("qwk", [1, 2, 10], [1, 2, 2]) == pytest.approx(2 / 3)
    assert score("qwk", ["1", "2", "10"], ["1", "2", "2"]) == pytest.approx(2 / 3)


def test_gini_is_twice_the_auc_minus_one():
    y_true, y_pred = np.array([0, 0, 1, 1, 0, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.7])
    assert score("gini", y_true, y_pred) == pytest.approx(2 * skm.roc_auc_score(y_true, y_pred) - 1)
    assert score("gini", y_true, 1 - y_pred) == pytest.approx(-score("gini", y_true, y_pred))


def test_pearson_and_spearman_correlations():
    from scipy import stats

    rng = np.random.default_rng(0)
    y_true = rng.normal(size=40)
    y_pred = np.round(y_true + rng.normal(scale=0.8, size=40), 1)        # rounding makes ties for the ranks
    assert score("pearson", y_true, y_pred) == pytest.approx(stats.pearsonr(y_true, y_pred)[0])
    assert score("spearman", y_true, y_pred) == pytest.approx(stats.spearmanr(y_true, y_pred)[0])
    assert score("spearman", y_true, np.exp(y_true)) == pytest.approx(1.0)   # ranks only
    assert score("pearson", y_true, np.full(40, 3.0)) == 0.0                 # constant: no correlation, not NaN
    truth, pred = np.column_stack([y_true, -y_true]), np.column_stack([y_pred, y_true])
    assert score("mean_spearman", truth, pred) == pytest.approx((stats.spearmanr(y_true, y_pred)[0] - 1.0) / 2)


def test_mcc():
    # tp 1, fn 1, tn 2, fp 0 → 2 / sqrt(1·2·2·3)
    assert score("mcc", [1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(1 / math.sqrt(3))
    assert score("mcc", [0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


@pytest.mark.parametrize("name, y_true, y_pred", [
    ("rmse", [1.0, 2.0], [1.0, float("nan")]),
    ("auc", [0, 1], [0.3, float("nan")]),
    ("accuracy", ["a", "b"], ["a", None]),
    ("accuracy", [1, 0], [1.0, float("nan")]),
])
def test_nan_predictions_are_refused(name, y_true, y_pred):
    with pytest.raises(ValueError, match="predictions contain NaN"):
        score(name, y_true, y_pred)


def test_empty_and_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="no rows"):
        score("rmse", [], [])
    with pytest.raises(ValueError, match="1 predictions for 2 true values"):
        score("rmse", [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="1 predictions for 2 true values"):
        score("accuracy", ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="not numeric"):
        score("mae", [1.0, 2.0], ["one", "two"])


# ------------------------------------------------------------------ registry


def test_the_registry_holds_the_canonical_metrics():
    assert sorted(METRICS) == sorted(CANONICAL + tuple(COLUMN_WISE))
    assert all(isinstance(m, Metric) and m.name == name for name, m in METRICS.items())


@pytest.mark.parametrize("name", CANONICAL)
def test_directions_needs_and_problem_types(name):
    metric = get_metric(name)
    assert metric.higher_is_better is (name not in LOSSES)
    expected_needs = ("proba" if name in ("auc", "logloss", "balanced_logloss", "gini")
                      else "value" if name in ("rmse", "rmsle", "mae", "mse", "r2", "mape", "smape", "pearson", "spearman")
                      else "label")
    assert metric.needs == expected_needs
    expected_types = ("regression",) if expected_needs == "value" else ("binary", "multiclass")
    assert metric.problem_types == expected_types
    assert all(phrase == phrase.lower() for phrase in metric.phrases)


@pytest.mark.parametrize("name, normalisation", [
    *[(n, "identity") for n in ("auc", "accuracy", "balanced_accuracy", "f1", "f1_macro", "f1_weighted", "r2")],
    *[(n, "exp_neg") for n in LOSSES],
    ("qwk", "half_shift"), ("mcc", "half_shift"), ("gini", "half_shift"), ("pearson", "half_shift"),
    ("spearman", "half_shift"),
])
def test_each_metric_has_its_aps_normalisation(name, normalisation):
    assert get_metric(name).normalisation == normalisation


def test_aps_identity_is_the_score_clipped_to_the_unit_interval():
    assert get_metric("auc").aps(0.9) == pytest.approx(0.9)
    assert get_metric("accuracy").aps(1.0) == pytest.approx(1.0)
    assert get_metric("r2").aps(-3.0) == 0.0
    assert get_metric("r2").aps(1.5) == 1.0


def test_aps_of_a_loss_is_exp_of_minus_the_loss():
    assert get_metric("rmse").aps(1.0) == pytest.approx(math.exp(-1))
    assert get_metric("logloss").aps(math.log(2)) == pytest.approx(0.5)
    assert get_metric("mae").aps(0.0) == pytest.approx(1.0)


def test_aps_of_a_minus_one_to_one_metric_is_shifted_by_half():
    assert get_metric("mcc").aps(0.5) == pytest.approx(0.75)
    assert get_metric("qwk").aps(-1.0) == pytest.approx(0.0)
    assert get_metric("qwk").aps(0.0) == pytest.approx(0.5)
    assert get_metric("mcc").aps(1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("name", CANONICAL)
def test_aps_of_a_failure_is_zero(name):
    assert get_metric(name).aps(None) == 0.0
    assert get_metric(name).aps(float("nan")) == 0.0


@pytest.mark.parametrize("alias, canonical", [
    ("roc_auc", "auc"), ("AUC_ROC", "auc"), ("ROC AUC", "auc"),
    ("log_loss", "logloss"), ("Log Loss", "logloss"), ("cross_entropy", "logloss"), ("cross-entropy", "logloss"),
    ("RMSE", "rmse"), ("root_mean_squared_error", "rmse"), ("Root Mean Squared Error", "rmse"),
    ("root_mean_squared_log_error", "rmsle"), ("mean_absolute_error", "mae"), ("mean_squared_error", "mse"),
    ("R^2", "r2"), ("r_squared", "r2"),
    ("acc", "accuracy"), ("Balanced Accuracy", "balanced_accuracy"),
    ("f1_score", "f1"), ("macro_f1", "f1_macro"), ("F1 Macro", "f1_macro"),
    ("quadratic_weighted_kappa", "qwk"), ("kappa", "qwk"), ("QWK", "qwk"),
    ("matthews", "mcc"), ("matthews_corrcoef", "mcc"),
    ("weighted_f1", "f1_weighted"), ("Weighted F1", "f1_weighted"), ("balanced log loss", "balanced_logloss"),
    ("normalized_gini", "gini"), ("Normalized Gini", "gini"), ("pearsonr", "pearson"), ("Spearman rho", "spearman"),
])
def test_aliases_resolve_case_insensitively(alias, canonical):
    assert get_metric(alias).name == canonical


@pytest.mark.parametrize("name", CANONICAL)
def test_canonical_names_resolve_to_themselves(name):
    assert get_metric(name).name == name
    assert get_metric(name.upper()).name == name


def test_unknown_metric_lists_the_known_names():
    with pytest.raises(UnknownMetric) as info:
        get_metric("foo")
    assert isinstance(info.value, ValueError)
    assert str(info.value) == ("unknown metric 'foo'; known metrics: accuracy, auc, balanced_accuracy, balanced_logloss, "
                               "f1, f1_macro, f1_weighted, gini, logloss, mae, mape, mcc, mcrmse, mean_auc, mean_logloss, "
                               "mean_mae, mean_rmsle, mean_spearman, mse, pearson, qwk, r2, rmse, rmsle, smape, spearman, "
                               "pinball_<level> (e.g. pinball_0.9), map@<k> (e.g. map@3)")


# ------------------------------------------------------------------ descriptions


@pytest.mark.parametrize("text, expected", [
    # Kaggle house prices: RMSE between logarithms ranks like RMSLE, so it is scored as rmsle
    ("Submissions are evaluated on Root-Mean-Squared-Error (RMSE) between the logarithm of the predicted value and "
     "the logarithm of the observed sales price. (Taking logs means that errors in predicting expensive houses and "
     "cheap houses will affect the result equally.)", "rmsle"),
    ("Submissions are evaluated on RMSE between the log of the predicted and the log of the actual count.", "rmsle"),
    ("Submissions are evaluated on area under the ROC curve between the predicted probability and the observed "
     "target.", "auc"),
    ("Submissions are evaluated using the multi-class logarithmic loss. Each image has been labeled with one true "
     "class.", "logloss"),
    ("Your score is the percentage of passengers you correctly predict. This is known as accuracy.", "accuracy"),
    ("The evaluation metric for this competition is Root Mean Squared Logarithmic Error.", "rmsle"),
    ("Submissions are scored on the root mean squared error.", "rmse"),
    ("Submissions are scored on the root mean square error.", "rmse"),
    ("Submissions are scored on the mean squared error between prediction and target.", "mse"),
    ("Submissions are evaluated on Mean Absolute Error (MAE) between the predicted loss and the actual loss.", "mae"),
    ("Submissions are scored based on the quadratic weighted kappa, which measures the agreement between two "
     "ratings.", "qwk"),
    ("Submissions will be evaluated using Cohen's kappa.", "qwk"),
    ("Submissions are evaluated using the Matthews correlation coefficient (MCC).", "mcc"),
    ("Submissions are evaluated on the macro F1 score.", "f1_macro"),
    ("Submissions are evaluated on the F1 score between the predicted and the expected answers.", "f1"),
    ("Submissions are evaluated on the coefficient of determination.", "r2"),
    ("The leaderboard shows R^2.", "r2"),
    ("Models are ranked by their R2 on the test set.", "r2"),
    ("Submissions are evaluated on balanced accuracy.", "balanced_accuracy"),
    ("The metric is the binary cross-entropy of your probabilities.", "logloss"),
    ("The metric is ROC AUC.", "auc"),
    ("Submissions will be evaluated using the Normalized Gini Coefficient.", "gini"),
    ("Submissions are evaluated on the Pearson correlation coefficient between the predicted and the actual scores.",
     "pearson"),
    ("Submissions are evaluated on the mean column-wise Spearman's correlation coefficient.", "mean_spearman"),
    ("The score is Spearman's rank correlation between predictions and the truth.", "spearman"),
    ("SUBMISSIONS ARE EVALUATED ON AREA UNDER THE ROC CURVE.", "auc"),
    ("Nothing about scoring here.", None),
    ("", None),
])
def test_metric_named_in_a_description(text, expected):
    assert find_metric_in_text(text) == expected


def test_phrases_match_whole_words_only():
    # "mae" in Maestro, "auc" in Auckland, "mse" in Rimsey, "roc" in process
    assert find_metric_in_text("Predict prices of Maestro guitars sold in Auckland by Rimsey's process.") is None


def test_a_phrase_may_span_a_line_break():
    assert find_metric_in_text("Submissions are evaluated on root mean\nsquared error.") == "rmse"


def test_the_earliest_metric_wins():
    assert find_metric_in_text("Submissions are evaluated on accuracy; we also report the F1 score.") == "accuracy"
    assert find_metric_in_text("Submissions are evaluated on F1; the baseline accuracy is 0.7.") == "f1"


def test_the_longest_phrase_wins_at_the_same_position():
    assert find_metric_in_text("The metric is F1 macro.") == "f1_macro"
    assert find_metric_in_text("The metric is F1 score (macro).") == "f1_macro"


def test_evaluation_section_wins_over_earlier_mentions():
    text = ("# Overview\nEarlier work reached 90% accuracy on this data.\n\n## Evaluation\n"
            "Submissions are scored on log loss.\n\n## Data\nSee files.")
    assert find_metric_in_text(text) == "logloss"


def test_evaluation_section_with_an_underlined_heading():
    text = ("Overview\n========\nA baseline reaches an RMSE of 3.\n\nEvaluation Metric\n-----------------\n"
            "We score with mean absolute error.\n")
    assert find_metric_in_text(text) == "mae"


def test_evaluation_section_ends_at_the_next_heading_of_its_level():
    # the section names no metric, so the whole text decides: its earliest metric is RMSE, not the Appendix's MAE
    text = "# Intro\nOld results in RMSE.\n## Evaluation\nDetails follow.\n### Notes\nNone.\n## Appendix\nMAE tables."
    assert find_metric_in_text(text) == "rmse"
    text = "# Intro\nOld results in RMSE.\n## Evaluation\nDetails follow.\n### Notes\nScored by MAE.\n## Appendix\n."
    assert find_metric_in_text(text) == "mae"


# ------------------------------------------------------------------ submissions


def _fmt(kind, classes=(), positive=None, columns=("target",)):
    return SubmissionFormat("id", tuple(columns), kind, tuple(classes), positive)


def test_label_submission_with_string_labels_against_int_truth():
    truth = pd.Series([0, 1, 1, 0])
    frame = pd.DataFrame({"target": ["0", "1", "0", "0"]})
    assert score_predictions("accuracy", truth, frame, _fmt("label", (0, 1), 1)) == pytest.approx(0.75)


def test_label_submission_with_other_spellings_of_the_same_labels():
    bools = pd.Series([True, False, True, False])
    frame = pd.DataFrame({"target": ["True", "false", "True", "True"]})
    assert score_predictions("accuracy", bools, frame, _fmt("label", (False, True), True)) == pytest.approx(0.75)
    # a float target (train.csv had a missing value) against int predictions
    floats = pd.Series([1.0, 2.0, 3.0])
    frame = pd.DataFrame({"target": [1, 2, 2]})
    assert score_predictions("accuracy", floats, frame, _fmt("label", (1.0, 2.0, 3.0))) == pytest.approx(2 / 3)


def test_label_submission_f1_scores_the_formats_positive_class():
    truth = pd.Series([1, 1, 1, 0])
    frame = pd.DataFrame({"target": [1, 1, 0, 0]})
    assert score_predictions("f1", truth, frame, _fmt("label", (0, 1), 1)) == pytest.approx(0.8)
    assert score_predictions("f1", truth, frame, _fmt("label", (0, 1), 0)) == pytest.approx(2 / 3)


def test_label_submission_qwk_orders_classes_read_back_as_text_by_value():
    truth = pd.Series([1, 2, 10])
    frame = pd.DataFrame({"target": ["1", "2", "2"]})
    assert score_predictions("qwk", truth, frame, _fmt("label", (1, 2, 10))) == pytest.approx(2 / 3)


def test_label_submission_scored_by_a_probability_metric():
    truth = pd.Series(["no", "no", "yes", "yes"])
    frame = pd.DataFrame({"target": ["no", "yes", "yes", "yes"]})
    # hard scores 0, 1, 1, 1: of the 4 pairs, 2 right and 2 ties
    assert score_predictions("auc", truth, frame, _fmt("label", ("no", "yes"), "yes")) == pytest.approx(0.75)
    # multiclass: one-hot rows; one wrong row costs -log(1e-15)
    truth = pd.Series(["a", "b", "c"])
    frame = pd.DataFrame({"target": ["a", "b", "a"]})
    expected = -math.log(1e-15) / 3
    fmt = _fmt("label", ("a", "b", "c"))
    assert score_predictions("logloss", truth, frame, fmt) == pytest.approx(expected, rel=1e-6)


def test_probability_submission_for_auc_and_for_accuracy():
    truth = pd.Series(["no", "no", "yes", "yes"])
    frame = pd.DataFrame({"target": [0.1, 0.4, 0.35, 0.8]})
    fmt = _fmt("probability", ("no", "yes"), "yes")
    assert score_predictions("auc", truth, frame, fmt) == pytest.approx(0.75)
    # labels at p >= 0.5: no, no, no, yes
    assert score_predictions("accuracy", truth, frame, fmt) == pytest.approx(0.75)
    # exactly 0.5 is the positive class
    assert score_predictions("accuracy", pd.Series(["no", "yes"]), pd.DataFrame({"target": [0.49, 0.5]}),
                             fmt) == pytest.approx(1.0)


def test_probability_submission_is_the_probability_of_the_positive_class():
    expected = -(math.log(0.8) + math.log(0.9)) / 2
    truth = pd.Series([0, 1])
    assert score_predictions("logloss", truth, pd.DataFrame({"target": [0.2, 0.9]}),
                             _fmt("probability", (0, 1), 1)) == pytest.approx(expected)
    # the task's positive class is 0: the column holds P(0)
    assert score_predictions("logloss", truth, pd.DataFrame({"target": [0.8, 0.1]}),
                             _fmt("probability", (0, 1), 0)) == pytest.approx(expected)


def test_class_probabilities_for_logloss_in_column_order():
    truth = pd.Series(["a", "b", "c"])
    # the sample's column order (c, a, b); classes follow it
    frame = pd.DataFrame({"c": [0.1, 0.3, 0.5], "a": [0.7, 0.1, 0.2], "b": [0.2, 0.6, 0.3]})
    fmt = _fmt("class_probabilities", ("c", "a", "b"), columns=("c", "a", "b"))
    expected = -(math.log(0.7) + math.log(0.6) + math.log(0.5)) / 3
    assert score_predictions("logloss", truth, frame, fmt) == pytest.approx(expected)
    assert score_predictions("accuracy", truth, frame, fmt) == pytest.approx(1.0)
    assert score_predictions("auc", truth, frame, fmt) == pytest.approx(
        skm.roc_auc_score(truth, frame[["a", "b", "c"]].to_numpy(), multi_class="ovr", labels=["a", "b", "c"]))


def test_class_probabilities_with_int_classes_named_by_text_columns():
    truth = pd.Series([2, 0, 1])
    frame = pd.DataFrame({"0": [0.2, 0.5, 0.25], "1": [0.3, 0.25, 0.5], "2": [0.5, 0.25, 0.25]})
    fmt = _fmt("class_probabilities", (0, 1, 2), columns=("0", "1", "2"))
    assert score_predictions("logloss", truth, frame, fmt) == pytest.approx(math.log(2))


def test_binary_class_probabilities_use_the_positive_column():
    truth = pd.Series(["no", "no", "yes", "yes"])
    frame = pd.DataFrame({"yes": [0.1, 0.4, 0.35, 0.8], "no": [0.9, 0.6, 0.65, 0.2]})
    fmt = _fmt("class_probabilities", ("yes", "no"), "yes", columns=("yes", "no"))
    assert score_predictions("auc", truth, frame, fmt) == pytest.approx(0.75)


def test_value_submission():
    truth = pd.Series([1.0, 2.0])
    assert score_predictions("mae", truth, pd.DataFrame({"target": [1.5, 2.0]}), _fmt("value")) == pytest.approx(0.25)
    assert score_predictions(get_metric("rmse"), truth, pd.DataFrame({"target": ["1", "4"]}),
                             _fmt("value")) == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize("frame, fmt, message", [
    (pd.DataFrame({"other": [1.0, 2.0]}), _fmt("value"), "lack column"),
    (pd.DataFrame({"target": [1.0, None]}), _fmt("value"), "NaN"),
    (pd.DataFrame({"target": [1.0, 2.0, 3.0]}), _fmt("value"), "3 prediction rows for 2 true values"),
    (pd.DataFrame({"target": ["1.0", "high"]}), _fmt("value"), "not numeric"),
    (pd.DataFrame({"target": ["0.3", "high"]}), _fmt("probability", (0, 1), 1), "not numeric"),
    (pd.DataFrame({"target": [1, 0]}), _fmt("label", (0, 1), 1), "regression values"),
])
def test_invalid_predictions_are_refused_in_one_line(frame, fmt, message):
    metric = "rmse" if fmt.kind in ("value", "label") else "auc"
    with pytest.raises(ValueError, match=message) as info:
        score_predictions(metric, pd.Series([1, 0]), frame, fmt)
    assert "\n" not in str(info.value)


def test_unknown_metric_name_is_refused_when_scoring():
    with pytest.raises(UnknownMetric):
        score_predictions("bogus", pd.Series([1.0]), pd.DataFrame({"target": [1.0]}), _fmt("value"))


@pytest.mark.parametrize("name, unit", COLUMN_WISE.items())
def test_column_wise_metrics_average_their_unit_over_target_columns(name, unit):
    from iml_ray.metrics.registry import column_wise

    metric, base = get_metric(name), get_metric(unit)
    assert metric.unit == unit and column_wise(unit) is metric and column_wise(name) is metric
    assert (metric.higher_is_better, metric.needs, metric.problem_types, metric.normalisation) == \
        (base.higher_is_better, base.needs, base.problem_types, base.normalisation)
    rng = np.random.default_rng(0)
    if base.needs == "proba":
        truth = rng.integers(0, 2, size=(60, 3))
        pred = np.clip(truth * 0.6 + rng.random((60, 3)) * 0.4, 0, 1)
    else:
        truth = rng.random((60, 3)) * 10
        pred = truth + rng.normal(size=(60, 3))
    expected = np.mean([base.score(truth[:, j], pred[:, j]) for j in range(3)])
    assert metric.score(truth, pred) == pytest.approx(expected)
    assert metric.aps(expected) == pytest.approx(base.aps(expected))
    with pytest.raises(ValueError, match="one column per target"):
        metric.score(truth[:, 0], pred[:, 0])


@pytest.mark.parametrize("text, expected", [
    ("Submissions are evaluated on the mean column-wise ROC AUC.", "mean_auc"),
    ("The score is the RMSLE averaged over the two targets.", "mean_rmsle"),
    ("Scored by MCRMSE, the mean columnwise root mean squared error.", "mcrmse"),
    ("Submissions are evaluated on ROC AUC.", "auc"),
])
def test_descriptions_name_column_wise_metrics(text, expected):
    from iml_ray.metrics.in_description import find_metric_in_text

    assert find_metric_in_text(text) == expected


def test_percentage_errors_as_forecasting_competitions_score_them():
    from sklearn.metrics import mean_absolute_percentage_error

    truth, pred = np.array([1.0, 2.0, 4.0, 10.0]), np.array([1.1, 1.5, 4.0, 13.0])
    assert score("mape", truth, pred) == pytest.approx(mean_absolute_percentage_error(truth, pred))
    expected = np.mean(np.abs(pred - truth) / ((np.abs(truth) + np.abs(pred)) / 2))
    assert score("smape", truth, pred) == pytest.approx(expected)
    assert score("smape", np.array([0.0, 2.0]), np.array([0.0, 2.0])) == 0.0       # a pair of zeros is no error
    with pytest.raises(ValueError, match="MAPE is undefined when a true value is 0"):
        score("mape", np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    from iml_ray.metrics.in_description import find_metric_in_text

    assert find_metric_in_text("Scored by the symmetric mean absolute percentage error (SMAPE).") == "smape"
    assert find_metric_in_text("Evaluated on the mean absolute percentage error.") == "mape"


def test_weighted_f1_weighs_each_class_by_its_true_rows():
    from sklearn.metrics import f1_score

    truth = np.array(["a"] * 6 + ["b"] * 3 + ["c"])
    pred = np.array(["a"] * 5 + ["b"] * 2 + ["b", "c", "a"])
    assert score("f1_weighted", truth, pred) == pytest.approx(f1_score(truth, pred, average="weighted"))
    per_class = f1_score(truth, pred, average=None, labels=["a", "b", "c"])
    assert score("f1_weighted", truth, pred) == pytest.approx((6 * per_class[0] + 3 * per_class[1] + per_class[2]) / 10)
    assert score("f1_weighted", truth, pred) != pytest.approx(score("f1_macro", truth, pred))


def test_balanced_logloss_gives_each_class_the_same_weight():
    """ICR's balanced log loss: the mean over classes of each class's mean -log p, whatever the class counts."""
    truth = np.array([0, 0, 0, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6])
    expected = (-(np.log(0.9) + np.log(0.8) + np.log(0.7)) / 3 - np.log(0.6)) / 2
    assert score("balanced_logloss", truth, p) == pytest.approx(expected)
    assert score("balanced_logloss", truth, p) != pytest.approx(score("logloss", truth, p))
    # Several classes: probability columns in `classes` order, renormalised like log loss.
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.5, 0.5, 0.0]])
    labels = np.array(["x", "z", "y"])
    expected = np.mean([-np.log(0.7), -np.log(0.6), -np.log(0.5)])
    assert score("balanced_logloss", labels, proba, ["x", "y", "z"]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("text, expected", [
    ("Submissions are evaluated using a balanced logarithmic loss.", "balanced_logloss"),
    ("The metric is the weighted F1 score over the classes.", "f1_weighted"),
    ("Scored on the F1 score (weighted) of the labels.", "f1_weighted"),
])
def test_weighted_variants_named_in_a_description(text, expected):
    assert find_metric_in_text(text) == expected
