"""Throughput of `iml batch` against the same competitions run one after another with `iml run`.

    .venv/bin/python benchmarks/throughput.py [--time-budget 60] [--tasks titanic penguins ...] [--out DIR]

Builds the example tasks (examples/make_examples.py), runs each with `iml run`
(a fresh process and Ray instance each, as a user would one by one), then all of
them with one `iml batch`, and reports: wall time of both, the speedup, every
submission's validity, the share of the competitions' time spent outside the
tracks (Ray start-up, agents, planning, verification) and the peak memory the
machine used above its idle level. Prints a markdown table for RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_TASKS = ["titanic", "penguins", "diabetes", "churn", "breast_cancer", "wine"]


class PeakMemory:
    """Peak system memory in use above the level when it started, sampled every 0.5 s."""

    def __init__(self):
        self.base = psutil.virtual_memory().used
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, psutil.virtual_memory().used - self.base)
            self._stop.wait(0.5)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_gb(self) -> float:
        return self.peak / 2**30


def _env() -> dict:
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("RAY_ADDRESS", None)
    return env


def _run(command: list[str], log: Path) -> float:
    started = time.time()
    with open(log, "w") as handle:
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=_env(), check=False)
    return time.time() - started


def _outcome(run_dir: Path) -> dict:
    try:
        report = json.loads((run_dir / "report.json").read_text())
    except (OSError, ValueError):
        return {"status": "missing", "total": 0.0, "explore": 0.0}
    timings = report.get("timings_s", {})
    return {"status": report.get("status"), "total": float(timings.get("total", 0.0)),
            "explore": float(timings.get("explore", 0.0)), "score": (report.get("chosen") or {}).get("valid_score")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-budget", type=float, default=60.0)
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS)
    parser.add_argument("--out", type=Path, default=HERE / "out" / "throughput")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    tasks_dir = out / "tasks"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_examples.py"), "--out", str(tasks_dir),
                    "--answers", str(out / "answers"), "--only", *args.tasks], check=True)
    tasks = [tasks_dir / name for name in args.tasks]
    iml = [sys.executable, "-m", "iml_ray.cli"]
    budget = ["--time-budget", str(args.time_budget)]
    (out / "logs").mkdir(parents=True, exist_ok=True)

    with PeakMemory() as seq_memory:
        started = time.time()
        for task in tasks:
            _run([*iml, "run", str(task), "--out", str(out / "sequential" / task.name), "--force", *budget],
                 out / "logs" / f"run_{task.name}.log")
        sequential_s = time.time() - started
    batch_root = out / "batch"
    if batch_root.exists():
        import shutil

        shutil.rmtree(batch_root)
    with PeakMemory() as batch_memory:
        batch_s = _run([*iml, "batch", *map(str, tasks), "--out", str(batch_root), *budget], out / "logs" / "batch.log")

    rows = []
    for mode, root, wall, memory in (("one by one (`iml run` each)", out / "sequential", sequential_s, seq_memory),
                                     ("together (`iml batch`)", batch_root, batch_s, batch_memory)):
        outcomes = [_outcome(root / task.name) for task in tasks]
        valid = sum(o["status"] == "ok" for o in outcomes)
        total = sum(o["total"] for o in outcomes)
        outside = sum(o["total"] - o["explore"] for o in outcomes)
        rows.append({"mode": mode, "wall_s": round(wall, 1), "valid": valid, "per_hour": round(len(tasks) / wall * 3600, 1),
                     "orchestration_share": round(outside / total, 3) if total else None,
                     "peak_gb": round(memory.peak_gb, 2)})
    speedup = sequential_s / batch_s if batch_s else float("nan")
    result = {"tasks": args.tasks, "time_budget_s": args.time_budget, "cpus": psutil.cpu_count(), "rows": rows,
              "speedup": round(speedup, 2)}
    (out / "throughput.json").write_text(json.dumps(result, indent=1))
    print("| mode | wall (s) | valid | competitions/hour | time outside the tracks | peak memory (GB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['mode']} | {r['wall_s']} | {r['valid']}/{len(tasks)} | {r['per_hour']} | "
              f"{r['orchestration_share']:.0%} | {r['peak_gb']} |")
    print(f"\nspeedup: {speedup:.2f}x ({len(tasks)} competitions, --time-budget {args.time_budget:g}, "
          f"{psutil.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
