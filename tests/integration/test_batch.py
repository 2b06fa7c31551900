"""`iml batch`: several competitions on one local cluster, a summary, and reruns that skip finished work."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import binary_frames, write_task

pytestmark = pytest.mark.slow


def _env():
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("RAY_ADDRESS", None)
    return env


def test_batch_runs_concurrently_skips_finished_and_retries_failed_on_request(tmp_path):
    tasks = []
    for seed in (1, 2):
        train, test, sample = binary_frames(200, 50, seed=seed)
        tasks.append(write_task(tmp_path / f"comp{seed}", train, test, sample))
    train, test, sample = binary_frames(50, 10)
    train["label"] = 0
    bad = write_task(tmp_path / "broken", train, test, sample)
    train, test, _ = binary_frames(50, 10)
    boxes = write_task(tmp_path / "boxes", train, test, test[["id"]].assign(PredictionString="0.9 1 1 5 5"))
    root = tmp_path / "runs"
    command = [sys.executable, "-m", "iml_ray.cli", "batch", *map(str, tasks), str(bad), str(boxes), "--out", str(root),
               "--time-budget", "120"]

    first = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert first.returncode == 1, first.stderr[-2000:]          # one competition failed, the batch did not
    summary = json.loads((root / "batch.json").read_text())
    status = {c["name"]: c for c in summary["competitions"]}
    assert status["comp1"]["status"] == "ok" and status["comp2"]["status"] == "ok"
    assert status["broken"]["status"] == "failed" and "single value" in status["broken"]["error"]
    # Said, not failed: a task iml-ray does not build neither fails the batch nor is retried as a failure.
    assert status["boxes"]["status"] == "unsupported" and "detection boxes" in status["boxes"]["error"]
    assert not (root / "boxes" / "submission.csv").exists()
    for name in ("comp1", "comp2"):
        assert (root / name / "submission.csv").is_file()
        assert json.loads((root / name / "report.json").read_text())["status"] == "ok"
    finished = json.loads((root / "comp1" / "state.json").read_text())["finished"]

    second = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    summary = json.loads((root / "batch.json").read_text())
    status = {c["name"]: c for c in summary["competitions"]}
    assert status["comp1"]["status"] == "skipped" and status["comp1"]["valid_score"] is not None
    assert status["broken"]["status"] == "failed" and "retry-failed" in status["broken"]["error"]
    assert status["boxes"]["status"] == "unsupported" and "detection boxes" in status["boxes"]["error"]
    assert summary["finished_now"] == 0
    assert json.loads((root / "comp1" / "state.json").read_text())["finished"] == finished
    assert second.returncode == 1

    third = subprocess.run([*command, "--retry-failed"], capture_output=True, text=True, env=_env(), timeout=600)
    assert third.returncode == 1
    summary = json.loads((root / "batch.json").read_text())
    broken = next(c for c in summary["competitions"] if c["name"] == "broken")
    assert broken["status"] == "failed" and "single value" in broken["error"] and summary["finished_now"] == 2


def _state(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_driver_killed_mid_batch_then_the_same_command_finishes_only_what_is_unfinished(tmp_path):
    import signal
    import time

    tasks = []
    for seed in (1, 2, 3):
        train, test, sample = binary_frames(200, 50, seed=seed)
        tasks.append(write_task(tmp_path / f"comp{seed}", train, test, sample))
    root = tmp_path / "runs"
    command = [sys.executable, "-m", "iml_ray.cli", "batch", *map(str, tasks), "--out", str(root),
               "--time-budget", "90", "--max-concurrent", "1", "--tracks", "traditional"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    deadline = time.time() + 300
    # Halfway: the first competition finished, the second started.
    while time.time() < deadline and not (_state(root / "comp1" / "state.json").get("status") == "ok"
                                          and _state(root / "comp2" / "state.json").get("stages")):
        assert driver.poll() is None, "the batch ended before it could be interrupted"
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    finished = _state(root / "comp1" / "state.json")["finished"]
    report_mtime = (root / "comp1" / "report.json").stat().st_mtime_ns
    assert not (root / "comp3" / "state.json").exists()

    again = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads((root / "batch.json").read_text())
    status = {c["name"]: c for c in summary["competitions"]}
    # The finished competition is not run again; the interrupted one resumes; the last one runs.
    assert status["comp1"]["status"] == "skipped"
    assert _state(root / "comp1" / "state.json")["finished"] == finished
    assert (root / "comp1" / "report.json").stat().st_mtime_ns == report_mtime
    assert status["comp2"]["status"] == "ok" and status["comp2"]["resumed"] is True
    assert status["comp3"]["status"] == "ok" and status["comp3"]["resumed"] is False
    for name in ("comp1", "comp2", "comp3"):
        assert _state(root / name / "state.json")["status"] == "ok"
        assert (root / name / "submission.csv").is_file()
