"""The metric registry: the project's one implementation of every metric.

Validation scores (the Evaluator) and benchmark grades (benchmarks/grade.py)
both come from here, so a candidate is chosen by the same number it is graded
on. Each metric knows its direction, what predictions it needs (class labels,
probabilities or regression values), the problem types it fits, the phrases
that name it in a competition description, and its APS normalisation (the iML
paper's Average Performance Score): metrics in [0, 1] as they are, losses
exp(-score), [-1, 1] metrics (score + 1) / 2, and a failure 0.

The functions that compute each metric are in `metrics/scores.py`. Which metric a
description names is read in `metrics/in_description.py`; how a submission-format
frame is turned back into predictions and scored, in `metrics/predictions.py`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:
    import numpy as np

from iml_ray.metrics.scores import (
    _auc,
    _balanced_logloss,
    _f1,
    _f1_macro,
    _f1_weighted,
    _gini,
    _ignoring_classes,
    _logloss,
    _mape,
    _pearson,
    _qwk,
    _rmsle,
    _smape,
    _spearman,
    mean_average_precision,
    pinball,
    sklearn_metric,
)
from iml_ray.metrics.submission import PROBLEM_TYPES

CLASSIFICATION = ("binary", "multiclass")
REGRESSION = ("regression",)
NEEDS = ("label", "proba", "value")
NORMALISATIONS = ("identity", "exp_neg", "half_shift")


class UnknownMetric(ValueError):
    """A metric name that is neither a canonical name nor a known alias."""


@dataclass(frozen=True)
class Metric:
    """One metric. What `score` takes depends on `needs`:

    value  y_true and y_pred are numbers.
    label  y_true and y_pred are class labels of any type, compared as given.
    proba  binary: y_true is 0/1 (1 = the positive class), y_pred the positive
           class's probability (1-D); multiclass: y_true holds labels and y_pred
           is an n x k matrix whose columns follow `classes`.
    """

    name: str
    higher_is_better: bool
    needs: Literal["label", "proba", "value"]
    problem_types: tuple[str, ...]   # subset of PROBLEM_TYPES
    normalisation: Literal["identity", "exp_neg", "half_shift"]
    phrases: tuple[str, ...]         # lower-case regexes naming it in a description
    compute: Callable[[np.ndarray, np.ndarray, list | None], float] = field(repr=False, compare=False)
    # A column-wise metric (several targets) is `unit` scored on each target column and averaged.
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.needs not in NEEDS:
            raise ValueError(f"metric {self.name}: needs must be one of {NEEDS}, not {self.needs!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"metric {self.name}: normalisation must be one of {NORMALISATIONS}")
        if not set(self.problem_types) <= set(PROBLEM_TYPES):
            raise ValueError(f"metric {self.name}: problem types must come from {PROBLEM_TYPES}")

    def score(self, y_true: Any, y_pred: Any, classes: Any = None) -> float:
        """The metric on true values and predictions; ValueError when they cannot be scored.

        A column-wise metric takes n x k true values and predictions (one column per target)."""
        import numpy as np
        import pandas as pd
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if self.unit is not None:
            if y_true.ndim != 2 or y_pred.shape != y_true.shape:
                raise ValueError(f"{self.name} needs one column per target in both the true values and the "
                                 f"predictions, got shapes {y_true.shape} and {y_pred.shape}")
            unit = METRICS[self.unit]
            return float(np.mean([unit.score(y_true[:, j], y_pred[:, j], classes) for j in range(y_true.shape[1])]))
        if y_true.ndim != 1:
            raise ValueError(f"true values must be one-dimensional, got shape {y_true.shape}")
        if len(y_true) == 0:
            raise ValueError("no rows to score")
        if y_pred.ndim == 0 or len(y_pred) != len(y_true):
            raise ValueError(f"{y_pred.size if y_pred.ndim == 0 else len(y_pred)} predictions "
                             f"for {len(y_true)} true values")
        if self.needs == "label":
            if pd.isna(y_pred).any():
                raise ValueError("predictions contain NaN")
        else:
            y_pred = _as_float(y_pred, "predictions")
            if np.isnan(y_pred).any():
                raise ValueError("predictions contain NaN")
        if self.needs == "value":
            y_true = _as_float(y_true, "true values")
            if np.isnan(y_true).any():
                raise ValueError("true values contain NaN")
        return float(self.compute(y_true, y_pred, None if classes is None else list(classes)))

    def aps(self, score: float | None) -> float:
        """The score on the APS scale: 0 (worst or failed) to 1 (perfect)."""
        if score is None or not math.isfinite(score):
            return 0.0
        if self.normalisation == "exp_neg":
            return math.exp(-max(float(score), 0.0))
        if self.normalisation == "half_shift":
            return _clip_unit((float(score) + 1.0) / 2.0)
        return _clip_unit(float(score))


def _clip_unit(value: float) -> float:
    return min(1.0, max(0.0, value))


def _as_float(values: np.ndarray, what: str) -> np.ndarray:
    try:
        return values.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{what} are not numeric") from None


# The phrases are matched case-insensitively and on word boundaries, after runs
# of whitespace are collapsed to one space (see find_metric_in_text).
_LOG_WORD = r"log(?:arithm(?:ic|s)?|s|1p)?(?![ _-]?loss)"

_REGISTRY = (
    Metric("auc", True, "proba", CLASSIFICATION, "identity",
           (r"area under (?:the )?(?:receiver operating characteristics? )?(?:\(?roc\)? )?curve",
            r"roc[ _-]?auc", r"auc[ _-]?roc", r"auroc", r"auc", r"roc"),
           _auc),
    Metric("logloss", False, "proba", CLASSIFICATION, "exp_neg",
           (r"(?:multi[ -]?class )?(?:logarithmic|log)[ _-]?loss", r"(?:binary |categorical )?cross[ _-]?entropy",
            r"negative log[ -]?likelihood"),
           _logloss),
    Metric("rmsle", False, "value", REGRESSION, "exp_neg",
           (r"root[ -]mean[ -]squared?[ -]log(?:arithmic)?[ -]error", r"rmsle",
            # "RMSE between the logarithm of the predicted and the observed price"
            # (Kaggle house prices) is RMSLE: the ranking is the same.
            rf"root[ -]mean[ -]squared?[ -]error[^.]{{0,80}}\b{_LOG_WORD}", rf"rmse[^.]{{0,80}}\b{_LOG_WORD}"),
           _rmsle),
    Metric("rmse", False, "value", REGRESSION, "exp_neg",
           (r"root[ -]mean[ -]squared?[ -]error", r"rmse"),
           _ignoring_classes(sklearn_metric("root_mean_squared_error"))),
    Metric("mae", False, "value", REGRESSION, "exp_neg",
           (r"mean[ -]absolute[ -]error", r"mae"),
           _ignoring_classes(sklearn_metric("mean_absolute_error"))),
    Metric("smape", False, "value", REGRESSION, "exp_neg",
           (r"symmetric mean absolute percentage error", r"smape", r"sym(?:metric)?[ -]mape"),
           _smape),
    Metric("mape", False, "value", REGRESSION, "exp_neg",
           (r"(?<!symmetric )mean absolute percentage error", r"mape"),
           _mape),
    Metric("mse", False, "value", REGRESSION, "exp_neg",
           (r"(?<!root )(?<!root-)mean[ -]squared?[ -]error", r"mse"),
           _ignoring_classes(sklearn_metric("mean_squared_error"))),
    Metric("r2", True, "value", REGRESSION, "identity",
           (r"coefficient of determination", r"r[ -]?squared", r"r\^?2", r"r²"),
           _ignoring_classes(sklearn_metric("r2_score"))),
    Metric("accuracy", True, "label", CLASSIFICATION, "identity",
           (r"accuracy",),
           _ignoring_classes(sklearn_metric("accuracy_score"))),
    Metric("balanced_accuracy", True, "label", CLASSIFICATION, "identity",
           (r"balanced[ -]accuracy",),
           _ignoring_classes(sklearn_metric("balanced_accuracy_score"))),
    Metric("f1", True, "label", CLASSIFICATION, "identity",
           (r"f1(?:[ -]?(?:score|measure))?", r"f[ -](?:score|measure)"),
           _f1),
    Metric("f1_macro", True, "label", CLASSIFICATION, "identity",
           (r"macro[ -]?(?:averaged? )?f1(?:[ -]?score)?", r"f1[ -]macro", r"f1(?:[ -]?score)? \(?macro"),
           _f1_macro),
    Metric("f1_weighted", True, "label", CLASSIFICATION, "identity",
           (r"weighted[ -](?:averaged? )?f1(?:[ -]?score)?", r"f1[ -]weighted", r"f1(?:[ -]?score)? \(?weighted"),
           _f1_weighted),
    Metric("balanced_logloss", False, "proba", CLASSIFICATION, "exp_neg",
           (r"(?:class[ -])?balanced (?:logarithmic|log)[ _-]?loss", r"class[ -]weighted (?:logarithmic|log)[ _-]?loss",
            r"balanced cross[ _-]?entropy"),
           _balanced_logloss),
    Metric("qwk", True, "label", CLASSIFICATION, "half_shift",
           (r"quadratic(?:ally)?[ -]weighted[ -](?:cohen['’]?s )?kappa", r"qwk", r"cohen['’]?s?[ -]kappa",
            r"weighted kappa", r"kappa"),
           _qwk),
    Metric("mcc", True, "label", CLASSIFICATION, "half_shift",
           (r"matthews['’]?s?[ -]correlation(?:[ -]coefficient)?", r"mcc"),
           _ignoring_classes(sklearn_metric("matthews_corrcoef"))),
    # Porto Seguro's normalized Gini: 2 AUC - 1, so it ranks submissions as AUC does.
    Metric("gini", True, "proba", CLASSIFICATION, "half_shift",
           (r"normali[sz]ed gini(?:[ -]coefficient)?", r"gini[ -]coefficient", r"gini[ -]score"),
           _gini),
    Metric("pearson", True, "value", REGRESSION, "half_shift",
           (r"pearson['’]?s?(?: product[ -]moment)? correlation(?: coefficient)?", r"pearson['’]?s? r",
            r"pearson correlation"),
           _pearson),
    Metric("spearman", True, "value", REGRESSION, "half_shift",
           (r"spearman['’]?s?(?: rank)?(?:[ -]order)? correlation(?: coefficient)?", r"spearman['’]?s? (?:rho|ρ)"),
           _spearman),
)

# Several targets: each column scored with its unit metric, then averaged (jigsaw's mean column-wise ROC AUC,
# nomad2018's RMSLE averaged over two targets). A task with several targets is scored by the column-wise form of
# whichever metric it names (column_wise()).
_COLUMN_WISE = (
    Metric("mean_auc", True, "proba", CLASSIFICATION, "identity",
           (r"mean column[ -]?wise (?:roc[ _-]?)?auc", r"column[ -]?wise (?:mean )?(?:roc[ _-]?)?auc",
            r"(?:roc[ _-]?)?auc[^.]{0,40}averaged (?:over|across) (?:the |all |each )?(?:columns|labels|targets)",
            r"mean (?:roc[ _-]?)?auc"),
           _auc, unit="auc"),
    Metric("mean_logloss", False, "proba", CLASSIFICATION, "exp_neg",
           (r"mean column[ -]?wise log[ _-]?loss", r"column[ -]?wise log[ _-]?loss"),
           _logloss, unit="logloss"),
    Metric("mean_rmsle", False, "value", REGRESSION, "exp_neg",
           (r"(?:mean|average) (?:column[ -]?wise )?rmsle", r"rmsle[^.]{0,40}averaged (?:over|across)",
            r"column[ -]?wise rmsle"),
           _rmsle, unit="rmsle"),
    Metric("mcrmse", False, "value", REGRESSION, "exp_neg",
           (r"mean column[ -]?wise root[ -]mean[ -]squared?[ -]error", r"mcrmse", r"column[ -]?wise rmse"),
           _ignoring_classes(sklearn_metric("root_mean_squared_error")), unit="rmse"),
    Metric("mean_mae", False, "value", REGRESSION, "exp_neg",
           (r"mean column[ -]?wise (?:mae|mean[ -]absolute[ -]error)", r"column[ -]?wise mae"),
           _ignoring_classes(sklearn_metric("mean_absolute_error")), unit="mae"),
    # Google QUEST: "mean column-wise Spearman's correlation coefficient".
    Metric("mean_spearman", True, "value", REGRESSION, "half_shift",
           (r"mean column[ -]?wise spearman['’]?s?", r"column[ -]?wise (?:mean )?spearman['’]?s?",
            r"spearman['’]?s?[^.]{0,60}averaged (?:over|across) (?:the |all |each )?(?:columns|labels|targets)"),
           _spearman, unit="spearman"),
)
_REGISTRY = _REGISTRY + _COLUMN_WISE
METRICS: dict[str, Metric] = {metric.name: metric for metric in _REGISTRY}


def column_wise(metric: str) -> Metric:
    """The column-wise form of a metric, for a task with several targets (a column-wise metric is its own)."""
    spec = get_metric(metric)
    if spec.unit is not None:
        return spec
    found = next((m for m in _COLUMN_WISE if m.unit == spec.name), None)
    if found is None:
        raise UnknownMetric(f"{spec.name} has no column-wise form for several targets; "
                            f"known: {', '.join(m.name for m in _COLUMN_WISE)}")
    return found

# Keys are lower case with spaces and hyphens turned into underscores.
ALIASES: dict[str, str] = {
    **dict.fromkeys(("roc_auc", "auc_roc", "rocauc", "aucroc", "auroc", "roc", "roc_auc_score",
                     "area_under_curve", "area_under_the_roc_curve"), "auc"),
    **dict.fromkeys(("log_loss", "logarithmic_loss", "cross_entropy", "crossentropy", "binary_crossentropy",
                     "categorical_crossentropy", "binary_logloss", "multi_logloss", "mlogloss", "neg_log_loss"),
                    "logloss"),
    **dict.fromkeys(("root_mean_squared_error", "root_mean_square_error", "neg_root_mean_squared_error"), "rmse"),
    **dict.fromkeys(("root_mean_squared_log_error", "root_mean_squared_logarithmic_error",
                     "root_mean_square_log_error", "neg_root_mean_squared_log_error"), "rmsle"),
    **dict.fromkeys(("mean_absolute_error", "neg_mean_absolute_error", "l1"), "mae"),
    **dict.fromkeys(("mean_squared_error", "mean_square_error", "neg_mean_squared_error", "l2"), "mse"),
    **dict.fromkeys(("mean_absolute_percentage_error", "neg_mean_absolute_percentage_error"), "mape"),
    **dict.fromkeys(("symmetric_mean_absolute_percentage_error", "symmetric_mape"), "smape"),
    **dict.fromkeys(("r^2", "r²", "r_squared", "rsquared", "r2_score", "coefficient_of_determination"), "r2"),
    **dict.fromkeys(("acc", "accuracy_score"), "accuracy"),
    **dict.fromkeys(("balanced_acc", "balanced_accuracy_score"), "balanced_accuracy"),
    **dict.fromkeys(("f1_score", "f_score", "f1_binary"), "f1"),
    **dict.fromkeys(("macro_f1", "f1macro", "macro_f1_score", "f1_macro_score"), "f1_macro"),
    **dict.fromkeys(("weighted_f1", "f1weighted", "weighted_f1_score", "f1_weighted_score"), "f1_weighted"),
    **dict.fromkeys(("balanced_log_loss", "balanced_logarithmic_loss", "class_balanced_logloss",
                     "balanced_cross_entropy"), "balanced_logloss"),
    **dict.fromkeys(("quadratic_weighted_kappa", "quadratic_kappa", "weighted_kappa", "kappa", "cohen_kappa",
                     "cohens_kappa", "cohen's_kappa"), "qwk"),
    **dict.fromkeys(("matthews", "matthews_corrcoef", "matthews_correlation",
                     "matthews_correlation_coefficient"), "mcc"),
    **dict.fromkeys(("mean_column_wise_auc", "mean_columnwise_auc", "columnwise_auc", "mean_roc_auc",
                     "mean_column_wise_roc_auc"), "mean_auc"),
    **dict.fromkeys(("mean_column_wise_rmse", "mean_columnwise_rmse", "columnwise_rmse"), "mcrmse"),
    **dict.fromkeys(("mean_column_wise_rmsle", "columnwise_rmsle", "average_rmsle"), "mean_rmsle"),
    **dict.fromkeys(("mean_column_wise_mae", "columnwise_mae"), "mean_mae"),
    **dict.fromkeys(("normalized_gini", "normalised_gini", "gini_coefficient", "gini_normalized"), "gini"),
    **dict.fromkeys(("pearson_r", "pearsonr", "pearson_correlation", "pearson_correlation_coefficient"), "pearson"),
    **dict.fromkeys(("spearman_r", "spearmanr", "spearman_rho", "spearman_correlation",
                     "spearman_rank_correlation"), "spearman"),
    **dict.fromkeys(("mean_column_wise_spearman", "columnwise_spearman"), "mean_spearman"),
    **dict.fromkeys(("mean_column_wise_logloss", "columnwise_logloss"), "mean_logloss"),
}


# The pinball (quantile) loss carries its level in its name: pinball_0.9, quantile_loss_0.9, pinball@90.
_QUANTILE_NAME = re.compile(r"^(?:pinball|quantile)(?:_loss)?[_@=:]?(0?\.\d+|\d{1,2})$")


def _number_in_name(pattern: re.Pattern[str], name: str) -> str | None:
    """The number a metric's name carries (its level, its k), as the pattern's group reads it; None if no match."""
    match = pattern.match(re.sub(r"[\s-]+", "_", str(name).strip().lower()))
    return None if match is None else match.group(1)


def quantile_level(name: str) -> float | None:
    """The level of a pinball-loss metric's name (0.9 for pinball_0.9 or pinball@90), None for any other metric."""
    number = _number_in_name(_QUANTILE_NAME, name)
    if number is None:
        return None
    level = float(number)
    level = level / 100.0 if level >= 1.0 else level
    return level if 0.0 < level < 1.0 else None


