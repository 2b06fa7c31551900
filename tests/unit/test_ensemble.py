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


MEMBER_FRAME = '''"""A member pipeline: what it writes for each test row."""
import argparse
import os

import numpy as np
import pandas as pd


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--out")
    parser.add_argument("--holdout")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    test = pd.read_csv(os.path.join(args.data, "test.csv"))
WRITES

if __name__ == "__main__":
    main()
'''
# A constant-ish answer.
MEMBER = MEMBER_FRAME.replace("WRITES", """\
    pd.DataFrame({"id": test["id"], "label": VALUE + 0.001 * test["x1"]}).to_csv(os.path.join(args.out, "submission.csv"),
                                                                               index=False)
""")


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


def _accuracy_task(tmp_path, n=600):
    train, test, sample = binary_frames(n_train=n, n_test=50)
    root = write_task(tmp_path / "t", train, test, sample, "Evaluated on accuracy.")
    return analyze_task(root), train["label"]


def _labels_and_probabilities(truth, rng):
    p = _noisy(truth, rng, 1.0)["label"].to_numpy()
    return pd.DataFrame({"label": np.where(p > 0.5, "1", "0")}), pd.DataFrame({"0": 1 - p, "1": p})


def test_on_a_label_task_two_members_blend_their_probabilities_not_their_votes(tmp_path):
    """A weighted vote of two members' labels is always the heavier member's label: no blend can beat the best
    member so. Their probabilities, averaged, can."""
    from iml_ray.agents.stacking import probability_format

    summary, truth = _accuracy_task(tmp_path)
    assert summary.submission.kind == "label"
    rng = np.random.default_rng(12345)
    (labels_a, probs_a), (labels_b, probs_b) = _labels_and_probabilities(truth, rng), _labels_and_probabilities(truth, rng)
    voted = fit_ensemble({"a": labels_a, "b": labels_b}, truth, summary)
    assert not voted.kept
    blended = fit_ensemble({"a": probs_a, "b": probs_b}, truth, summary, fmt=probability_format(summary, ["0", "1"]))
    assert blended.kept, blended.reason
    assert blended.blend_score > blended.single_score and min(blended.weights.values()) > 0


# A label task's member: each test row's label and its probabilities.
LABEL_MEMBER = MEMBER_FRAME.replace("WRITES", """\
    p = 1 / (1 + np.exp(-SLOPE * test["x1"] - SHIFT))
    pd.DataFrame({"id": test["id"], "label": (p > 0.5).astype(int)}).to_csv(os.path.join(args.out, "submission.csv"),
                                                                         index=False)
    pd.DataFrame({"id": test["id"], "0": 1 - p, "1": p}).to_csv(os.path.join(args.out, "test_proba.csv"), index=False)
""")


def test_the_coordinator_blends_a_label_tasks_probabilities_and_the_pipeline_reruns_to_it(tmp_path):
    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.blueprint import Candidate

    summary, truth = _accuracy_task(tmp_path)
    rng = np.random.default_rng(12345)
    coordinator = Coordinator("accuracy", True)
    members = {"a": ("4.0", "0.5"), "b": ("1.0", "-0.5")}
    for name, (slope, shift) in members.items():
        folder = tmp_path / name
        folder.mkdir()
        labels, probabilities = _labels_and_probabilities(truth, rng)
        for frame, file in ((labels, "valid_predictions.csv"), (probabilities, "valid_proba.csv")):
            frame.insert(0, "__row__", range(len(truth)))
            frame.to_csv(folder / file, index=False)
        (folder / "pipeline.py").write_text(LABEL_MEMBER.replace("SLOPE", slope).replace("SHIFT", shift))
        subprocess.run([sys.executable, str(folder / "pipeline.py"), "--data", summary.task_dir, "--out", str(folder)],
                       check=True)
        coordinator.report(Candidate(name, str(folder), "verified", "accuracy", valid_score=0.8 if name == "a" else 0.79,
                                     pipeline_path=str(folder / "pipeline.py"),
                                     submission_path=str(folder / "submission.csv")))
    root = tmp_path / "run"
    root.mkdir()
    fit = coordinator.stack(summary, str(root))
    assert fit.kept and min(fit.weights.values()) > 0 and fit.over == "probabilities", fit.reason
    # The submission is the likelier label of the weighted probabilities, on the test rows in the sample's order.
    x1 = pd.read_csv(f"{summary.task_dir}/test.csv")["x1"]
    p = sum(fit.weights[name] / (1 + np.exp(-float(slope) * x1 - float(shift))) for name, (slope, shift) in members.items())
    written = pd.read_csv(root / "submission.csv", dtype=str)
    assert list(written.columns) == ["id", "label"]
    assert written["label"].tolist() == np.where(p > 0.5, "1", "0").tolist()
    assert (written["label"] != pd.read_csv(tmp_path / "a" / "submission.csv", dtype=str)["label"]).any()
    rerun = tmp_path / "rerun"
    subprocess.run([sys.executable, str(root / "pipeline.py"), "--data", summary.task_dir, "--out", str(rerun)], check=True,
                   cwd=tmp_path)
    assert pd.read_csv(rerun / "submission.csv", dtype=str).equals(written)


