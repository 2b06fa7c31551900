"""The fallback (the target's prior) is a real pipeline: it passes the framework's checks on any task."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import binary_frames, write_task

from iml_ray.agents.assembler import Assembler
from iml_ray.blueprint import PrepPlan, TrackPlan, TrainPlan
from iml_ray.codegen.render import render_model, render_prep
from iml_ray.plan.guideline_rules import make_contract
from iml_ray.safety.contract import check_submission, check_valid_predictions
from iml_ray.scoring.evaluate import score_valid_predictions
from iml_ray.task.inference import analyze_task


def _run_fallback(root, tmp_path):
    summary = analyze_task(root)
    contract = make_contract(summary, PrepPlan())
    plan = TrackPlan(track="fallback", models=("prior",), model_template="prior")
    script, _ = Assembler().assemble(summary, contract, "fallback", render_prep(summary, PrepPlan()),
                                     render_model(summary, plan, TrainPlan(), contract))
    (tmp_path / "pipeline.py").write_text(script)
    rows = list(range(0, summary.n_train, 5))
    (tmp_path / "holdout.json").write_text(json.dumps(rows))
    out = tmp_path / "out"
    subprocess.run([sys.executable, "pipeline.py", "--data", str(root), "--out", str(out), "--holdout", "holdout.json"],
                   cwd=tmp_path, check=True, timeout=120, capture_output=True)
    problems, _ = check_valid_predictions(out / "valid_predictions.csv", summary, np.asarray(rows))
    assert problems == [] and check_submission(out / "submission.csv", summary) == []
    return summary, out, pd.read_csv(out / "valid_predictions.csv")


def test_binary_prior_predicts_the_training_rate(tmp_path):
    train, test, sample = binary_frames(300, 40)
    root = write_task(tmp_path / "b", train, test, sample, "Scored on log loss.")
    summary, out, valid = _run_fallback(root, tmp_path)
    fitted_on = train.drop(index=range(0, 300, 5))["label"]
    assert np.allclose(valid["label"], (fitted_on.sum() + 1) / (len(fitted_on) + 2))
    assert valid["label"].nunique() == 1


@pytest.mark.parametrize("metric, expected", [("mean absolute error", np.median), ("root mean squared error", np.mean)])
def test_regression_prior_is_the_metrics_best_constant(tmp_path, metric, expected):
    rng = np.random.default_rng(0)
    y = rng.exponential(10, 200)
    frame = pd.DataFrame({"id": range(200), "x": rng.normal(size=200), "y": y})
    root = write_task(tmp_path / "r", frame.iloc[:150], frame.iloc[150:].drop(columns="y"),
                      pd.DataFrame({"id": range(150, 200), "y": 0.0}), f"Scored on {metric}.")
    summary, out, valid = _run_fallback(root, tmp_path)
    fitted_on = np.delete(y[:150], np.arange(0, 150, 5))
    assert np.allclose(valid["y"], expected(fitted_on))
    assert np.isfinite(score_valid_predictions(valid, summary))
