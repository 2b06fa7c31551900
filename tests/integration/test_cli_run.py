"""`iml run` as a user runs it: its own local Ray cluster, the closing summary, Ctrl-C, --resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from helpers import binary_frames, run_on_small_disk, write_task

pytestmark = pytest.mark.slow

IML = [sys.executable, "-m", "iml_ray.cli"]


def _env():
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("RAY_ADDRESS", None)
    return env


def _pipelines_running(out) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(out) in cmdline and "pipeline_traditional.py" in cmdline:
            found.append(proc)
    return found


def test_run_prints_summary_and_writes_the_run_directory(tmp_path):
    train, test, sample = binary_frames(300, 60)
    task = write_task(tmp_path / "toy", train, test, sample, "## Evaluation\nAccuracy.")
    out = tmp_path / "out"
    result = subprocess.run([*IML, "run", str(task), "--out", str(out), "--time-budget", "120"], capture_output=True,
                            text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"submission: {out.resolve() / 'submission.csv'}" in result.stdout
    assert "Traceback" not in result.stderr
    assert "target — inferred" in result.stderr
    for name in ("submission.csv", "pipeline.py", "report.json", "state.json"):
        assert (out / name).is_file()
    # The summary names the winner the report chose: the verified track with the best validation score.
    report = json.loads((out / "report.json").read_text())
    verified = [c for c in report["leaderboard"] if c["status"] == "verified"]
    chosen = report["chosen"]
    assert chosen["valid_score"] == max(c["valid_score"] for c in verified)
    assert f"chosen: {chosen['track']}, validation accuracy = {chosen['valid_score']:.5g}" in result.stdout
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "ok"
    shown = subprocess.run([*IML, "report", str(out)], capture_output=True, text=True, env=_env())
    assert shown.returncode == 0
    assert next(line for line in result.stdout.splitlines() if line.startswith("chosen:")) in shown.stdout


def test_a_four_row_task_is_validated_by_folds_and_three_labelled_rows_are_refused(tmp_path):
    """The held-out failure (issue 18): a 4-row train, AUC. Its one-row holdout made every candidate fail and `iml run`
    exit 1; now each row is held out once, the tracks verify, and 3 labelled rows get one line and exit 2."""
    import pandas as pd

    train = pd.DataFrame({"id": [1, 2, 3, 4], "x": [0.1, 0.9, 0.2, 0.8], "colour": ["r", "b", "r", "b"],
                          "label": [0, 1, 0, 1]})
    test = pd.DataFrame({"id": [5, 6], "x": [0.15, 0.85], "colour": ["r", "b"]})
    sample = pd.DataFrame({"id": [5, 6], "label": 0.5})
    task = write_task(tmp_path / "four", train, test, sample, "## Evaluation\nAUC")
    out = tmp_path / "out"
    result = subprocess.run([*IML, "run", str(task), "--out", str(out), "--time-budget", "60", "--tracks",
                             "traditional,custom_nn"], capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "scored by iml-ray on 4 folds, every labelled row held out once" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["validation"]["folds"] == 4
    assert all(c["status"] == "verified" for c in report["leaderboard"]), report["leaderboard"]
    assert pd.read_csv(out / "submission.csv")["id"].tolist() == [5, 6]

    three = write_task(tmp_path / "three", train.assign(label=[0, 1, 0, None]), test, sample, "## Evaluation\nAUC")
    refused = subprocess.run([*IML, "run", str(three), "--out", str(tmp_path / "out3"), "--time-budget", "60"],
                             capture_output=True, text=True, env=_env(), timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "error: train.csv has 3 labelled row(s) of 'label': too few to validate a model" in refused.stderr
    assert not (tmp_path / "out3").exists()


def test_ctrl_c_stops_generated_code_and_resume_finishes(tmp_path):
    train, test, sample = binary_frames(5000, 500)
    task = write_task(tmp_path / "toy", train, test, sample)
    out = tmp_path / "out"
    proc = subprocess.Popen([*IML, "run", str(task), "--out", str(out), "--time-budget", "300"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.time() + 120
    while not _pipelines_running(out):
        assert proc.poll() is None, "the run ended before its pipeline could be interrupted"
        assert time.time() < deadline, "no pipeline started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    # Stopping Ray and the generated code takes seconds, but a minute and more on a busy 2-core machine.
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stderr[-3000:]
    assert "resumable with --resume" in stderr and "Traceback" not in stderr
    time.sleep(1)
    assert not _pipelines_running(out), "generated code outlived the interrupted run"
    state = json.loads((out / "state.json").read_text())
    assert state.get("interrupted") and "profile" in state["stages"]
    planned = state["stages"]["profile"]["finished"]

    refused = subprocess.run([*IML, "run", str(task), "--out", str(out)], capture_output=True, text=True, env=_env())
    assert refused.returncode == 2 and "holds an earlier run" in refused.stderr

    resumed = subprocess.run([*IML, "run", str(task), "--out", str(out), "--resume", "--time-budget", "150"],
                             capture_output=True, text=True, env=_env(), timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "ok"
    assert state["stages"]["profile"]["finished"] == planned, "a finished stage was recomputed"
    assert "resume: profile is finished" in resumed.stderr


def test_unusable_data_found_by_the_analyzer_writes_nothing(tmp_path):
    train, test, sample = binary_frames(50, 10)
    train["label"] = 1
    task = write_task(tmp_path / "const", train, test, sample)
    out = tmp_path / "out"
    result = subprocess.run([*IML, "run", str(task), "--out", str(out)], capture_output=True, text=True, env=_env(),
                            timeout=300)
    assert result.returncode == 2
    assert "error: the target 'label' has a single value (1)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


FULL_DISK = r'''
import json, os, subprocess, sys
from pathlib import Path

mount, task = Path(sys.argv[1]), sys.argv[3]
out = mount / "out"
iml = [sys.executable, "-m", "iml_ray.cli", "run", task, "--out", str(out), "--time-budget", "90", "--tracks", "traditional"]
results = {"files": ["report.json", "submission.csv", "pipeline.py", "state.json", "plan/profile.json"]}
first = subprocess.run(iml, capture_output=True, text=True)
results["first"] = [first.returncode, first.stderr[-3000:]]
results["before"] = {f: (out / f).read_text() for f in results["files"] if (out / f).is_file()}
hidden = lambda: sorted(str(p.relative_to(out)) for p in out.rglob(".*") if p.is_file())   # the writers' temporaries
results["hidden_before"] = hidden()
with open(mount / "filler", "wb", buffering=0) as filler:       # unbuffered: no flush left to fail at close
    try:
        while True:
            filler.write(bytes(1 << 16))
    except OSError as exc:
        results["filled"] = exc.errno
full = subprocess.run(iml + ["--resume"], capture_output=True, text=True)
results["full"] = [full.returncode, full.stderr[-3000:]]
results["after"] = {f: (out / f).read_text() for f in results["files"] if (out / f).is_file()}
results["hidden_after"] = hidden()
os.remove(mount / "filler")
again = subprocess.run(iml + ["--resume"], capture_output=True, text=True)
results["again"] = [again.returncode, again.stderr[-3000:]]
results["state"] = json.loads((out / "state.json").read_text())
print(json.dumps(results))
'''


def test_a_full_disk_stops_a_rerun_with_one_clear_error_and_resume_finishes_once_there_is_space(tmp_path):
    train, test, sample = binary_frames(300, 60)
    task = write_task(tmp_path / "toy", train, test, sample, "## Evaluation\nAccuracy.")
    found = run_on_small_disk(FULL_DISK, tmp_path / "disk", "64m", task, timeout=600, env=_env())

    assert found["first"][0] == 0, found["first"][1]
    assert set(found["before"]) == set(found["files"])
    assert found["filled"] == 28                                   # ENOSPC: the disk really was full
    code, stderr = found["full"]
    assert code == 2, stderr
    assert "Traceback" not in stderr
    error = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and error[0].startswith(f"error: no space left on device writing {tmp_path / 'disk' / 'out'}")
    # The finished run's results, byte for byte, and no temporary file left from the failed writes.
    assert found["after"] == found["before"]
    assert found["hidden_after"] == found["hidden_before"]
    code, stderr = found["again"]
    assert code == 0, stderr
    assert found["state"]["status"] == "ok" and "Traceback" not in stderr
