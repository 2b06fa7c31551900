"""The metric registry: the project's one implementation of every metric.

Validation scores (the Evaluator) and benchmark grades (benchmarks/grade.py)
both come from here. Each metric knows its direction, what predictions it needs
(labels, probabilities or values), and its APS normalisation (iML paper):
higher-better metrics in [0, 1] as they are, losses exp(-s), [-1, 1] metrics
(s + 1) / 2, and a failure 0.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .submission import SubmissionFormat


class UnknownMetric(ValueError):
    """A metric name that is not in the registry."""


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    needs: str                       # "label" | "proba" | "value"
    problem_types: tuple[str, ...]
    normalisation: str               # "identity" | "exp_neg" | "half_shift"
    phrases: tuple[str, ...]         # lower-case regexes naming it in a description
    fn: Callable[..., float]

    def score(self, y_true: Any, y_pred: Any, classes: Any = None) -> float:
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if len(y_true) == 0:
            raise ValueError("no rows to score")
        if len(y_true) != len(y_pred):
            raise ValueError(f"{len(y_pred)} predictions for {len(y_true)} true values")
        if self.needs != "label" and np.isnan(y_pred.astype(float)).any():
            raise ValueError("predictions contain NaN")
        if self.needs == "label" and pd.isna(pd.Series(list(y_pred))).any():
            raise ValueError("predictions contain NaN")
        return float(self.fn(y_true, y_pred, None if classes is None else list(classes)))

    def aps(self, score: float | None) -> float:
        if score is None or not math.isfinite(score):
            return 0.0
        if self.normalisation == "exp_neg":
            return float(math.exp(-max(score, 0.0)))
        if self.normalisation == "half_shift":
            return float(min(1.0, max(0.0, (score + 1.0) / 2.0)))
        return float(min(1.0, max(0.0, score)))


# ------------------------------------------------------------------ implementations


def _auc(y_true, y_pred, classes):
    if y_pred.ndim == 1:
        return skm.roc_auc_score(y_true.astype(int), y_pred.astype(float))
    proba = np.clip(y_pred.astype(float), 1e-15, None)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)


def _logloss(y_true, y_pred, classes):
    if y_pred.ndim == 1:
        p = np.clip(y_pred.astype(float), 1e-15, 1 - 1e-15)
        y = y_true.astype(int)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    proba = np.clip(y_pred.astype(float), 1e-15, 1 - 1e-15)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return skm.log_loss(y_true, proba, labels=classes)


def _rmsle(y_true, y_pred, classes):
    y_true = y_true.astype(float)
    # Kaggle graders refuse negative predictions for RMSLE; clipping at 0 is what
    # any sensible submission does, so the score stays defined.
    y_pred = np.clip(y_pred.astype(float), 0, None)
    if (y_true < -1).any():
        raise ValueError("RMSLE needs true values >= -1")
    return float(np.sqrt(np.mean((np.log1p(y_pred) - np.log1p(y_true)) ** 2)))


def _f1(y_true, y_pred, classes):
    labels = classes if classes is not None else sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=str)
    if len(labels) <= 2:
        positive = labels[-1]
        return skm.f1_score(y_true, y_pred, pos_label=positive, average="binary", labels=labels)
    return skm.f1_score(y_true, y_pred, average="macro", labels=labels)


def _value(fn):
    return lambda y_true, y_pred, classes: float(fn(y_true.astype(float), y_pred.astype(float)))


def _label(fn):
    return lambda y_true, y_pred, classes: float(fn(y_true, y_pred))


CLASSIFICATION = ("binary", "multiclass")
REGRESSION = ("regression",)

_REGISTRY = [
    Metric("auc", True, "proba", CLASSIFICATION, "identity",
           (r"area under the (receiver operating characteristic |roc )?curve", r"roc[ _-]?auc", r"auc[ _-]?roc", r"\bauc\b",
            r"\broc\b"), _auc),
    Metric("logloss", False, "proba", CLASSIFICATION, "exp_neg",
           (r"(multi-?class )?log(arithmic)?[ -]?loss", r"\blogloss\b", r"cross[ -]?entropy"), _logloss),
    Metric("rmsle", False, "value", REGRESSION, "exp_neg",
           (r"root[ -]mean[ -]squared?[ -]log(arithmic)?[ -]error", r"\brmsle\b",
            r"root[ -]mean[ -]squared?[ -]error[^.]{0,80}\blog(arithm)?"), _rmsle),
    Metric("rmse", False, "value", REGRESSION, "exp_neg",
           (r"root[ -]mean[ -]squared?[ -]error", r"\brmse\b"), _value(lambda a, b: np.sqrt(skm.mean_squared_error(a, b)))),
    Metric("mae", False, "value", REGRESSION, "exp_neg",
           (r"mean[ -]absolute[ -]error", r"\bmae\b"), _value(skm.mean_absolute_error)),
    Metric("mse", False, "value", REGRESSION, "exp_neg",
           (r"(?<!root )(?<!root-)mean[ -]squared?[ -]error", r"\bmse\b"), _value(skm.mean_squared_error)),
    Metric("r2", True, "value", REGRESSION, "identity",
           (r"coefficient of determination", r"\br\^?2\b", r"r-squared"), _value(skm.r2_score)),
    Metric("qwk", True, "label", CLASSIFICATION, "half_shift",
           (r"quadratic(ally)?[ -]weighted[ -]kappa", r"\bqwk\b", r"cohen'?s kappa"),
           _label(lambda a, b: skm.cohen_kappa_score(a, b, weights="quadratic"))),
    Metric("mcc", True, "label", CLASSIFICATION, "half_shift",
           (r"matthews[ -]correlation[ -]coefficient", r"\bmcc\b"), _label(skm.matthews_corrcoef)),
    Metric("f1_macro", True, "label", CLASSIFICATION, "identity",
           (r"macro[ -]?(averaged )?f1", r"f1[ -]macro", r"mean f1"),
           lambda a, b, classes: float(skm.f1_score(a, b, average="macro", labels=classes))),
    Metric("f1", True, "label", CLASSIFICATION, "identity", (r"\bf1([ -]score)?\b", r"\bf-score\b"), _f1),
    Metric("balanced_accuracy", True, "label", CLASSIFICATION, "identity", (r"balanced accuracy",),
           _label(skm.balanced_accuracy_score)),
    Metric("accuracy", True, "label", CLASSIFICATION, "identity", (r"\baccuracy\b", r"classification accuracy"),
           _label(skm.accuracy_score)),
]
METRICS: dict[str, Metric] = {m.name: m for m in _REGISTRY}

ALIASES = {
    "roc_auc": "auc", "auc_roc": "auc", "rocauc": "auc", "roc": "auc", "area_under_curve": "auc",
    "log_loss": "logloss", "cross_entropy": "logloss", "crossentropy": "logloss", "multi_logloss": "logloss",
    "binary_logloss": "logloss", "neg_log_loss": "logloss",
    "root_mean_squared_error": "rmse", "root_mean_squared_log_error": "rmsle",
    "root_mean_squared_logarithmic_error": "rmsle", "mean_absolute_error": "mae", "mean_squared_error": "mse",
    "r_squared": "r2", "r^2": "r2",
    "quadratic_weighted_kappa": "qwk", "kappa": "qwk", "cohen_kappa": "qwk",
    "matthews": "mcc", "matthews_corrcoef": "mcc", "matthews_correlation": "mcc",
    "f1_score": "f1", "macro_f1": "f1_macro", "f1macro": "f1_macro",
    "acc": "accuracy", "balanced_acc": "balanced_accuracy",
}


def get_metric(name: str) -> Metric:
    key = re.sub(r"[\s-]+", "_", str(name).strip().lower())
    key = ALIASES.get(key, key)
    if key not in METRICS:
        raise UnknownMetric(f"unknown metric '{name}'; known metrics: {', '.join(sorted(METRICS))}")
    return METRICS[key]


# ------------------------------------------------------------------ descriptions


SECTION = re.compile(r"^#+\s*(.*)$", re.MULTILINE)


def find_metric_in_text(text: str) -> str | None:
    """The metric a competition description names; its Evaluation section first."""
    if not text:
        return None
    for part in (_evaluation_section(text), text):
        if part:
            found = _earliest_metric(part.lower())
            if found:
                return found
    return None


def _evaluation_section(text: str) -> str | None:
    headings = list(SECTION.finditer(text))
    for i, heading in enumerate(headings):
        title = heading.group(1).lower()
        if "evaluat" in title or "metric" in title or "scoring" in title:
            end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
            return text[heading.end():end]
    return None


def _earliest_metric(text: str) -> str | None:
    best: tuple[int, int, str] | None = None
    for metric in _REGISTRY:
        for phrase in metric.phrases:
            match = re.search(phrase, text)
            if match:
                key = (match.start(), -(match.end() - match.start()), metric.name)
                if best is None or key < best:
                    best = key
    return None if best is None else best[2]


# ------------------------------------------------------------------ submissions


def score_predictions(metric: Metric | str, truth: pd.Series, frame: pd.DataFrame, fmt: SubmissionFormat) -> float:
    """Score predictions written in submission format against the original target values."""
    metric = get_metric(metric) if isinstance(metric, str) else metric
    missing = [c for c in fmt.target_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {missing}")
    if len(frame) != len(truth):
        raise ValueError(f"{len(frame)} predictions for {len(truth)} true values")
    values = frame[list(fmt.target_columns)]
    if values.isna().any().any():
        raise ValueError("predictions contain NaN")
    truth = truth.reset_index(drop=True)
    if fmt.kind == "value":
        return metric.score(truth.to_numpy(dtype=float), values.iloc[:, 0].to_numpy(dtype=float))

    classes = list(fmt.classes)
    # Labels read back from CSV may change type (0/1 vs "0"/"1", True vs "True"):
    # compare classes, truth and predictions by their string form.
    keys = [str(c) for c in classes]
    truth_keys = truth.astype(str).to_numpy()
    positive = str(fmt.positive_class) if fmt.positive_class is not None else (keys[-1] if keys else None)

    if fmt.kind == "label":
        predicted = values.iloc[:, 0].astype(str).to_numpy()
        if metric.needs == "proba":
            if len(keys) <= 2:
                return metric.score((truth_keys == positive).astype(int), (predicted == positive).astype(float))
            onehot = np.stack([(predicted == k).astype(float) for k in keys], axis=1)
            return metric.score(truth_keys, onehot, keys)
        return metric.score(truth_keys, predicted, keys or None)

    if fmt.kind == "probability":
        p = pd.to_numeric(values.iloc[:, 0], errors="coerce").to_numpy(dtype=float)
        if np.isnan(p).any():
            raise ValueError("probability column is not numeric")
        if metric.needs == "proba":
            return metric.score((truth_keys == positive).astype(int), p)
        negative = next((k for k in keys if k != positive), "0")
        labels = np.where(p >= 0.5, positive, negative)
        return metric.score(truth_keys, labels, keys or None)

    matrix = values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if np.isnan(matrix).any():
        raise ValueError("class probability columns are not numeric")
    if metric.needs == "proba":
        if len(keys) == 2:
            return metric.score((truth_keys == positive).astype(int), matrix[:, keys.index(positive)])
        return metric.score(truth_keys, matrix, keys)
    labels = np.asarray(keys, dtype=object)[matrix.argmax(axis=1)]
    return metric.score(truth_keys, labels, keys)
