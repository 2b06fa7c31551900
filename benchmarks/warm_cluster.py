"""How fast `iml run` starts a competition on a running cluster (the warm path of `ray start --head`, then
`RAY_ADDRESS=auto`).

    .venv/bin/python benchmarks/warm_cluster.py [--task penguins] [--time-budget 90] [--runs 3] [--out DIR]
                                                [--processes]

Starts a one-node cluster on 127.0.0.1 (`ray start --head`, the machine's CPUs),
then runs the example task with `iml run` as a user would: first with agents that
end with the job (every run creates its agents' actors), then with `--keep-agents`
(the first run creates them, the later ones find them). For each run it reports
`timings_s.ray_start`, the plan phase, and the seconds from the command to the
first track's start (the track's own clock, in report.json, against the time the
command was launched). Stops the cluster at the end. Prints a markdown table for
RESULTS.md.

--processes: also samples every process's CPU time from /proc (Linux) every 0.1 s
and reports what was spent before the first track started: by the command's own
process (the driver), by the processes started since the command (Ray's workers:
agents, Coordinator, tracks) and how many they were, and by the cluster's own
(raylet, GCS); on a small machine the start is bound by that CPU.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLAN = ("agents", "task_summary", "profile", "knowledge", "blueprint", "contract", "holdout")


def _env() -> dict:
    return dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_ADDRESS="auto")


def _ray(*args: str) -> None:
    ray = Path(sys.executable).parent / "ray"
    subprocess.run([str(ray), *args], check=True, env=dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class ProcessCPU:
    """Every process's CPU seconds (user + system, from /proc), sampled in a thread from start() to stop()."""

    def __init__(self, every_s: float = 0.1):
        self.every_s = every_s
        self.samples: list[tuple[float, dict[int, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def now() -> dict[int, float]:
        tick = os.sysconf("SC_CLK_TCK")
        seconds = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:         # the process ended meanwhile
                    continue
                seconds[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
        return seconds

    def start(self) -> ProcessCPU:
        self.samples.append((time.time(), self.now()))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.samples.append((time.time(), self.now()))

    def spent_until(self, at: float, driver: int) -> dict:
        """CPU seconds spent from start() to the last sample before `at` by the processes alive then: the driver's,
        the new processes' (and their number), the processes that were there before (the cluster's)."""
        before = self.samples[0][1]
        last = [cpu for t, cpu in self.samples if t <= at][-1]
        new = {pid: cpu for pid, cpu in last.items() if pid not in before and pid != driver}
        old = sum(cpu - before[pid] for pid, cpu in last.items() if pid in before and pid != driver)
        return {"cpu_driver": round(last.get(driver, 0.0), 2), "cpu_new": round(sum(new.values()), 2),
                "new_processes": len(new), "cpu_cluster": round(old, 2)}


def _one_run(task: Path, out: Path, budget: float, keep: bool, processes: bool = False) -> dict:
    command = [sys.executable, "-m", "iml_ray.cli", "run", str(task), "--out", str(out), "--force",
               "--time-budget", str(budget)] + (["--keep-agents"] if keep else [])
    sampler = ProcessCPU().start() if processes else None
    launched = time.time()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    child.communicate()
    if sampler:
        sampler.stop()
    report = json.loads((out / "report.json").read_text())
    timings = report["timings_s"]
    starts = [row["started_s"] for row in report["leaderboard"] if row.get("started_s") is not None]
    first_track = report["started_at"] + min(starts) - launched if starts else None
    row = {"exit": child.returncode, "status": report["status"], "ray_start": timings.get("ray_start"),
           "plan": round(sum(timings.get(k, 0.0) for k in PLAN), 2),
           "first_track": None if first_track is None else round(first_track, 2), "total": timings.get("total")}
    if sampler and first_track is not None:
        row.update(sampler.spent_until(launched + first_track, child.pid))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="penguins")
    parser.add_argument("--time-budget", type=float, default=90.0)
    parser.add_argument("--runs", type=int, default=3, help="runs per mode")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "warm_cluster")
    parser.add_argument("--processes", action="store_true",
                        help="also report the CPU seconds spent before the first track, by process (Linux)")
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
                row = _one_run(task, out / f"run_{'kept' if keep else 'job'}_{i}", args.time_budget, keep,
                               args.processes)
                rows.append({"agents": "kept (--keep-agents)" if keep else "the job's", "run": i + 1, **row})
    finally:
        _ray("stop", "--force")
    (out / "warm_cluster.json").write_text(json.dumps(rows, indent=1))
    extra = ("cpu_driver", "cpu_new", "new_processes", "cpu_cluster") if args.processes else ()
    names = {"cpu_driver": "driver CPU-s", "cpu_new": "new processes' CPU-s", "new_processes": "new processes",
             "cpu_cluster": "cluster's CPU-s"}
    print("| agents | run | exit | ray_start (s) | plan (s) | command → first track (s) | total (s) |"
          + "".join(f" {names[k]} |" for k in extra))
    print("| --- " * (7 + len(extra)) + "|")
    for r in rows:
        print(f"| {r['agents']} | {r['run']} | {r['exit']} | {r['ray_start']} | {r['plan']} | {r['first_track']} | "
              f"{r['total']} |" + "".join(f" {r.get(k)} |" for k in extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
