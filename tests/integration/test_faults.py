"""A Ray worker that dies under a track fails that candidate (or is retried when configured), never the run."""
from __future__ import annotations

import threading
import time

import psutil
import pytest
from helpers import binary_frames, local_ray, write_task

from iml_ray.config import RunConfig
from iml_ray.run.engine import run_competition

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    yield from local_ray(num_cpus=2)


class WorkerKiller:
    """SIGKILL the Ray worker running a named task, once, a moment after it starts."""

    def __init__(self, task_name: str, after_s: float = 1.0):
        self.title = f"ray::{task_name}"
        self.after_s = after_s
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set() and not self.killed:
            for proc in psutil.process_iter(["cmdline"]):
                if " ".join(proc.info["cmdline"] or []).strip() == self.title:
                    time.sleep(self.after_s)
                    proc.kill()
                    self.killed.append(proc.pid)
                    return
            time.sleep(0.1)

    def __enter__(self) -> "WorkerKiller":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_a_killed_track_worker_fails_that_candidate_and_the_run_goes_on(tmp_path):
    train, test, sample = binary_frames(300, 60)
    task = write_task(tmp_path / "killed", train, test, sample)
    config = RunConfig(time_budget_s=120, tracks=("traditional", "custom_nn"), tune="off")
    with WorkerKiller("track:killed:traditional") as killer:
        result = run_competition(task, tmp_path / "out", config)
    assert killer.killed
    board = {c.track: c for c in result.leaderboard}
    assert board["traditional"].status == "failed" and "died" in board["traditional"].failure
    assert board["custom_nn"].status == "verified"
    assert result.status == "ok" and result.best.track == "custom_nn"


def test_with_track_retries_a_killed_track_is_run_again(tmp_path):
    train, test, sample = binary_frames(300, 60, seed=3)
    task = write_task(tmp_path / "retried", train, test, sample)
    config = RunConfig(time_budget_s=120, tracks=("traditional",), tune="off", track_retries=1)
    with WorkerKiller("track:retried:traditional") as killer:
        result = run_competition(task, tmp_path / "out", config)
    assert killer.killed
    assert result.status == "ok" and result.best.track == "traditional"


def test_when_the_budget_is_spent_before_any_track_verifies_the_prior_still_lands(tmp_path):
    import pandas as pd

    train, test, sample = binary_frames(300, 60, seed=5)
    task = write_task(tmp_path / "spent", train, test, sample)
    # A budget smaller than the plan phase: every track is out of time before its first round, and the budget's
    # reserve (1 s) is gone before the prior starts; the prior still gets the time a cold sandbox needs.
    config = RunConfig(time_budget_s=4, reserve_s=1, tracks=("traditional",), tune="off")
    result = run_competition(task, tmp_path / "out", config)
    board = {c.track: c for c in result.leaderboard}
    assert board["traditional"].status == "failed"
    assert result.status == "ok" and result.best.track == "fallback", board["fallback"].failure
    submission = pd.read_csv(result.submission)
    assert list(submission.columns) == list(sample.columns) and len(submission) == len(test)