def test_a_label_tasks_pipeline_writes_each_labels_probability_beside_its_answers(tmp_path):
    """What the stacker blends on a label task: one probability column per label, row for row as the answers, whose
    likeliest label is the answer."""
    import time

    from helpers import verified_candidate

    summary, _ = _accuracy_task(tmp_path)
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    out = tmp_path / "cand" / f"round_{result.details['best_round']}" / "output"
    for answers, probabilities, key in (("valid_predictions.csv", "valid_proba.csv", "__row__"),
                                        ("submission.csv", "test_proba.csv", "id")):
        answer = pd.read_csv(out / answers, dtype=str)
        proba = pd.read_csv(out / probabilities, dtype=str)
        assert list(proba.columns) == [key, "0", "1"]
        assert proba[key].tolist() == answer[key].tolist()
        values = proba[["0", "1"]].astype(float).to_numpy()
        assert np.allclose(values.sum(axis=1), 1.0)
        assert [["0", "1"][i] for i in values.argmax(axis=1)] == answer["label"].tolist()


def _round(folder, truth, rng, value):
    """A track's round folder: its pipeline and the outputs it wrote (validation predictions from noisy scores)."""
    output = folder / "output"
    output.mkdir(parents=True)
    valid = _noisy(truth, rng, 1.0)
    valid.insert(0, "__row__", range(len(truth)))
    valid.to_csv(output / "valid_predictions.csv", index=False)
    (folder / "pipeline_t.py").write_text(MEMBER.replace("VALUE", value))
    subprocess.run([sys.executable, str(folder / "pipeline_t.py"), "--data", str(folder.parent.parent / "t"),
                    "--out", str(output)], check=True)


def test_a_round_its_track_could_not_tell_from_its_best_is_blended_with_it(tmp_path):
    """One track: its best round 1, a round 2 that scored better within the validation rows' noise (not kept),
    a round 3 that scored worse and a round 4 within the noise whose files are gone. The Coordinator stacks the
    best with round 2 alone, keeps the blend of two independent noisy answers, and its pipeline.py reruns both."""
    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.blueprint import Candidate, RepairRound

    summary, truth = _auc_task(tmp_path)
    rng = np.random.default_rng(12345)
    code = tmp_path / "cand"
    for number, value in ((1, "0.25"), (2, "0.75"), (3, "0.5")):
        _round(code / f"round_{number}", truth, rng, value)
    for number, name in ((1, "pipeline_t.py"), (2, "pipeline_t.round_2.py"), (3, "pipeline_t.round_3.py")):
        (code / name).write_text((code / f"round_{number}" / "pipeline_t.py").read_text())
    rounds = (RepairRound(1, "ok", 1.0, score=0.80), RepairRound(2, "ok", 1.0, score=0.81, step="knn", kept=False,
                                                                 within_noise=True),
              RepairRound(3, "ok", 1.0, score=0.70, step="xgboost", kept=False),
              RepairRound(4, "ok", 1.0, score=0.82, step="catboost", kept=False, within_noise=True))
    track = Candidate("t", str(code), "verified", "auc", valid_score=0.80, rounds=rounds,
                      pipeline_path=str(code / "pipeline_t.py"), submission_path=str(code / "round_1/output/submission.csv"))
    assert [r.round for r in track.within_noise_rounds()] == [2, 4]
    assert track.round_pipeline(2) == code / "pipeline_t.round_2.py"
    coordinator = Coordinator("auc", True)
    coordinator.report(track)
    root = tmp_path / "run"
    root.mkdir()
    fit = coordinator.stack(summary, str(root))
    assert fit is not None and fit.members == ("t", "t.round_2") and fit.kept, fit
    assert min(fit.weights.values()) > 0
    subprocess.run([sys.executable, str(root / "pipeline.py"), "--data", summary.task_dir, "--out", str(tmp_path / "rerun")],
                   check=True, cwd=tmp_path)
    rerun = pd.read_csv(tmp_path / "rerun" / "submission.csv")
    x1 = pd.read_csv(f"{summary.task_dir}/test.csv")["x1"]
    wanted = fit.weights["t"] * (0.25 + 0.001 * x1) + fit.weights["t.round_2"] * (0.75 + 0.001 * x1)
    assert np.allclose(rerun["label"], wanted)
    assert pd.read_csv(root / "submission.csv")["label"].round(6).equals(rerun["label"].round(6))

    plain = Coordinator("auc", True)
    plain.report(Candidate("t", str(code), "verified", "auc", valid_score=0.80, rounds=rounds[:1] + rounds[2:3],
                           pipeline_path=str(code / "pipeline_t.py"), submission_path=track.submission_path))
    assert plain.stack(summary, str(tmp_path / "run")) is None
