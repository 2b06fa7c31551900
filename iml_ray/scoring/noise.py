"""How much of a validation score's gain over another candidate's is the noise of the rows it was measured on.

Two candidates of one track are scored on the same validation rows, so their scores' difference is resampled in
pairs: each bootstrap resample of the rows scores both. Its standard deviation says how far the difference would
move on other rows like these. drug_reviews (710 rows, 5 folds): character n-grams gained +0.0013 AUC with a paired
deviation of 0.0165 (noise, and the path that kept them ended 0.03-0.07 lower on the test rows); CatBoost beside the
others gained +0.0034 with 0.0013, bagging +0.0120 with 0.0046.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from iml_ray.metrics.predictions import score_predictions
from iml_ray.scoring.evaluate import read_target, read_valid_predictions

if TYPE_CHECKING:
    from iml_ray.task.files import TaskSummary

# Enough for the deviation within about 15 %; each resample scores both candidates (0.6 s for 1,000 rows).
BOOTSTRAP_RESAMPLES = 30
MIN_SCORED_RESAMPLES = 10           # fewer (a class missing from most resamples of a tiny holdout): no estimate


def gain_deviation(new_csv: Path | str, best_csv: Path | str, summary: TaskSummary,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> float | None:
    """The standard deviation of (new score - best score) over paired bootstrap resamples of the validation rows
    both files predict, or None when it cannot be estimated (other rows, too few scorable resamples)."""
    import numpy as np

    new, best = (_read(path) for path in (new_csv, best_csv))
    if len(new) != len(best) or not np.array_equal(new["__row__"].to_numpy(), best["__row__"].to_numpy()):
        return None
    truth = read_target(summary).iloc[new["__row__"].to_numpy()].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        rows = rng.integers(0, len(new), len(new))
        picked = truth.iloc[rows].reset_index(drop=True)
        try:
            differences.append(
                score_predictions(summary.metric, picked, new.iloc[rows].reset_index(drop=True), summary.submission)
                - score_predictions(summary.metric, picked, best.iloc[rows].reset_index(drop=True), summary.submission))
        except ValueError:          # a resample the metric cannot score (one class only)
            continue
    if len(differences) < MIN_SCORED_RESAMPLES:
        return None
    deviation = float(np.std(differences, ddof=1))
    return deviation if np.isfinite(deviation) else None


def _read(path: Path | str):
    return read_valid_predictions(path).sort_values("__row__", kind="stable").reset_index(drop=True)
