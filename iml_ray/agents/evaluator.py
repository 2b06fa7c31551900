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
        import pandas as pd

        from iml_ray.scoring.evaluate import score_valid_predictions

        frame = pd.read_csv(valid_predictions_csv, low_memory=False)
        frame.columns = [str(c) for c in frame.columns]
        return score_valid_predictions(frame, summary)
