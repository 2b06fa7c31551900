"""The peer AutoML systems on one task, as their users call them, within a time budget.

    benchmarks/.peers-venv/bin/python benchmarks/peers.py {autogluon,flaml} TASK_DIR \\
        --answers-json META_JSON --out SUBMISSION_CSV --time-budget SECONDS [--workdir DIR]

Runs in the peers' own environment (benchmarks/.peers-venv, made by
run_suite.py), so it imports nothing from iml-ray. Like the plain baseline, a
peer is told the metric, the target and the submission format (the answers
JSON holds only those, never an answer) and gets the raw columns of train.csv
minus the id.

- autogluon: `TabularPredictor(label, problem_type, eval_metric).fit(train,
  time_limit=S)` with the default preset (medium_quality). Text columns are
  features as they are (AutoGluon makes n-gram and text-statistics features).
- flaml: `AutoML().fit(X, y, task, metric, time_budget=S, seed=0)` with its
  default estimators (plain `flaml`; string columns become categoricals).

RMSLE is not a metric either optimises directly: both fit log1p(target) on
RMSE and submit expm1 of the prediction. A task whose tables hold nothing but
the id (an image task) is refused with exit code 3: tabular AutoML cannot read
the pictures; so are tasks with no train.csv, no id column or several targets.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("peers")
SEED = 0
UNSUPPORTED = 3

AUTOGLUON_METRICS = {"accuracy": "accuracy", "auc": "roc_auc", "logloss": "log_loss", "rmse": "root_mean_squared_error",
                     "rmsle": "root_mean_squared_error", "mae": "mean_absolute_error", "mse": "mean_squared_error",
                     "r2": "r2", "balanced_accuracy": "balanced_accuracy", "f1": "f1", "f1_macro": "f1_macro",
                     "qwk": "quadratic_kappa", "mcc": "mcc", "gini": "roc_auc", "pearson": "pearsonr",
                     "spearman": "spearmanr"}
FLAML_METRICS = {"accuracy": "accuracy", "auc": "roc_auc", "logloss": "log_loss", "rmse": "rmse", "rmsle": "rmse",
                 "mae": "mae", "mse": "mse", "r2": "r2", "f1": "f1", "f1_macro": "macro_f1", "gini": "roc_auc"}


class Unsupported(Exception):
    """The peer cannot handle this kind of task."""


def problem_type(meta: dict) -> str:
    fmt = meta["submission_format"]
    if fmt["kind"] == "value":
        return "regression"
    return "binary" if len(fmt["classes"]) == 2 else "multiclass"


def load(task_dir: Path, meta: dict) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    # The layouts of real competitions (suite_layouts.py) are what these peers' users adapt by hand: no
    # train.csv, no id column, several targets. Refused, as image tasks are.
    if not (task_dir / "train.csv").is_file():
        raise Unsupported("no train.csv (JSON tables or zipped folders): TabularPredictor and AutoML take one table")
    if not meta.get("id_column"):
        raise Unsupported("no id column: the submission's rows are keyed by passthrough columns")
    if len(meta.get("targets") or [meta["target"]]) > 1:
        raise Unsupported("several targets: one label column per predictor")
    train = pd.read_csv(task_dir / "train.csv", low_memory=False)
    test = pd.read_csv(task_dir / "test.csv", low_memory=False)
    id_column, target = meta["id_column"], meta["target"]
    features = [name for name in test.columns if name != id_column]
    if not features:
        raise Unsupported("the tables hold only the id (an image or file task): tabular AutoML cannot use it")
    y = train[target]
    if meta["metric"] == "rmsle":
        y = np.log1p(y.clip(lower=0))
    return train[features], y, test[features], test[id_column]


def fit_autogluon(x: pd.DataFrame, y: pd.Series, x_test: pd.DataFrame, meta: dict, budget: float,
                  workdir: Path) -> tuple[np.ndarray, list]:
    from autogluon.tabular import TabularPredictor

    kind = problem_type(meta)
    label = "__target__"
    predictor = TabularPredictor(label=label, problem_type=kind, eval_metric=AUTOGLUON_METRICS.get(meta["metric"]),
                                 path=str(workdir / "autogluon"), verbosity=1)
    predictor.fit(x.assign(**{label: y.values}), time_limit=budget)
    if kind == "regression":
        return np.asarray(predictor.predict(x_test)), []
    proba = predictor.predict_proba(x_test, as_multiclass=True)
    return proba.to_numpy(), list(proba.columns)


def fit_flaml(x: pd.DataFrame, y: pd.Series, x_test: pd.DataFrame, meta: dict, budget: float,
              workdir: Path) -> tuple[np.ndarray, list]:
    from flaml import AutoML

    kind = problem_type(meta)
    metric = FLAML_METRICS.get(meta["metric"], "auto")
    if metric == "roc_auc" and kind == "multiclass":
        metric = "roc_auc_ovr"
    automl = AutoML()
    automl.fit(x, y, task="regression" if kind == "regression" else "classification", metric=metric,
               time_budget=budget, seed=SEED, verbose=0, log_file_name=str(workdir / "flaml.log"))
    if kind == "regression":
        return np.asarray(automl.predict(x_test)), []
    return np.asarray(automl.predict_proba(x_test)), list(automl.classes_)


SYSTEMS = {"autogluon": fit_autogluon, "flaml": fit_flaml}


def to_submission(ids: pd.Series, predictions: np.ndarray, classes: list, meta: dict) -> pd.DataFrame:
    """The submission in the task's format, from values (regression) or class probabilities in `classes` order."""
    fmt = meta["submission_format"]
    columns = fmt["target_columns"]
    submission = pd.DataFrame({meta["id_column"]: ids.values})
    if fmt["kind"] == "value":
        if meta["metric"] == "rmsle":
            predictions = np.clip(np.expm1(predictions), 0, None)
        submission[columns[0]] = predictions
        return submission
    # Class values read back from CSV and from JSON may differ in type (1 vs "1"): match by text.
    position = {str(c): i for i, c in enumerate(classes)}
    if fmt["kind"] == "label":
        submission[columns[0]] = np.asarray(classes, dtype=object)[predictions.argmax(axis=1)]
    elif fmt["kind"] == "probability":
        submission[columns[0]] = predictions[:, position[str(fmt["positive_class"])]]
    else:
        for column, cls in zip(columns, fmt["classes"]):
            submission[column] = predictions[:, position[str(cls)]]
    return submission


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("task_dir", type=Path)
    parser.add_argument("--answers-json", type=Path, required=True, help="metric and submission format of the task")
    parser.add_argument("--out", type=Path, required=True, help="where to write the submission CSV")
    parser.add_argument("--time-budget", type=float, required=True, help="seconds the peer may search")
    parser.add_argument("--workdir", type=Path, help="scratch directory for models and logs (default: beside --out)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    meta = json.loads(args.answers_json.read_text())
    workdir = args.workdir or args.out.parent / f"{args.out.stem}.{args.system}"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        x, y, x_test, ids = load(args.task_dir, meta)
    except Unsupported as exc:
        log.error("%s cannot handle %s: %s", args.system, args.task_dir.name, exc)
        return UNSUPPORTED
    predictions, classes = SYSTEMS[args.system](x, y, x_test, meta, args.time_budget, workdir)
    submission = to_submission(ids, predictions, classes, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    submission.to_csv(args.out, index=False)
    log.info("%s wrote %s (%d rows) in %.1f s", args.system, args.out, len(submission), time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
