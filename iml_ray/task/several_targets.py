"""Several target columns: multi-label classification (each a 0/1 label) or multi-target regression.

Part of the rules TaskAnalyzer. Every target is its own binary or regression problem over
the same features: the generated pipeline shares one preprocessing and fits one model per
target, and the task is scored by the column-wise form of its metric (the mean over targets).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from iml_ray.errors import TaskError, UnsupportedTask
from iml_ray.metrics.registry import Metric, UnknownMetric, column_wise, get_metric
from iml_ray.metrics.submission import SubmissionFormat


def several_targets(labels: pd.DataFrame, cols, metric: str | None, stated: dict[str, Any],
                    sample: pd.DataFrame | None, decisions: dict[str, str]) -> tuple[str, Metric, SubmissionFormat]:
    """(problem type of each target, the column-wise metric, the submission format) of a multi-target task.

    `labels` holds the labelled rows of every target column; `cols` is inference.ColumnResolution."""
    targets = list(cols.targets)
    text = [t for t in targets if not pd.api.types.is_numeric_dtype(labels[t]) and not pd.api.types.is_bool_dtype(labels[t])]
    if text:
        raise UnsupportedTask(f"unsupported task: it asks for several targets of labels ({', '.join(text[:4])} hold text)",
                              "iml-ray predicts several 0/1 labels or several numbers; state one `target:` in task.yaml "
                              "to predict one of them.")
    binary = all(set(labels[t].astype(float).unique()) <= {0.0, 1.0} for t in targets)
    problem_type = stated.get("problem_type") or ("binary" if binary else "regression")
    if problem_type == "multiclass" or (problem_type == "binary" and not binary):
        raise TaskError(f"problem_type {problem_type} does not fit several targets of these values",
                        "Several targets are 0/1 labels (binary) or numbers (regression).")
    if stated.get("problem_type"):
        decisions["problem_type"] = "stated in task.yaml"
    elif binary:
        decisions["problem_type"] = (f"inferred: multi-label: {len(targets)} targets of 0/1 values, "
                                     "one binary model per label over shared preprocessing")
    else:
        decisions["problem_type"] = (f"inferred: multi-target regression: {len(targets)} numeric targets, "
                                     "one model per target over shared preprocessing")
    if metric:
        try:
            spec = column_wise(metric)
        except UnknownMetric as exc:
            raise TaskError(f"{exc}", "State a metric with a column-wise form in task.yaml (`metric:`).") from None
        if spec.name != get_metric(metric).name:
            decisions["metric"] = decisions.get("metric", "") + f"; {spec.name}: averaged over the {len(targets)} targets"
    else:
        spec = get_metric("mean_auc" if problem_type == "binary" else "mcrmse")
        decisions["metric"] = (f"default: {spec.name}, the mean over the {len(targets)} targets of "
                               f"{'AUC' if problem_type == 'binary' else 'RMSE'} (the description names no metric)")
    if problem_type not in spec.problem_types:
        raise TaskError(f"the metric {spec.name} does not fit {problem_type} targets",
                        "State `metric:` and `problem_type:` in task.yaml.")
    shared = dict(columns=cols.submission_columns, passthrough=cols.passthrough,
                  label_dtype=str(labels[targets[0]].dtype), sample_rows=0 if sample is None else len(sample))
    if problem_type == "binary":
        decisions["submission"] = f"the probability of 1 in each of {len(targets)} label columns"
        fmt = SubmissionFormat(cols.id_column, tuple(targets), "probability", (0, 1), 1, **shared)
    else:
        decisions["submission"] = f"one predicted value in each of {len(targets)} target columns"
        fmt = SubmissionFormat(cols.id_column, tuple(targets), "value", **shared)
    return problem_type, spec, fmt