def quantile_metric(level: float) -> Metric:
    """The pinball loss at `level`, named pinball_<level>."""
    return Metric(f"pinball_{level:g}", False, "value", REGRESSION, "exp_neg", (), pinball(level))


# Mean average precision at k ranks up to k labels per row (Kaggle's MAP@3): map@3, map_3, map3.
_MAP_NAME = re.compile(r"^map(?:_at_|@|_)?(\d{1,2})$")


def map_level(name: str) -> int | None:
    """The k of a MAP@k metric's name (3 for map@3), None for any other metric."""
    number = _number_in_name(_MAP_NAME, name)
    return None if number is None or int(number) < 1 else int(number)


def map_metric(k: int) -> Metric:
    """Mean average precision at k over rows with one true label each, named map@<k>: a row scores 1/rank of its
    true label among its (up to k, space-separated) predicted labels, 0 when it is not among them."""
    return Metric(f"map@{k}", True, "label", CLASSIFICATION, "identity", (), mean_average_precision(k))


def get_metric(name: str) -> Metric:
    """The metric for a canonical name or an alias, case-insensitively."""
    if isinstance(name, Metric):
        return name
    key = re.sub(r"[\s-]+", "_", str(name).strip().lower())
    metric = METRICS.get(ALIASES.get(key, key))
    if metric is None and quantile_level(key) is not None:
        return quantile_metric(quantile_level(key))
    if metric is None and map_level(key) is not None:
        return map_metric(map_level(key))
    if metric is None:
        raise UnknownMetric(f"unknown metric '{name}'; known metrics: {', '.join(sorted(METRICS))}, "
                            "pinball_<level> (e.g. pinball_0.9), map@<k> (e.g. map@3)")
    return metric
