"""Evaluator: a candidate's validation predictions scored with the framework's own metric.

The framework's own agent: no LLM drives it, and no number printed by generated
code is ever read (`scoring.evaluate`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from iml_ray.agents.base import Agent

if TYPE_CHECKING:
    from iml_ray.task.files import TaskSummary


class Evaluator(Agent):
    name = "evaluator"
    warm_imports = ("iml_ray.scoring.evaluate", "sklearn.metrics")

    def score(self, valid_predictions_csv: str, summary: TaskSummary) -> float:
        from iml_ray.scoring.evaluate import read_valid_predictions, score_valid_predictions

        return score_valid_predictions(read_valid_predictions(valid_predictions_csv), summary)
