"""How fast `iml run` starts a competition on a running cluster (the warm path of `ray start --head`, then
`RAY_ADDRESS=auto`).

    .venv/bin/python benchmarks/warm_cluster.py [--task penguins] [--time-budget 90] [--runs 3] [--out DIR]

Starts a one-node cluster on 127.0.0.1 (`ray start --head`, the machine's CPUs),
then runs the example task with `iml run` as a user would: first with agents that
end with the job (every run creates its agents' actors), then with `--keep-agents`
(the first run creates them, the later ones find them). For each run it reports
`timings_s.ray_start`, the plan phase, and the seconds from the command to the
first track's start (the track's own clock, in report.json, against the time the
command was launched). Stops the cluster at the end. Prints a markdown table for
RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLAN = ("agents", "task_summary", "profile", "knowledge", "blueprint", "contract", "holdout")


def _env() -> dict:
    return dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_ADDRESS="auto")


def _ray(*args: str) -> None:
    ray = Path(sys.executable).parent / "ray"
    subprocess.run([str(ray), *args], check=True, env=dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _one_run(task: Path, out: Path, budget: float, keep: bool) -> dict:
    command = [sys.executable, "-m", "iml_ray.cli", "run", str(task), "--out", str(out), "--force",
               "--time-budget", str(budget)] + (["--keep-agents"] if keep else [])
    launched = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=_env())
    report = json.loads((out / "report.json").read_text())
    timings = report["timings_s"]
    starts = [row["started_s"] for row in report["leaderboard"] if row.get("started_s") is not None]
    first_track = report["started_at"] + min(starts) - launched if starts else None
    return {"exit": done.returncode, "status": report["status"], "ray_start": timings.get("ray_start"),
            "plan": round(sum(timings.get(k, 0.0) for k in PLAN), 2),
            "first_track": None if first_track is None else round(first_track, 2), "total": timings.get("total")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="penguins")
    parser.add_argument("--time-budget", type=float, default=90.0)
    parser.add_argument("--runs", type=int, default=3, help="runs per mode")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "warm_cluster")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    subprocess.run([sys.executable, str(REPO / "examples" / "make_examples.py"), "--out", str(out / "tasks"),
                    "--answers", str(out / "answers"), "--only", args.task], check=True)
    task = out / "tasks" / args.task
    _ray("start", "--head", "--node-ip-address=127.0.0.1", f"--num-cpus={os.cpu_count()}",
         "--include-dashboard=false", "--disable-usage-stats")
    rows = []
    try:
        for keep in (False, True):
            for i in range(args.runs):
                row = _one_run(task, out / f"run_{'kept' if keep else 'job'}_{i}", args.time_budget, keep)
                rows.append({"agents": "kept (--keep-agents)" if keep else "the job's", "run": i + 1, **row})
    finally:
        _ray("stop", "--force")
    (out / "warm_cluster.json").write_text(json.dumps(rows, indent=1))
    print("| agents | run | exit | ray_start (s) | plan (s) | command → first track (s) | total (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['agents']} | {r['run']} | {r['exit']} | {r['ray_start']} | {r['plan']} | {r['first_track']} | "
              f"{r['total']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
