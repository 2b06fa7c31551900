"""The metrics' implementations, one function each: (y_true, y_pred, classes) -> score.

What each takes is said by its Metric in `registry.py` (labels, probabilities or values); the checks every
metric shares (lengths, NaN, numeric values) are done there before these are called.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    import numpy as np

from iml_ray.metrics.labels import natural_order


class _SklearnMetrics:
    """sklearn.metrics, imported on first use: it costs most of a second, and every agent's process imports the
    metric registry to name metrics, far more often than to compute one."""

    def __getattr__(self, name: str) -> Any:
        from sklearn import metrics

        return getattr(metrics, name)


skm = _SklearnMetrics()


def sklearn_metric(name: str) -> Callable[..., float]:
    """sklearn.metrics.<name> as a function that imports it when a score is computed (for tables built at import)."""
    def score(*args: Any, **kwargs: Any) -> float:
        return getattr(skm, name)(*args, **kwargs)

    score.__name__ = name
    return score

# Probabilities are clipped to [PROBA_CLIP, 1 - PROBA_CLIP] for log loss, so one
# confident mistake costs about 34.5 instead of an infinite score.
PROBA_CLIP = 1e-15


# ------------------------------------------------------------------ label order


def _plain_order(labels: Iterable[Any]) -> list[Any]:
    """Labels as sklearn orders them (np.unique), text order when types are mixed."""
    distinct = set(labels)
    try:
        return sorted(distinct)
    except TypeError:
        return sorted(distinct, key=str)


# ------------------------------------------------------------------ implementations


def _binary_truth(y_true: np.ndarray) -> np.ndarray:
    """y_true of a binary probability metric: 0/1 with 1 the positive class."""
    import numpy as np
    try:
        truth = y_true.astype(float)
    except (TypeError, ValueError):
        truth = None
    if truth is None or not np.isin(truth, (0.0, 1.0)).all():
        raise ValueError("binary probability metrics need true values of 0/1 (1 = the positive class)")
    return truth.astype(int)


def _column_of_each_row(y_true: np.ndarray, classes: list | None, n_columns: int) -> np.ndarray:
    """For each row, the probability column of its true class."""
    import numpy as np
    labels = classes if classes is not None else _plain_order(y_true.tolist())
    if len(labels) != n_columns:
        raise ValueError(f"{n_columns} probability columns for {len(labels)} classes")
    column_of = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(v) for v in y_true.tolist() if v not in column_of})
    if unknown:
        raise ValueError(f"true labels {unknown[:5]} are not among the classes {[str(c) for c in labels[:10]]}")
    return np.array([column_of[v] for v in y_true.tolist()])


def _auc(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    import numpy as np
    if y_pred.ndim == 1:
        truth = _binary_truth(y_true)
        if len(np.unique(truth)) < 2:
            raise ValueError("AUC is undefined when the true values hold a single class")
        return skm.roc_auc_score(truth, y_pred)
    column = _column_of_each_row(y_true, classes, y_pred.shape[1])
    absent = [str(classes[j] if classes else j) for j in range(y_pred.shape[1]) if not (column == j).any()]
    if absent:
        raise ValueError(f"one-vs-rest AUC is undefined: no true rows of class(es) {absent[:5]}")
    # This is sklearn's roc_auc_score(multi_class="ovr", average="macro"): the mean
    # of each class column's binary AUC. Computed per column it keeps the column
    # order of `classes` (sklearn insists on sorted labels) and skips sklearn's
    # rows-sum-to-one check, which probabilities rounded in a CSV can fail.
    return float(np.mean([skm.roc_auc_score(column == j, y_pred[:, j]) for j in range(y_pred.shape[1])]))


def _logloss(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    import numpy as np
    proba = np.clip(y_pred, PROBA_CLIP, 1 - PROBA_CLIP)
    if proba.ndim == 1:
        return skm.log_loss(_binary_truth(y_true), proba, labels=[0, 1])
    proba = proba / proba.sum(axis=1, keepdims=True)
    column = _column_of_each_row(y_true, classes, proba.shape[1])
    # sklearn reads probability columns in sorted label order whatever `labels`
    # says; scoring column positions against labels 0..k-1 keeps `classes` order.
    return skm.log_loss(column, proba, labels=list(range(proba.shape[1])))


def _rmsle(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    # Kaggle graders refuse negative predictions for RMSLE, so every working
    # submission clips them at 0; doing the same here keeps the score defined for
    # a model that extrapolates slightly below zero. After the clip only the true
    # values can leave log1p's domain.
    import numpy as np
    if (y_true <= -1).any():
        raise ValueError("RMSLE is undefined for true values <= -1 (it compares log(1 + y))")
    y_pred = np.clip(y_pred, 0.0, None)
    return float(np.sqrt(np.mean((np.log1p(y_pred) - np.log1p(y_true)) ** 2)))


def _mape(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    # As a fraction (0.1 = 10 %), like sklearn; a true value of 0 has no percentage error.
    import numpy as np
    if (y_true == 0).any():
        raise ValueError("MAPE is undefined when a true value is 0 (use SMAPE or MAE)")
    return float(np.mean(np.abs((y_pred - y_true) / y_true)))


def _smape(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    # Kaggle's form, as a fraction in [0, 2]: |p - y| / ((|y| + |p|) / 2), a pair of zeros counting 0.
    import numpy as np
    scale = (np.abs(y_true) + np.abs(y_pred)) / 2.0
    ratio = np.divide(np.abs(y_pred - y_true), scale, out=np.zeros_like(scale, dtype=float), where=scale > 0)
    return float(np.mean(ratio))


def _f1(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    labels = classes if classes is not None else natural_order([*y_true.tolist(), *y_pred.tolist()])
    if len(labels) > 2:
        return _f1_macro(y_true, y_pred, classes)
    # F1 of the positive class alone; unlike average="binary" this stays defined
    # when a prediction holds a label outside the two classes (it is just wrong).
    return skm.f1_score(y_true, y_pred, labels=[labels[-1]], average="macro", zero_division=0)


def _f1_macro(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    # Over the labels present in the truth or the predictions (sklearn's default,
    # what graders use): a class missing from a small holdout and never predicted
    # does not drag the mean down with a meaningless 0.
    return skm.f1_score(y_true, y_pred, average="macro", zero_division=0)


def _f1_weighted(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    # Each class's F1 weighted by its number of true rows (sklearn's average="weighted").
    return skm.f1_score(y_true, y_pred, average="weighted", zero_division=0)


def _balanced_logloss(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    """Log loss with every class weighing the same whatever its count (ICR's "balanced logarithmic loss"): the mean
    over the classes present of the mean -log p of that class's rows."""
    import numpy as np
    proba = np.clip(y_pred, PROBA_CLIP, 1 - PROBA_CLIP)
    if proba.ndim == 1:
        proba = np.column_stack([1 - proba, proba])
        column = _binary_truth(y_true)
    else:
        proba = proba / proba.sum(axis=1, keepdims=True)
        column = _column_of_each_row(y_true, classes, proba.shape[1])
    picked = -np.log(proba[np.arange(len(column)), column])
    return float(np.mean([picked[column == j].mean() for j in np.unique(column)]))


def _qwk(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    # Quadratic weights are by position in `labels`: every known class in natural
    # order, so a class absent from the data still keeps its distance.
    labels = natural_order([*(classes or ()), *y_true.tolist(), *y_pred.tolist()])
    return skm.cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic")


def _gini(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    # The normalized Gini coefficient of Kaggle's graders equals 2 AUC - 1 (ties counted half, as AUC counts them).
    return 2.0 * _auc(y_true, y_pred, classes) - 1.0


def _pearson(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    # Constant predictions (or truth) have no correlation; graders score them 0 rather than failing.
    import numpy as np
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return 0.0
    return float(np.clip(np.corrcoef(y_true, y_pred)[0, 1], -1.0, 1.0))


def _spearman(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
    # Pearson's correlation of the ranks, ties given their mean rank (scipy.stats.spearmanr's definition).
    import pandas as pd
    return _pearson(pd.Series(y_true).rank().to_numpy(), pd.Series(y_pred).rank().to_numpy(), classes)


def _ignoring_classes(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable[..., float]:
    return lambda y_true, y_pred, classes: fn(y_true, y_pred)


def pinball(alpha: float):
    """The pinball (quantile) loss at level alpha: under-predictions cost alpha per unit, over-predictions 1 - alpha;
    minimised by the conditional alpha-quantile (at 0.5 it is half the absolute error)."""
    import numpy as np
    def score(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
        diff = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)
        return float(np.mean(np.maximum(alpha * diff, (alpha - 1.0) * diff)))

    return score


def mean_average_precision(k: int):
    """MAP@k with one true label per row, as Kaggle's apk computes it: a row's first k predicted labels (best first,
    separated by whitespace) score 1/i when the i-th is its true label and no earlier one was, else 0. A prediction
    that is one of `classes` as a whole is one label, spaces and all."""
    def score(y_true: np.ndarray, y_pred: np.ndarray, classes: list | None) -> float:
        known = {str(c) for c in classes or ()}
        total = 0.0
        for truth, predicted in zip(y_true.tolist(), y_pred.tolist()):
            ranked = [str(predicted)] if str(predicted) in known else str(predicted).split()[:k]
            if str(truth) in ranked:
                total += 1.0 / (ranked.index(str(truth)) + 1)
        return total / len(y_true)

    return score
