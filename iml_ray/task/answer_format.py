"""What the submission's values are: labels, one probability, one probability per class, or a value.

Part of the rules TaskAnalyzer (inference.py decides the columns first). The evidence,
strongest first: task.yaml, the metric the description names, the sample submission's
columns (one per class), then the sample submission's values (numbers where the train
target holds strings ask for a probability). Every decision says which evidence decided.
"""
from __future__ import annotations

import logging
import re
from typing import Any

import pandas as pd

from iml_ray.errors import TaskError
from iml_ray.metrics.labels import class_sort_key
from iml_ray.metrics.submission import SubmissionFormat
from iml_ray.task.class_columns import classes_of_columns

log = logging.getLogger(__name__)


def infer_problem_type(y: pd.Series, metric: str | None, prediction_cols: list[str]) -> tuple[str, str]:
    """binary, multiclass or regression, and why: the metric, then the sample's columns, then the target."""
    from iml_ray.metrics.registry import get_metric

    n_unique = int(y.nunique())
    if metric:
        types = get_metric(metric).problem_types
        if types == ("regression",):
            return "regression", f"the metric {metric} is a regression metric"
        if "regression" not in types:
            kind = "binary" if n_unique == 2 else "multiclass"
            return kind, f"the metric {metric} is a classification metric and the target has {n_unique} values"
    if len(prediction_cols) > 1:
        return ("binary" if len(prediction_cols) == 2 else "multiclass"), "the sample submission has one column per class"
    if n_unique == 2:
        return "binary", "the target has two values"
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "multiclass", f"the target is not numeric and has {n_unique} values"
    integral = bool((y == y.round()).all())
    if integral and n_unique <= 20 and n_unique / max(len(y), 1) <= 0.05:
        return "multiclass", f"the target holds {n_unique} integer values"
    return "regression", f"the target is numeric with {n_unique} distinct values"


def sample_asks_for_probability(sample: pd.DataFrame | None, prediction_cols: list[str], y: pd.Series) -> str | None:
    """Why the sample submission's one prediction column reads as a probability, or None when it does not."""
    if sample is None or len(prediction_cols) != 1 or prediction_cols[0] not in sample.columns:
        return None
    values = sample[prediction_cols[0]]
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any() or not numeric.between(0, 1).all():
        return None
    if not numeric.isin([0, 1]).all():
        return "the sample submission holds values between 0 and 1"
    target_is_text = not (pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y))
    if target_is_text:
        return "the sample submission holds numbers where the train target holds labels"
    return None


def sample_ranks_labels(sample: pd.DataFrame | None, prediction_cols: list[str], y: pd.Series) -> int:
    """How many space-separated classes each row of the sample's one prediction column lists, when every row lists
    two or more (a MAP@k answer: "14-35-14 10-26-26 Urea"); 0 otherwise."""
    if sample is None or len(prediction_cols) != 1 or prediction_cols[0] not in sample.columns or not len(sample):
        return 0
    rows = sample[prediction_cols[0]].astype(str).str.split()
    counts = rows.str.len()
    known = {str(c) for c in y.unique()}
    if counts.min() < 2 or not all(label in known for row in rows.head(1000) for label in row):
        return 0
    return int(counts.max())


def default_metric(problem_type: str, sample: pd.DataFrame | None, prediction_cols: list[str],
                   y: pd.Series) -> tuple[str, str]:
    """The metric when neither task.yaml nor the description names one, and why: it follows the format."""
    if problem_type == "regression":
        return "rmse", "rmse for regression (the description names no metric)"
    if len(prediction_cols) > 1:
        return "logloss", "log loss, since the sample submission asks for one probability per class"
    k = sample_ranks_labels(sample, prediction_cols, y)
    if k:
        return f"map@{k}", f"MAP@{k}, since the sample submission lists {k} labels per row"
    why = sample_asks_for_probability(sample, prediction_cols, y) if problem_type == "binary" else None
    if why:
        return "auc", f"AUC for one probability column ({why})"
    return "accuracy", "accuracy for classification (the description names no metric)"


