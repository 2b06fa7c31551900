"""Predictions written in submission format (labels, one probability, a probability per class, values),
read back and scored against the original target values with the registry's metrics."""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

from iml_ray.metrics.labels import natural_order
from iml_ray.metrics.registry import Metric, get_metric
from iml_ray.metrics.submission import SubmissionFormat


def score_predictions(metric: Metric | str, truth: pd.Series | pd.DataFrame, frame: pd.DataFrame,
                      fmt: SubmissionFormat) -> float:
    """Score predictions written in submission format against the original target values.

    `truth` holds the target values row by row, in the order of `frame`: a frame with one column per
    target when the format has several targets, scored by the metric's column-wise form.
    """
    import pandas as pd
    metric = get_metric(metric)
    if isinstance(truth, pd.DataFrame):
        return _score_several(metric, truth, frame, fmt)
    truth = pd.Series(truth).reset_index(drop=True)
    values = _prediction_columns(frame, fmt, len(truth))
    if truth.isna().any():
        raise ValueError(f"true values contain NaN ({int(truth.isna().sum())} rows)")
    if fmt.kind == "value":
        if metric.needs != "value":
            raise ValueError(f"{metric.name} scores classes, but the submission holds regression values")
        return metric.score(_numeric(truth, "true values"),
                            _numeric(values.iloc[:, 0], f"prediction column '{fmt.target_columns[0]}'"))
    if metric.needs == "value":
        raise ValueError(f"{metric.name} scores regression values, but the submission holds {fmt.kind} predictions")

    spell = _label_speller(fmt.classes)
    y_true = _spelled(truth, spell)
    classes = [spell(c) for c in fmt.classes] or natural_order(y_true)
    positive = _positive_class(fmt, classes, spell)
    if fmt.kind == "label" and fmt.top_k > 1:
        return _score_labels(metric, y_true, _spelled_ranked(values.iloc[:, 0], spell), classes, positive)
    if fmt.kind == "label":
        return _score_labels(metric, y_true, _spelled(values.iloc[:, 0], spell), classes, positive)
    if fmt.kind == "probability":
        return _score_probability(metric, y_true, values, fmt, classes, positive)
    if fmt.kind == "class_probabilities":
        return _score_class_probabilities(metric, y_true, values, classes, positive)
    raise ValueError(f"unknown submission kind {fmt.kind!r}")


def _score_several(metric: Metric, truth: pd.DataFrame, frame: pd.DataFrame, fmt: SubmissionFormat) -> float:
    """The mean over targets of each target column's score (truth columns follow fmt.target_columns)."""
    from dataclasses import replace

    import numpy as np

    if truth.shape[1] != len(fmt.target_columns):
        raise ValueError(f"{truth.shape[1]} true target columns for {len(fmt.target_columns)} prediction columns")
    unit = get_metric(metric.unit or metric.name)
    scores = []
    for j, column in enumerate(fmt.target_columns):
        one = replace(fmt, target_columns=(column,), columns=(), passthrough=())
        scores.append(score_predictions(unit, truth.iloc[:, j], frame, one))
    return float(np.mean(scores))


