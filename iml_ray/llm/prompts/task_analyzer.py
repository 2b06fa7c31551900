"""TaskAnalyzer prompt and the parser of its answer: target, id column, metric, problem type."""
from __future__ import annotations

from typing import Any

from ..errors import BadAnswer
from ..extract import extract_json
from . import render

PROBLEM_TYPES = ("binary", "multiclass", "regression")


def messages(description: str, train_columns: list[str], test_columns: list[str], sample_columns: list[str] | None,
             n_train: str, n_test: str, train_head: str, draft: dict, metrics: list[str]) -> list[dict]:
    return render("task_analyzer", description=description or "(none)", train_columns=train_columns,
                  test_columns=test_columns, sample_columns=sample_columns or "(no sample submission)",
                  n_train=n_train, n_test=n_test, train_head=train_head, draft=draft,
                  metrics=", ".join(metrics))


def parse(text: str, train_columns: list[str], test_columns: list[str], metrics: list[str]) -> dict[str, Any]:
    """The answer as task.yaml-like hints; raises BadAnswer naming what is wrong."""
    answer = extract_json(text)
    target = answer.get("target")
    if target not in train_columns:
        raise BadAnswer(f"target {target!r} is not a column of train ({train_columns})")
    if target in test_columns:
        raise BadAnswer(f"target {target!r} is also a test column; the target is what test lacks")
    id_column = answer.get("id_column")
    if id_column in ("", "null", "None"):
        id_column = None
    if id_column is not None and id_column not in test_columns:
        raise BadAnswer(f"id_column {id_column!r} is not a column of test ({test_columns})")
    metric = answer.get("metric")
    if metric not in metrics:
        raise BadAnswer(f"metric {metric!r} is not one of {metrics}")
    problem_type = answer.get("problem_type")
    if problem_type not in PROBLEM_TYPES:
        raise BadAnswer(f"problem_type {problem_type!r} is not one of {list(PROBLEM_TYPES)}")
    return {"target": target, "id_column": id_column, "metric": metric, "problem_type": problem_type,
            "why": str(answer.get("why", ""))[:300]}
