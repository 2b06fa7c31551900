"""The Evaluator: the framework's own holdout split and its own scores.

The split is seeded and stratified for classification with one target, and time-ordered for a forecast; generated code is told
which rows to hold out, returns predictions for them, and is scored here with
the framework's metric against labels it never had to report.

A small table is validated by k folds instead of one holdout: every labelled row is held out once and predicted
by a model fitted on the other folds, so the score rests on every row rather than a fifth of a few hundred (a
4-row train's one-row holdout could not even hold both classes). holdout.json is then {"folds": [[rows], ...]}.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

from iml_ray.metrics.predictions import score_predictions
from iml_ray.metrics.registry import get_metric
from iml_ray.task.files import TaskSummary
from iml_ray.task.tables import read_columns

# Up to this many train rows a table is validated by k folds: the extra fits are cheap and the score steadier.
SMALL_TABLE_ROWS = 2000
VALIDATION_FOLDS = 5


def validation_folds(summary: TaskSummary) -> int:
    """k for a small table's k-fold validation, 0 for one holdout. Not for a forecast (its holdout is train's
    last dates) nor for pictures and clips, whose networks would train k times instead of twice."""
    if summary.forecast is not None or summary.images or summary.audio or summary.n_train > SMALL_TABLE_ROWS:
        return 0
    return min(VALIDATION_FOLDS, summary.n_train)


def make_validation(summary: TaskSummary, fraction: float, seed: int, folds: int = 0) -> list[np.ndarray]:
    """The validation folds: row positions of train.csv (labelled rows only), each sorted. One fold (the
    holdout) unless `folds` >= 2: then k folds that together hold every labelled row."""
    if folds < 2 or summary.forecast is not None:
        return [make_holdout(summary, fraction, seed)]
    train, labelled = _labelled(summary)
    return _folds(summary, train, labelled, min(folds, len(labelled)), seed)


def make_holdout(summary: TaskSummary, fraction: float, seed: int) -> np.ndarray:
    """Row positions of train.csv held out for validation (labelled rows only), sorted."""
    import numpy as np
    import pandas as pd

    from iml_ray.scoring.splits import holdout_positions

    train, labelled = _labelled(summary)
    if summary.forecast is not None:
        return latest_rows(summary, labelled, fraction)
    stratify = None
    if summary.problem_type != "regression" and isinstance(train, pd.Series):
        labels = train.iloc[labelled].astype(str)
        counts = labels.value_counts()
        # Stratify when every class can appear on both sides of the split.
        if counts.min() >= 2 and len(counts) <= fraction * len(labelled):
            stratify = labels.to_numpy()
    return np.sort(labelled[holdout_positions(len(labelled), fraction, seed, stratify)])


def _labelled(summary: TaskSummary) -> tuple[pd.Series | pd.DataFrame, np.ndarray]:
    """The train table's target(s) and the positions of the rows that have one (every target, when several)."""
    import numpy as np
    import pandas as pd
    train = read_target(summary)
    present = train.notna() if isinstance(train, pd.Series) else train.notna().all(axis=1)
    return train, np.flatnonzero(present.to_numpy())


def _folds(summary: TaskSummary, train: pd.Series | pd.DataFrame, labelled: np.ndarray, k: int,
           seed: int) -> list[np.ndarray]:
    import numpy as np
    import pandas as pd

    from iml_ray.scoring.splits import fold_positions

    labels = None
    if summary.problem_type != "regression" and isinstance(train, pd.Series):
        classes = train.iloc[labelled].astype(str)
        # Stratified when every class has a row for every fold.
        if classes.value_counts().min() >= k:
            labels = classes.to_numpy()
    return [np.sort(labelled[held]) for held in fold_positions(len(labelled), k, seed, labels)]


def holdout_json(folds: list[np.ndarray]) -> list[int] | dict[str, list[list[int]]]:
    """What holdout.json holds: the rows of one holdout, or {"folds": [...]}."""
    if len(folds) == 1:
        return [int(r) for r in folds[0]]
    return {"folds": [[int(r) for r in fold] for fold in folds]}


def read_holdout(path: Path | str) -> list[np.ndarray]:
    """The validation folds of a holdout.json (one for a plain holdout)."""
    import json

    import numpy as np

    data = json.loads(Path(path).read_text())
    folds = data["folds"] if isinstance(data, dict) else [data]
    return [np.asarray(fold, dtype=np.int64) for fold in folds]


def held_rows(path: Path | str) -> np.ndarray:
    """Every row a candidate must predict for validation: the holdout, or all the folds' rows, sorted."""
    import numpy as np
    return np.sort(np.concatenate(read_holdout(path)))


def latest_rows(summary: TaskSummary, labelled: np.ndarray, fraction: float) -> np.ndarray:
    """A forecast's holdout: the labelled rows of train's last dates, as the test rows are the dates after
    train's. As many dates as the test's horizon spans (the pipeline's features assume what is known one
    horizon before a row), and never more than `fraction` of them; at least one."""
    import numpy as np

    from iml_ray.task.forecasting import as_dates

    column = summary.forecast.time_column
    dates = as_dates(read_columns(Path(summary.task_dir) / summary.train_file, [column])[column])
    distinct = np.sort(dates.iloc[labelled].dropna().unique())
    held_dates = max(1, min(summary.forecast.horizon, int(np.ceil(fraction * len(distinct)))))
    cutoff = distinct[max(0, len(distinct) - held_dates)]
    held = labelled[(dates.iloc[labelled] >= cutoff).to_numpy()]
    return np.sort(held)


def read_target(summary: TaskSummary) -> pd.Series | pd.DataFrame:
    """The train table's target, row by row (the holdout names rows by position); with several targets, a
    frame of them, one column per target."""
    targets = list(summary.all_targets)
    if summary.layout is not None:
        frame = summary.read("train")[targets]
    else:
        frame = read_columns(Path(summary.task_dir) / summary.train_file, targets)
    frame = frame.reset_index(drop=True)
    return frame[targets[0]] if len(targets) == 1 else frame


def read_valid_predictions(path: Path | str) -> pd.DataFrame:
    """A candidate's valid_predictions.csv, its column names as strings (a label column named 1 reads as "1")."""
    import pandas as pd

    frame = pd.read_csv(path, low_memory=False)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def score_valid_predictions(frame: pd.DataFrame, summary: TaskSummary) -> float:
    """Score validation predictions (submission format + __row__) against train.csv's labels."""
    truth = read_target(summary).iloc[frame["__row__"].to_numpy()].reset_index(drop=True)
    return float(score_predictions(summary.metric, truth, frame.reset_index(drop=True), summary.submission))


def aps(metric: str, score: float | None) -> float:
    return float(get_metric(metric).aps(score))
