"""Throughput of `iml batch` against the same competitions run one after another with `iml run`, on a fresh
local Ray each time and on a running cluster.

    .venv/bin/python benchmarks/throughput.py [--time-budget 60] [--tasks titanic penguins ...] [--out DIR]
                                              [--no-cold] [--no-warm]

Builds the example tasks (examples/make_examples.py), then for each case runs each
task with `iml run` one after another, then all of them with one `iml batch`:

- cold: no cluster; every `iml run` (and the batch) starts its own local Ray and its agents, as a user would
  on a laptop;
- warm: a cluster started once (`ray start --head`, the machine's CPUs), every command joining it with
  `RAY_ADDRESS=auto` and `--keep-agents`, so the agents' actors are created by the first command and found by
  every later one (the path `ray job submit` users take).

It reports wall time of each, the batch/serial speedup, every submission's
validity, the share of the competitions' time spent outside the tracks (Ray
start-up, agents, planning, choosing, the report) and the peak memory the machine
used above its idle level. Prints a markdown table for RESULTS.md.
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


def _env(warm: bool = False) -> dict:
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("RAY_ADDRESS", None)
    if warm:
        env["RAY_ADDRESS"] = "auto"
    return env


def _run(command: list[str], log: Path, warm: bool = False) -> float:
    started = time.time()
    with open(log, "w") as handle:
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=_env(warm), check=False)
    return time.time() - started


def _ray(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "ray"), *args], env=_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _case(name: str, tasks: list[Path], out: Path, budget: list[str], warm: bool) -> tuple[list[dict], float]:
    """One case: the tasks one by one with `iml run`, then together with `iml batch`; its rows and speedup."""
    import shutil

    iml = [sys.executable, "-m", "iml_ray.cli"]
    extra = ["--keep-agents"] if warm else []
    (out / "logs").mkdir(parents=True, exist_ok=True)
    with PeakMemory() as seq_memory:
        started = time.time()
        for task in tasks:
            _run([*iml, "run", str(task), "--out", str(out / "sequential" / task.name), "--force", *budget, *extra],
                 out / "logs" / f"run_{task.name}.log", warm)
        sequential_s = time.time() - started
    batch_root = out / "batch"
    shutil.rmtree(batch_root, ignore_errors=True)
    with PeakMemory() as batch_memory:
        batch_s = _run([*iml, "batch", *map(str, tasks), "--out", str(batch_root), *budget, *extra],
                       out / "logs" / "batch.log", warm)
    rows = []
    for mode, root, wall, memory in (("one by one (`iml run` each)", out / "sequential", sequential_s, seq_memory),
                                     ("together (`iml batch`)", batch_root, batch_s, batch_memory)):
        outcomes = [_outcome(root / task.name) for task in tasks]
        total = sum(o["total"] for o in outcomes)
        outside = sum(o["total"] - o["explore"] for o in outcomes)
        rows.append({"case": name, "mode": mode, "wall_s": round(wall, 1),
                     "valid": sum(o["status"] == "ok" for o in outcomes),
                     "per_hour": round(len(tasks) / wall * 3600, 1),
                     "orchestration_share": round(outside / total, 3) if total else None,
                     "peak_gb": round(memory.peak_gb, 2)})
    return rows, (sequential_s / batch_s if batch_s else float("nan"))


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
    parser.add_argument("--no-cold", action="store_true", help="skip the case without a running cluster")
    parser.add_argument("--no-warm", action="store_true", help="skip the case on a running cluster")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    tasks_dir = out / "tasks"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_examples.py"), "--out", str(tasks_dir),
                    "--answers", str(out / "answers"), "--only", *args.tasks], check=True)
    tasks = [tasks_dir / name for name in args.tasks]
    budget = ["--time-budget", str(args.time_budget)]
    rows: list[dict] = []
    speedups: dict[str, float] = {}
    if not args.no_cold:
        case_rows, speedups["cold"] = _case("cold", tasks, out / "cold", budget, warm=False)
        rows += case_rows
    if not args.no_warm:
        _ray("start", "--head", "--node-ip-address=127.0.0.1", f"--num-cpus={psutil.cpu_count()}",
             "--include-dashboard=false", "--disable-usage-stats")
        try:
            case_rows, speedups["warm"] = _case("warm", tasks, out / "warm", budget, warm=True)
            rows += case_rows
        finally:
            _ray("stop", "--force")
    result = {"tasks": args.tasks, "time_budget_s": args.time_budget, "cpus": psutil.cpu_count(), "rows": rows,
              "speedup": {k: round(v, 2) for k, v in speedups.items()}}
    (out / "throughput.json").write_text(json.dumps(result, indent=1))
    print("| case | mode | wall (s) | valid | competitions/hour | time outside the tracks | peak memory (GB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['case']} | {r['mode']} | {r['wall_s']} | {r['valid']}/{len(tasks)} | {r['per_hour']} | "
              f"{r['orchestration_share']:.0%} | {r['peak_gb']} |")
    for case, speedup in speedups.items():
        print(f"\n{case}: batch/serial speedup {speedup:.2f}x ({len(tasks)} competitions, --time-budget "
              f"{args.time_budget:g}, {psutil.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
