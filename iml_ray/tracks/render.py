"""Fill the code templates with settings decided from the data.

The generated modules are plain Python a person can read: the decisions sit in
one CONFIG literal at the top of each module, the code below it is fixed.
"""
from __future__ import annotations

import pprint
from importlib import resources
from typing import Any

from ..blueprint import InterfaceContract, PrepPlan, TrackPlan, TrainPlan
from ..task import TaskSummary


def template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", f"{name}.py.tmpl").read_text()


def literal(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=False)


def render_prep(summary: TaskSummary, plan: PrepPlan) -> str:
    config = {
        "numeric": list(plan.numeric),
        "numeric_coerce": list(plan.numeric_coerce),
        "categorical": list(plan.categorical),
        "text": list(plan.text),
        "datetime": list(plan.datetime),
        "missing_indicators": plan.missing_indicators,
        "max_categories": plan.max_categories,
        "min_category_count": plan.min_category_count,
        "frequency_encoding": plan.frequency_encoding,
        "tfidf_max_features": plan.tfidf_max_features,
        "tfidf_ngram_max": plan.tfidf_ngram_max,
        "tfidf_min_df": plan.tfidf_min_df,
        "datetime_parts": list(plan.datetime_parts),
    }
    return (template("prep").replace("__TASK_NAME__", summary.name)
            .replace("__PREP_CONFIG__", literal(config)))


def render_traditional(summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract) -> str:
    config = {
        "problem_type": summary.problem_type,
        "metric": summary.metric,
        "n_classes": len(contract.classes),
        "models": list(plan.models),
        "lightgbm": dict(plan.lightgbm),
        "linear": {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in plan.linear.items()},
        "class_weight": plan.class_weight,
        "target_transform": plan.target_transform,
        "clip_min": plan.clip_min,
        "inner_valid_fraction": train.inner_valid_fraction,
        "max_train_rows": train.max_train_rows,
        "seed": train.seed,
        "num_threads": plan.num_threads,
    }
    return (template("traditional").replace("__TASK_NAME__", summary.name)
            .replace("__MODEL_CONFIG__", literal(config)))


def render_runner(summary: TaskSummary, contract: InterfaceContract) -> str:
    task = {
        "name": summary.name,
        "target": summary.target,
        "problem_type": summary.problem_type,
        "metric": summary.metric,
        "train_file": summary.train_file,
        "test_file": summary.test_file,
        "sample_submission_file": summary.sample_submission_file,
        "input_columns": list(contract.input_columns),
        "classes": list(contract.classes),
        "submission": summary.submission.to_json(),
    }
    return template("runner").replace("__TASK__", literal(task))
