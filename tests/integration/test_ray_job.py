"""A real head on 127.0.0.1 (`ray start --head`): a batch submitted to it with `ray job submit` (through
examples/submit_batch.py), and `iml run` joining it (RAY_ADDRESS), the warm path."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import binary_frames, write_task

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    temp = tmp_path_factory.mktemp("rayhead")
    # The job's `python` must be this environment's; the head is local and on loopback only.
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    port, dashboard = _free_port(), _free_port()
    subprocess.run([str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
                    "--num-cpus=2", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, env=env, capture_output=True, timeout=180)
    yield f"http://127.0.0.1:{dashboard}", env, f"127.0.0.1:{port}"
    subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_submitted_batch_succeeds_and_resubmission_is_idempotent(head, tmp_path):
    address, env, _ = head
    tasks = []
    for seed in (3, 4):
        train, test, sample = binary_frames(200, 40, seed=seed)
        tasks.append(str(write_task(tmp_path / f"job{seed}", train, test, sample)))
    out = tmp_path / "runs"
    submit = [sys.executable, str(REPO / "examples" / "submit_batch.py"), "--address", address, "--out", str(out),
              "--time-budget", "120", *tasks]
    first = subprocess.run([*submit, "--wait"], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    submission_id = first.stdout.split(":")[0].strip()
    assert submission_id.startswith("iml-batch-")
    summary = json.loads((out / "batch.json").read_text())
    assert [c["status"] for c in summary["competitions"]] == ["ok", "ok"]
    for name in ("job3", "job4"):
        assert (out / name / "submission.csv").is_file()

    again = subprocess.run(submit, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0
    assert f"{submission_id}: already SUCCEEDED; not submitting again" in again.stdout


def _head_node(env: dict, gcs: str) -> str:
    probe = "import ray; ray.init(address=%r, logging_level='ERROR'); print(ray.get_runtime_context().get_node_id())"
    found = subprocess.run([sys.executable, "-c", probe % gcs], capture_output=True, text=True, env=env, timeout=120)
    assert found.returncode == 0, found.stderr[-2000:]
    return found.stdout.split()[-1]


def test_iml_run_joins_the_running_cluster_and_refuses_bad_input_before_writing(head, tmp_path):
    """The warm path: `iml run` with RAY_ADDRESS runs its agents on the head's node (it does not start a cluster of
    its own); a bad task gets one line, exit 2 and nothing written, as on a cluster of its own."""
    _, env, gcs = head
    env = dict(env, RAY_ADDRESS=gcs)
    train, test, sample = binary_frames(200, 40, seed=5)
    task = write_task(tmp_path / "joined", train, test, sample)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "iml_ray.cli", "run", str(task), "--out", str(out),
                             "--time-budget", "40", "--tracks", "traditional"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and (out / "submission.csv").is_file()
    node = _head_node(env, gcs)
    assert {row["node"] for rows in report["actors"]["agents"].values() for row in rows} == {node}

    renamed = write_task(tmp_path / "renamed", train, test.rename(columns={c: f"{c}_2" for c in test.columns
                                                                             if c != "id"}), sample)
    refused = subprocess.run([sys.executable, "-m", "iml_ray.cli", "run", str(renamed), "--out", str(tmp_path / "out2"),
                              "--time-budget", "40"], capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr
    assert "error: test.csv has column(s) that train.csv lacks" in refused.stderr
    assert not (tmp_path / "out2").exists()