def submission_format(id_column: str | None, prediction_cols: tuple[str, ...], columns: tuple[str, ...],
                      passthrough: tuple[str, ...], problem_type: str, spec, sample: pd.DataFrame | None,
                      y: pd.Series, stated: dict[str, Any], dtype, decisions: dict[str, str],
                      description: str, target: str) -> SubmissionFormat:
    """The SubmissionFormat; decisions["submission"] says which evidence decided."""
    label_dtype = str(dtype)
    shared = dict(columns=columns, passthrough=passthrough, label_dtype=label_dtype,
                  sample_rows=0 if sample is None else len(sample))
    if problem_type == "regression":
        if len(prediction_cols) != 1:
            raise TaskError(f"a regression task needs one prediction column, the sample submission has {list(prediction_cols)}",
                            "Fix sample_submission.csv or state `problem_type:` in task.yaml.")
        decisions["submission"] = "one predicted value per row"
        return SubmissionFormat(id_column, prediction_cols, "value", **shared)
    classes = sorted(y.unique().tolist(), key=class_sort_key)
    positive, positive_why = (positive_class(classes, stated, description, target, y) if problem_type == "binary"
                              else (None, ""))
    if len(prediction_cols) > 1:
        matched = classes_of_columns(prediction_cols, classes)
        if matched is None:
            raise TaskError(f"the sample submission's columns {list(prediction_cols)} do not match the classes of "
                            f"'{target}' ({[str(c) for c in classes][:10]})",
                            "Name one column per class, as the class values in train.csv (a shared prefix such as "
                            f"'{target}_' is fine).")
        ordered, how = matched
        decisions["submission"] = f"one probability column per class (the sample submission's columns are {how})"
        return SubmissionFormat(id_column, prediction_cols, "class_probabilities", ordered, positive, **shared)
    evidence = None
    if problem_type == "binary":
        reasons = [sample_asks_for_probability(sample, list(prediction_cols), y),
                   f"the metric {spec.name} scores probabilities" if spec.needs == "proba" else None]
        evidence = "; ".join(r for r in reasons if r) or None
    if evidence:
        decisions["submission"] = f"probability of class {positive!r} ({positive_why}); {evidence}"
        kind = "probability"
    else:
        if spec.needs == "proba":
            log.warning("metric %s needs probabilities but the submission has one label column; submitting labels", spec.name)
        decisions["submission"] = "predicted labels" + ("" if sample is None else " (the sample submission holds labels)")
        kind = "label"
        top_k = ranked_labels(spec.name, classes)
        if top_k > 1:
            decisions["submission"] = (f"up to {top_k} labels per row, best first, separated by spaces (the metric "
                                       f"{spec.name} ranks them)")
            return SubmissionFormat(id_column, prediction_cols, kind, tuple(classes), positive, **shared, top_k=top_k)
    return SubmissionFormat(id_column, prediction_cols, kind, tuple(classes), positive, **shared)


def ranked_labels(metric: str, classes: list[Any]) -> int:
    """How many labels, best first, each row of a label submission holds: k for MAP@k, else 1. Labels holding
    whitespace cannot be told apart in a space-separated list, so they get one."""
    from iml_ray.metrics.registry import map_level

    k = map_level(metric)
    if k is None or k <= 1:
        return 1
    if any(re.search(r"\s", str(c)) for c in classes):
        log.warning("metric %s ranks space-separated labels but some labels hold spaces; submitting one per row", metric)
        return 1
    return min(k, len(classes))


# Labels that name the event a binary task predicts (what a probability is conventionally of).
POSITIVE_WORDS = ("1", "true", "yes", "y", "t", "positive", "pos", "bad", "default", "defaulted", "fraud", "churn",
                  "spam", "toxic", "insult", "malignant", "abnormal", "anomaly", "attack", "disease", "sick", "fail",
                  "failed", "failure", "dead", "died", "event", "signal", "win", "won", "accepted", "approved",
                  "clicked", "click", "converted", "success")


def positive_class(classes: list[Any], stated: dict[str, Any], description: str, target: str,
                   y: pd.Series | None = None) -> tuple[Any, str]:
    """The class whose probability a one-column binary submission reports, and why.

    The description outranks convention: "the probability that `score` is `great`" makes
    `great` positive even though `other` sorts last. Submitting the other class's
    probability turns a log loss of 0.46 into 1.98 (seen on the fine_foods task)."""
    if "positive_class" in stated:
        wanted = stated["positive_class"]
        for c in classes:
            if c == wanted or str(c) == str(wanted):
                return c, "stated in task.yaml"
        raise TaskError(f"positive_class {wanted!r} from task.yaml is not a class of the target ({classes})",
                        "Set `positive_class:` to one of the target's values.")
    named = class_named_for_probability(description, classes, target)
    if named is not None:
        return named, "the description names it"
    lowered = {str(c).strip().lower(): c for c in classes}
    for word in POSITIVE_WORDS:
        if word in lowered:
            return lowered[word], "conventional positive label"
    if y is not None and len(classes) == 2:
        counts = y.value_counts()
        rare = counts.idxmin()
        if counts.min() <= 0.45 * counts.sum():
            return next(c for c in classes if c == rare), "the minority class (the event a probability is usually of)"
    return classes[-1], "the class that sorts last (the description names none)"


_PROBABILITY_WORD = re.compile(r"\b(?:probabilit(?:y|ies)|likelihood|chance|confidence)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|[;\n]")
_TOKEN = re.compile(r"[\w][\w\-+]*")


def class_named_for_probability(description: str, classes: list[Any], target: str) -> Any | None:
    """The one class mentioned after a probability word in the same sentence, or None.

    Every mention in every such sentence counts; when both classes appear ("a probability
    between 0 and 1") the description does not decide and None is returned."""
    by_word = {str(c).strip().lower(): c for c in classes if str(c).strip()}
    skip = {str(target).strip().lower()}
    found: dict[str, Any] = {}
    for match in _PROBABILITY_WORD.finditer(description or ""):
        rest = description[match.end(): match.end() + 200]
        end = _SENTENCE_END.search(rest)
        sentence = rest[: end.start()] if end else rest
        for token in _TOKEN.findall(sentence):
            word = token.lower()
            if word in by_word and word not in skip:
                found[word] = by_word[word]
    return next(iter(found.values())) if len(found) == 1 else None
