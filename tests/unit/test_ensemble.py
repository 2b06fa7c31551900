"""The stacker keeps a blend only when it beats the best candidate on rows it was not fitted on,
and the ensemble's pipeline.py reproduces the blended submission on its own."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
from helpers import binary_frames, write_task

from iml_ray.agents.stacking import blend_function, blend_submissions, ensemble_script, fit_ensemble
from iml_ray.task.inference import analyze_task


def _auc_task(tmp_path, n=600):
    train, test, sample = binary_frames(n_train=n, n_test=50)
    root = write_task(tmp_path / "t", train, test, sample, "Scored on area under the ROC curve.")
    return analyze_task(root), train["label"]


def _noisy(truth, rng, noise):
    score = truth.to_numpy() + rng.normal(0, noise, len(truth))
    return pd.DataFrame({"label": 1 / (1 + np.exp(-score))})


def test_two_independent_noisy_candidates_blend_better_and_are_kept(tmp_path):
    summary, truth = _auc_task(tmp_path)
    rng = np.random.default_rng(12345)   # not binary_frames' seed: its x1 would be the noise
    fit = fit_ensemble({"a": _noisy(truth, rng, 1.0), "b": _noisy(truth, rng, 1.0)}, truth, summary)
    assert fit.kept, fit.reason
    assert fit.blend_score > fit.single_score
    assert min(fit.weights.values()) > 0 and abs(sum(fit.weights.values()) - 1) < 1e-9


def test_a_useless_candidate_gets_no_weight_and_no_blend_is_kept(tmp_path):
    summary, truth = _auc_task(tmp_path)
    rng = np.random.default_rng(54321)
    noise = pd.DataFrame({"label": rng.random(len(truth))})
    fit = fit_ensemble({"good": _noisy(truth, rng, 0.5), "noise": noise}, truth, summary)
    assert not fit.kept
    assert fit.weights["noise"] == 0


def test_blend_votes_labels_and_renormalises_class_probabilities():
    blend = blend_function()
    labels = [pd.DataFrame({"id": ["1", "2"], "y": ["cat", "dog"]}), pd.DataFrame({"id": ["1", "2"], "y": ["dog", "dog"]}),
              pd.DataFrame({"id": ["1", "2"], "y": ["dog", "cat"]})]
    voted = blend(labels, [0.5, 0.25, 0.25], {"kind": "label", "target_columns": ["y"]})
    assert voted["y"].tolist() == ["cat", "dog"] and voted["id"].tolist() == ["1", "2"]   # the heavier member wins a tie
    probs = [pd.DataFrame({"id": ["1"], "a": ["0.2"], "b": ["0.8"]}), pd.DataFrame({"id": ["1"], "a": ["0.6"], "b": ["0.6"]})]
    blended = blend(probs, [1, 1], {"kind": "class_probabilities", "target_columns": ["a", "b"]})
    assert np.isclose(blended[["a", "b"]].to_numpy().sum(), 1.0) and np.isclose(blended["a"].iloc[0], 0.4 / 1.1)


MEMBER = '''"""A member pipeline: writes a constant-ish answer for each test row."""
import argparse
import os

import pandas as pd


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--out")
    parser.add_argument("--holdout")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    test = pd.read_csv(os.path.join(args.data, "test.csv"))
    pd.DataFrame({"id": test["id"], "label": VALUE + 0.001 * test["x1"]}).to_csv(os.path.join(args.out, "submission.csv"),
                                                                               index=False)


if __name__ == "__main__":
    main()
'''


def test_ensemble_pipeline_reruns_to_the_blended_submission(tmp_path):
    summary, truth = _auc_task(tmp_path)
    rng = np.random.default_rng(12345)   # not binary_frames' seed: its x1 would be the noise
    fit = fit_ensemble({"a": _noisy(truth, rng, 1.0), "b": _noisy(truth, rng, 1.0)}, truth, summary)
    assert fit.kept
    members = {"a": MEMBER.replace("VALUE", "0.25"), "b": MEMBER.replace("VALUE", "0.75")}
    outputs = {}
    for name, code in members.items():
        script = tmp_path / f"pipeline_{name}.py"
        script.write_text(code)
        subprocess.run([sys.executable, str(script), "--data", summary.task_dir, "--out", str(tmp_path / name)], check=True)
        outputs[name] = tmp_path / name / "submission.csv"
    expected = blend_submissions(summary, fit, outputs)
    pipeline = tmp_path / "pipeline.py"
    pipeline.write_text(ensemble_script(summary, fit, members))
    assert "iml_ray" not in pipeline.read_text()
    subprocess.run([sys.executable, str(pipeline), "--data", summary.task_dir, "--out", str(tmp_path / "final")], check=True,
                   cwd=tmp_path)
    written = pd.read_csv(tmp_path / "final" / "submission.csv", dtype=str)
    assert written.equals(expected.astype(str))
    weights = fit.weights
    x1 = pd.read_csv(f"{summary.task_dir}/test.csv")["x1"]
    wanted = weights["a"] * (0.25 + 0.001 * x1) + weights["b"] * (0.75 + 0.001 * x1)
    assert np.allclose(written["label"].astype(float), wanted)


def test_the_coordinator_stacks_its_own_leaderboard_and_keeps_the_blend_that_wins(tmp_path):
    """The Coordinator builds the ensemble from the verified candidates it gathered (a failed one is left out);
    a kept blend is written as the run's pipeline.py and submission.csv; one verified candidate is nothing to stack."""
    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.blueprint import Candidate

    summary, truth = _auc_task(tmp_path)
    rng = np.random.default_rng(12345)
    coordinator = Coordinator("auc", True)
    for name, value in (("a", "0.25"), ("b", "0.75")):
        folder = tmp_path / name
        folder.mkdir()
        valid = _noisy(truth, rng, 1.0)
        valid.insert(0, "__row__", range(len(truth)))
        valid.to_csv(folder / "valid_predictions.csv", index=False)
        (folder / "pipeline.py").write_text(MEMBER.replace("VALUE", value))
        subprocess.run([sys.executable, str(folder / "pipeline.py"), "--data", summary.task_dir, "--out", str(folder)],
                       check=True)
        coordinator.report(Candidate(name, str(folder), "verified", "auc", valid_score=0.8 if name == "a" else 0.79,
                                     pipeline_path=str(folder / "pipeline.py"),
                                     submission_path=str(folder / "submission.csv")))
    coordinator.report(Candidate("c", str(tmp_path / "c"), "failed", "auc", failure="timed out"))
    root = tmp_path / "run"
    root.mkdir()
    fit = coordinator.stack(summary, str(root))
    assert fit is coordinator.ensemble and fit.members == ("a", "b") and fit.kept, fit.reason
    assert (root / "pipeline.py").is_file() and (root / "submission.csv").is_file()

    alone = Coordinator("auc", True)
    alone.report(coordinator.candidates["a"])
    assert alone.stack(summary, str(tmp_path / "run")) is None and alone.ensemble is None
