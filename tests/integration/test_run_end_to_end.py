"""One competition end to end on a real local Ray cluster (one per module, 2 CPUs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import binary_frames, write_task

from iml_ray.config import RunConfig
from iml_ray.run.engine import run_competition

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    import ray

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()


def test_binary_task_ends_with_verified_submission_and_reproducible_pipeline(tmp_path):
    train, test, sample = binary_frames(400, 120)
    task = write_task(tmp_path / "toy", train, test, sample, "# Toy\n\n## Evaluation\nScored on area under the ROC curve.\n")
    out = tmp_path / "out"
    result = run_competition(task, out, RunConfig(time_budget_s=180, tracks=("traditional",)))
    assert result.status == "ok"

    submission = pd.read_csv(out / "submission.csv")
    assert list(submission.columns) == ["id", "label"]
    assert submission["id"].tolist() == sample["id"].tolist()
    assert submission["label"].between(0, 1).all()       # AUC → probabilities of class 1

    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok"
    assert report["task"]["metric"] == "auc"
    board = report["leaderboard"]
    assert board[0]["track"] == "traditional" and board[0]["status"] == "verified"
    # The track improved on its first candidate while time was left, and says why it stopped.
    rounds = board[0]["rounds"]
    assert rounds[0]["status"] == "ok" and len(rounds) > 1 and all(r["step"] for r in rounds[1:])
    assert board[0]["stopped"] and board[0]["best_round"] in [r["round"] for r in rounds]
    # A round that adds a family read the others' fits back from the earlier rounds; the shared fits are gone
    # once the track ends.
    code_dir = out / "candidates" / "traditional"
    adds = [r["round"] for r in rounds[1:] if r["step"] in ("catboost", "extra_trees", "xgboost", "knn")]
    assert adds, rounds
    reused = [json.loads((code_dir / f"round_{n}" / "output" / "run_info.json").read_text())["final"]["model"]
              .get("fits", {}).get("reused", 0) for n in adds]
    assert max(reused) > 0, reused
    assert not (code_dir / "fit_cache").exists()
    # 400 rows: validated by 5 folds that hold every row once. The framework's own score on them, recomputed here
    # from the written predictions of the best round.
    folds = json.loads((out / "plan" / "holdout.json").read_text())["folds"]
    assert len(folds) == 5 and sorted(sum(folds, [])) == list(range(400))
    best = out / "candidates" / "traditional" / f"round_{board[0]['best_round']}"
    valid = pd.read_csv(best / "output" / "valid_predictions.csv")
    assert sorted(valid["__row__"]) == list(range(400))
    from sklearn.metrics import roc_auc_score
    truth = train["label"].to_numpy()[valid["__row__"].to_numpy()]
    assert board[0]["valid_score"] == pytest.approx(roc_auc_score(truth, valid["label"]), abs=1e-9)
    assert board[0]["valid_score"] > 0.7
    # One track is blended only with its own rounds that scored better within the validation rows' noise.
    noisy = {f"traditional.round_{r['round']}" for r in rounds if r["within_noise"]}
    ensemble = report.get("ensemble")
    assert (ensemble is None) == (not noisy), (ensemble, noisy)
    if ensemble is not None:
        assert ensemble["members"][0] == "traditional" and set(ensemble["members"][1:]) <= noisy
    if report["chosen"]["track"] == "ensemble":
        assert ensemble["kept"] and report["chosen"]["valid_score"] == ensemble["blend_score"]
    else:
        assert report["chosen"]["valid_score"] == board[0]["valid_score"]

    # k folds may each choose another blend of families: no fit on every row is made, the submission is the fold
    # fits' average, and the pipeline carries the folds that rebuild it.
    info = json.loads((best / "output" / "run_info.json").read_text())
    assert info["validated_blend"] is None and len(info["validation"]["blends"]) == 1
    assert info["final"]["cross_fit"] == 5
    marks = info["cross_fit_folds"].replace(" ", "")
    assert [[n for n, mark in enumerate(marks) if mark == str(k)] for k in range(5)] == folds

    for name in ("task_summary", "profile", "knowledge", "blueprint", "contract", "holdout"):
        assert (out / "plan" / f"{name}.json").is_file()

    # The standalone pipeline imports no iml_ray and rebuilds the same submission.
    pipeline = (out / "pipeline.py").read_text()
    assert "iml_ray" not in pipeline
    assert "\nVALIDATED_BLEND = None\n" in pipeline and "\nCROSS_FIT_FOLDS = None\n" not in pipeline
    rerun = tmp_path / "rerun"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, str(out / "pipeline.py"), "--data", str(task), "--out", str(rerun)], check=True,
                   cwd=tmp_path, env=env, capture_output=True)
    again = pd.read_csv(rerun / "submission.csv")
    # A blend's weights are written rounded to 6 places.
    pd.testing.assert_frame_equal(again, submission, check_exact=False,
                                  rtol=1e-6 if report["chosen"]["track"] == "ensemble" else 1e-9)


def test_regression_task_with_text_column(tmp_path):
    rng = np.random.default_rng(3)
    words = np.array(["great", "awful", "fine", "cheap", "lovely", "broken", "fast", "slow"])
    n = 300
    texts = [" ".join(rng.choice(words, size=8)) for _ in range(n)]
    good = np.array([t.count("great") + t.count("lovely") - t.count("awful") - t.count("broken") for t in texts])
    frame = pd.DataFrame({"row_id": range(n), "review": texts, "price": rng.uniform(1, 50, n)})
    frame["rating"] = 3 + good + rng.normal(0, 0.3, n)
    train, test = frame.iloc[:240], frame.iloc[240:].drop(columns="rating")
    sample = pd.DataFrame({"row_id": test["row_id"], "rating": 0.0})
    task = write_task(tmp_path / "reviews", train, test, sample, "Predict the rating. Evaluated with mean absolute error.")
    result = run_competition(task, tmp_path / "out", RunConfig(time_budget_s=180, tracks=("traditional",)))
    assert result.status == "ok"
    profile = json.loads((tmp_path / "out" / "plan" / "profile.json").read_text())
    assert profile["roles"]["text"] == ["review"]
    knowledge = json.loads((tmp_path / "out" / "plan" / "knowledge.json").read_text())
    assert {"text-tfidf", "mae-objective"} <= {c["id"] for c in knowledge["cards"]}
    # Far better than predicting the mean rating, which scores about the target's MAD.
    mad = float(np.mean(np.abs(train["rating"] - train["rating"].mean())))
    assert result.best.valid_score < 0.6 * mad


def test_resume_skips_finished_work(tmp_path):
    train, test, sample = binary_frames(200, 50)
    task = write_task(tmp_path / "toy", train, test, sample)
    out = tmp_path / "out"
    first = run_competition(task, out, RunConfig(time_budget_s=120, tracks=("traditional",)))
    assert first.status == "ok"
    submission_before = (out / "submission.csv").read_bytes()
    rounds_before = sorted(p.name for p in (out / "candidates" / "traditional").iterdir())
    second = run_competition(task, out, RunConfig(time_budget_s=120, tracks=("traditional",)), resume=True)
    assert second.status == "ok"
    assert (out / "submission.csv").read_bytes() == submission_before
    assert sorted(p.name for p in (out / "candidates" / "traditional").iterdir()) == rounds_before


def test_the_stacked_ensemble_runs_through_the_engine(tmp_path):
    """Two tracks, --ensemble stack: the Coordinator's leaderboard is blended when the blend wins on data it was not
    fitted on; either way report.json says what was decided, and pipeline.py writes the submission that was chosen."""
    train, test, sample = binary_frames(500, 120)
    task = write_task(tmp_path / "toy", train, test, sample, "# Toy\n\n## Evaluation\nlog loss\n")
    out = tmp_path / "out"
    result = run_competition(task, out, RunConfig(time_budget_s=120, tracks=("traditional", "custom_nn"),
                                                  ensemble="stack"))
    assert result.status == "ok"
    report = json.loads((out / "report.json").read_text())
    verified = [c["track"] for c in report["leaderboard"] if c["status"] == "verified"]
    assert len(verified) == 2
    # Columns alone on two CPUs: the network waited for the trees, which ran on both CPUs, then took them.
    assert report["resources"]["custom_nn"]["waits_for"] == ["traditional"]
    board = {c["track"]: c for c in report["leaderboard"]}
    assert board["custom_nn"]["started_s"] >= board["traditional"]["finished_s"] - 1.0, board
    for track in ("traditional", "custom_nn"):
        # The models' own threads (LightGBM's num_threads, torch's), not only the sandbox's thread variables.
        pipeline = (out / "candidates" / track / "round_1" / f"pipeline_{track}.py").read_text()
        assert "'num_threads': 2," in pipeline, track
    ensemble = report["ensemble"]
    # The tracks' best candidates, then their rounds that scored better within the validation rows' noise.
    noisy = {f"{c['track']}.round_{r['round']}" for c in report["leaderboard"] for r in c["rounds"] if r["within_noise"]}
    assert sorted(ensemble["members"][:2]) == sorted(verified) and set(ensemble["members"][2:]) <= noisy
    assert ensemble["reason"]
    assert report["timings_s"]["stack"] > 0          # the Coordinator's task, timed by the driver that waited for it
    assert ensemble["blend_score"] is not None and ensemble["single_score"] is not None
    submission = pd.read_csv(out / "submission.csv")
    if ensemble["kept"]:
        assert report["chosen"]["track"] == "ensemble" and ensemble["blend_score"] < ensemble["single_score"]
        assert sum(ensemble["weights"].values()) == pytest.approx(1.0)
    else:
        assert report["chosen"]["track"] == report["leaderboard"][0]["track"]
        best = report["leaderboard"][0]
        single = pd.read_csv(out / "candidates" / best["track"] / f"round_{best['best_round']}" / "output" /
                             "submission.csv")
        pd.testing.assert_frame_equal(single, submission)
    rerun = tmp_path / "rerun"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, str(out / "pipeline.py"), "--data", str(task), "--out", str(rerun)], check=True,
                   cwd=tmp_path, env=env, capture_output=True)
    pd.testing.assert_frame_equal(pd.read_csv(rerun / "submission.csv"), submission, check_exact=False, rtol=1e-6)
