"""How long a generated model module's Ray Tune search takes, end to end, against the seconds it was given.

    .venv/bin/python benchmarks/search_deadline.py [--seconds 6 10] [--runs 6] [--rows 3000] [--out DIR]

Renders the rules' prep and traditional model modules for a synthetic binary table of `--rows` rows (AUC), starts a
local Ray on 127.0.0.1 with 2 CPUs (the integration tests' cluster), and for each `--seconds` runs the module's
`tune_model()` `--runs` times in a child process, as a round's pipeline does: two trials at once, each asking Ray
for a sliver of a CPU. Reports each search's own seconds (tune_model's summary: from its start, Ray's join
included, to its return), the trials it started and those that reported a score. Prints a markdown table for
RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

def _modules(root: Path, rows: int) -> Path:
    from helpers import SEARCH_CHILD, rules_search_modules

    sources, task = rules_search_modules(root / "task", rows)
    (root / "sources.json").write_text(json.dumps(sources))
    (root / "child.py").write_text(SEARCH_CHILD)
    return task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[6.0, 10.0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=None, help="where the task and the searches' files go")
    args = parser.parse_args()
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    root = args.out or Path(tempfile.mkdtemp(prefix="search_deadline_"))
    root.mkdir(parents=True, exist_ok=True)
    task = _modules(root, args.rows)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    print("| seconds given | runs | seconds taken (each) | median | worst | trials started | reported a score |")
    print("|---|---|---|---|---|---|---|")
    for seconds in args.seconds:
        taken, started, completed = [], [], []
        for run in range(args.runs):
            settings = {"address": address, "seconds": seconds, "trials": 200, "concurrency": 2, "trial_cpus": 0.001,
                        "storage": str(root / f"tune_{seconds:g}_{run}"), "cuda_visible_devices": ""}
            done = subprocess.run([sys.executable, str(root / "child.py"), str(root / "sources.json"),
                                   str(task / "train.csv"), json.dumps(settings)], capture_output=True, text=True,
                                  timeout=300, cwd=root)
            if done.returncode != 0:
                sys.exit(f"search {run + 1} of {seconds:g} s failed: {done.stderr.strip().splitlines()[-1:]}")
            summary = json.loads(done.stdout.strip().splitlines()[-1])
            taken.append(summary["seconds"])
            started.append(summary.get("trials", 0))
            completed.append(summary.get("completed", 0))
        print(f"| {seconds:g} | {args.runs} | {', '.join(f'{t:g}' for t in taken)} | {statistics.median(taken):g} | "
              f"{max(taken):g} | {min(started)}-{max(started)} | {min(completed)}-{max(completed)} |")
    ray.shutdown()


if __name__ == "__main__":
    main()
