"""Fault injection: hostile generated modules the track loop must survive.

Each prep module below is what an LLM could write. The loop runs it in the real
sandbox; the failure is named in the round; the rules module takes the slot
(no LLM Debugger here) and the candidate still verifies with a valid submission.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import psutil
import pytest
from helpers import binary_frames, write_task

from iml_ray.agents.assembler import Assembler
from iml_ray.agents.debugger import Debugger
from iml_ray.agents.error_analyzer import ErrorAnalyzer
from iml_ray.agents.evaluator import Evaluator
from iml_ray.agents.modeling_coder import ModelingCoder
from iml_ray.agents.preprocessing_coder import PreprocessingCoder
from iml_ray.plan.guideline_rules import make_blueprint, make_contract
from iml_ray.plan.knowledge import retrieve
from iml_ray.plan.repairs import Plans
from iml_ray.safety.contract import check_submission
from iml_ray.scoring.evaluate import make_holdout
from iml_ray.task.inference import analyze_task
from iml_ray.task.profiling import profile_task
from iml_ray.track.job import TrackAgents, TrackJob
from iml_ray.track.loop import run_track

HEAD = ("import os, signal, socket, subprocess, sys, time\nimport numpy as np\n\n\n"
        "class Preprocessor:\n    def fit(self, frame):\n")
TAIL = ("        return self\n\n    def transform(self, frame):\n        return np.zeros((len(frame), 1), dtype=np.float32)\n")


def hostile(body: str) -> str:
    return HEAD + "".join(f"        {line}\n" for line in body.strip().splitlines()) + TAIL


class HostilePrep(PreprocessingCoder):
    """Writes the hostile module first (as the LLM would); the rules module is its fallback."""

    def __init__(self, code: str):
        super().__init__()
        self.code = code

    def draft(self, summary, plan, contract, columns, deadline=None, context=None):
        return self.code, "llm"


@pytest.fixture
def job(tmp_path):
    train, test, sample = binary_frames(150, 40)
    task = write_task(tmp_path / "task", train, test, sample)
    summary = analyze_task(task)
    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("traditional",)), ("traditional",), 0, 0.2, 1)
    holdout = tmp_path / "run" / "plan" / "holdout.json"
    holdout.parent.mkdir(parents=True)
    holdout.write_text(json.dumps(make_holdout(summary, 0.2, 0).tolist()))
    return TrackJob(summary, make_contract(summary, blueprint.prep), Plans(blueprint.prep, blueprint.tracks[0], blueprint.train),
                    str(tmp_path / "run" / "candidates" / "traditional"), str(holdout), time.time() + 240, 1500, 1,
                    max_rounds=1, max_log_bytes=1_000_000, min_round_s=5.0, attempt_share=0.04)


def survive(job: TrackJob, code: str):
    agents = TrackAgents(HostilePrep(code), ModelingCoder(), Assembler(), ErrorAnalyzer(), Debugger(), Evaluator(), llm=True)
    candidate = run_track(job, agents)
    assert candidate.status == "verified", candidate.failure
    assert candidate.details["modules"]["prep"]["source"].startswith("rules (fallback")
    assert check_submission(Path(candidate.submission_path), job.summary) == []
    return candidate.rounds[0]


def test_an_endless_loop_times_out(job):
    first = survive(job, hostile("while True:\n    pass"))
    assert first.status == "timeout" and "timed out" in first.failure


def test_a_100_gb_allocation_is_stopped(job):
    first = survive(job, hostile("block = bytearray(100 * 2**30)"))
    assert first.status in ("memory", "invalid", "error") and ("memory" in first.failure or "MemoryError" in first.failure)


def test_children_that_ignore_sigterm_and_grandchildren_that_setsid_die(job, tmp_path):
    # Written in its own working directory: the only place (with the encoder cache) it may write.
    code = hostile("""
stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]
kids = [subprocess.Popen(stubborn), subprocess.Popen(stubborn, start_new_session=True)]
open("pids.txt", "w").write(" ".join(str(k.pid) for k in kids))
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(0.1)""")
    first = survive(job, code)
    assert first.status == "timeout"
    time.sleep(0.5)
    [pids] = list((tmp_path / "run" / "candidates").rglob("pids.txt"))
    for pid in map(int, pids.read_text().split()):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid


def test_10_gb_of_output_is_cut_off(job):
    first = survive(job, hostile('chunk = "x" * 65536\nfor _ in range(160000):\n    sys.stdout.write(chunk)'))
    assert first.status == "output_limit" and "wrote more than 1000000 bytes" in first.failure
    logs = list(Path(job.code_dir).rglob("probe.stdout.log"))
    assert logs and all(log.stat().st_size <= 1_000_000 for log in logs)


def test_writes_to_the_task_and_home_never_land(job):
    task = Path(job.summary.task_dir)
    before = {p.name: p.read_bytes() for p in task.iterdir()}
    marker = Path.home() / "iml-hostile-marker.txt"
    code = hostile(f"""
open(os.path.expanduser("~/iml-hostile-marker.txt"), "w").write("x")
open({str(task / 'train.csv')!r}, "w").write("gone")""")
    first = survive(job, code)
    assert "Read-only file system" in first.failure
    assert {p.name: p.read_bytes() for p in task.iterdir()} == before
    assert not marker.exists()


def test_an_outbound_connection_fails(job):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    try:
        first = survive(job, hostile(f"socket.create_connection(('127.0.0.1', {server.getsockname()[1]}), timeout=5)"))
        with pytest.raises(BlockingIOError):
            server.accept()                        # nothing ever connected
    finally:
        server.close()
    assert "Network is unreachable" in first.failure or "OSError" in first.failure


def test_a_process_bomb_is_stopped(job):
    first = survive(job, hostile('bomb = [subprocess.Popen(["sleep", "60"]) for _ in range(400)]\ntime.sleep(60)'))
    assert first.status == "process_limit" and "more than 256 processes" in first.failure


def test_another_candidates_code_cannot_be_read(job):
    other = Path(job.code_dir).parent / "custom_nn"
    other.mkdir(parents=True)
    (other / "model_custom_nn.py").write_text("SECRET = 'weights'\n")
    first = survive(job, hostile(f"print(open({str(other / 'model_custom_nn.py')!r}).read())"))
    assert "No such file or directory" in first.failure