def _prediction_columns(frame: pd.DataFrame, fmt: SubmissionFormat, n_rows: int) -> pd.DataFrame:
    if not fmt.target_columns:
        raise ValueError("the submission format names no prediction columns")
    missing = [c for c in fmt.target_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {missing}")
    if len(frame) != n_rows:
        raise ValueError(f"{len(frame)} prediction rows for {n_rows} true values")
    values = frame[list(fmt.target_columns)].reset_index(drop=True)
    with_nan = [c for c in fmt.target_columns if values[c].isna().any()]
    if with_nan:
        raise ValueError(f"predictions contain NaN in column(s) {with_nan}")
    return values


def _numeric(values: pd.Series, what: str) -> np.ndarray:
    import pandas as pd
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        raise ValueError(f"{what} are not numeric (e.g. {values[numbers.isna()].iloc[0]!r})")
    return numbers.to_numpy(dtype=float)


def _label_key(value: Any) -> str:
    """One spelling per label, whatever type it comes back as.

    A label written to CSV and read back can change type: the truth is int 0/1
    and the predictions "0"/"1" strings, or the truth is float 1.0 (train.csv had
    a missing target) and the predictions int 1, or booleans come back as
    "True"/"true". Comparing raw values would count every such row as wrong, so
    both sides are spelled the same way: integers without a decimal point,
    other numbers by repr(float), booleans as True/False, text stripped.
    """
    import numpy as np
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            return str(number)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.capitalize()
    if re.fullmatch(r"[+-]?\d+", text):
        return str(int(text))
    try:
        number = float(text)
    except ValueError:
        return text
    return _label_key(number) if math.isfinite(number) else text


def _label_speller(classes: tuple[Any, ...]) -> Callable[[Any], str]:
    """_label_key, or plain str() when _label_key would merge two classes ("01" and "1")."""
    keys = {_label_key(c) for c in classes}
    return _label_key if len(keys) == len(set(classes)) else str


def _spelled(values: pd.Series, spell: Callable[[Any], str]) -> np.ndarray:
    # Spell each distinct value once; a column has far fewer labels than rows.
    import numpy as np
    import pandas as pd
    spelling = {value: spell(value) for value in pd.unique(values)}
    return np.array([spelling[value] for value in values], dtype=object)


def _spelled_ranked(values: pd.Series, spell: Callable[[Any], str]) -> np.ndarray:
    """Rows of space-separated ranked labels, each label spelled as the truth is."""
    import numpy as np
    return np.array([" ".join(spell(label) for label in str(value).split()) for value in values], dtype=object)


def _positive_class(fmt: SubmissionFormat, classes: list[str], spell: Callable[[Any], str]) -> str | None:
    if len(classes) > 2:
        return None
    if fmt.positive_class is None:
        return natural_order(classes)[-1] if classes else None
    positive = spell(fmt.positive_class)
    if positive not in classes:
        raise ValueError(f"positive class {fmt.positive_class!r} is not among the classes {list(fmt.classes)}")
    return positive


def _positive_last(classes: list[str], positive: str | None) -> list[str]:
    """Classes with the positive one last: binary F1 scores classes[-1]."""
    if positive is None:
        return classes
    return [c for c in classes if c != positive] + [positive]


def _score_labels(metric: Metric, y_true: np.ndarray, labels: np.ndarray, classes: list[str],
                  positive: str | None) -> float:
    import numpy as np
    if metric.needs == "label":
        return metric.score(y_true, labels, _positive_last(classes, positive))
    # A probability metric on hard labels: each label is a certain prediction.
    if positive is not None:
        return metric.score((y_true == positive).astype(int), (labels == positive).astype(float))
    onehot = np.stack([(labels == c).astype(float) for c in classes], axis=1)
    return metric.score(y_true, onehot, classes)


def _score_probability(metric: Metric, y_true: np.ndarray, values: pd.DataFrame, fmt: SubmissionFormat,
                       classes: list[str], positive: str | None) -> float:
    import numpy as np
    if positive is None or len(classes) != 2:
        raise ValueError(f"a 'probability' submission needs a binary task, but there are {len(classes)} classes")
    p = _numeric(values.iloc[:, 0], f"probability column '{fmt.target_columns[0]}'")
    if metric.needs == "proba":
        return metric.score((y_true == positive).astype(int), p)
    negative = next(c for c in classes if c != positive)
    labels = np.where(p >= 0.5, positive, negative).astype(object)
    return metric.score(y_true, labels, _positive_last(classes, positive))


def _score_class_probabilities(metric: Metric, y_true: np.ndarray, values: pd.DataFrame, classes: list[str],
                               positive: str | None) -> float:
    import numpy as np
    if values.shape[1] != len(classes):
        raise ValueError(f"{values.shape[1]} probability columns for {len(classes)} classes")
    matrix = np.column_stack([_numeric(values[c], f"probability column '{c}'") for c in values.columns])
    if metric.needs == "proba":
        if positive is not None:
            return metric.score((y_true == positive).astype(int), matrix[:, classes.index(positive)])
        return metric.score(y_true, matrix, classes)
    labels = np.asarray(classes, dtype=object)[matrix.argmax(axis=1)]
    return metric.score(y_true, labels, _positive_last(classes, positive))

