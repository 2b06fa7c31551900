"""Memory and time of the TaskAnalyzer and the Profiler on a large CSV (issue 7: a 2 GB train.csv).

    PYTHONPATH=. .venv/bin/python benchmarks/big_csv.py [--gb 2] [--compare-mb 200] [--dir DIR] [--keep]

Writes a task whose train.csv is about --gb GB (numbers with gaps, categories,
free text, numbers as strings, an integer id, a binary target) into a temporary
directory, then in a fresh process runs analyze_task and profile_task on it and
reports the wall time of each and the process's peak RSS (VmHWM: getrusage's
ru_maxrss would also count the parent's RSS at the fork, Linux keeps it across
exec). With
--compare-mb it also profiles a smaller copy both ways (whole in memory, and
streamed) so the two peaks can be compared. The files are deleted afterwards
unless --keep. Prints a markdown block for RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BLOCK_ROWS = 250_000
WORDS = np.array("the a quick slow brown red dog cat jumps runs over under lazy happy big small old new".split())


def block(rng: np.random.Generator, start: int, rows: int, with_target: bool) -> pd.DataFrame:
    frame = pd.DataFrame({
        "id": np.arange(start, start + rows),
        "amount": np.where(rng.random(rows) < 0.05, np.nan, rng.lognormal(3, 1, rows).round(3)),
        "score": rng.normal(size=rows).round(5),
        "rooms": rng.integers(1, 9, rows),
        "city": rng.choice(["paris", "lyon", "nice", "lille", "brest", "metz"], rows),
        "height": np.where(rng.random(rows) < 0.02, "?", rng.normal(170, 10, rows).round(1).astype(str)),
        "comment": [" ".join(w) for w in rng.choice(WORDS, (rows, 8))],
    })
    if with_target:
        frame["label"] = (rng.random(rows) < 0.3).astype(int)
    return frame


def write_task(root: Path, train_bytes: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    train, start = root / "train.csv", 0
    with open(train, "w") as handle:
        while handle.tell() < train_bytes:
            block(rng, start, BLOCK_ROWS, True).to_csv(handle, index=False, header=start == 0)
            start += BLOCK_ROWS
    test = block(rng, start, max(1000, start // 20), False)
    test.to_csv(root / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "label": 0}).to_csv(root / "sample_submission.csv", index=False)
    (root / "description.md").write_text("Predict label. Evaluation: AUC.\n")
    return root


def peak_rss_mib() -> int:
    """This process image's peak resident set (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure(task: Path, whole: bool) -> dict:
    """In this (fresh) process: analyze, profile; wall times and the peak RSS."""
    from iml_ray.task.inference import analyze_task
    from iml_ray.task.profiling import profile_task

    rss_imports = peak_rss_mib()
    t0 = time.time()
    summary = analyze_task(task)
    t1 = time.time()
    rss_analysis = peak_rss_mib()
    profile = profile_task(summary, stream_above=1 << 62) if whole else profile_task(summary, stream_above=-1)
    t2 = time.time()
    return {"peak_rss_after_imports_mib": rss_imports, "analyze_s": round(t1 - t0, 1), "profile_s": round(t2 - t1, 1),
            "peak_rss_after_analysis_mib": round(rss_analysis),
            "peak_rss_mib": peak_rss_mib(), "n_train": summary.n_train,
            "n_test": summary.n_test, "roles": profile.roles, "memory_mb_if_loaded": profile.memory_mb,
            "path": "whole in memory" if whole else "streamed"}


def run_child(task: Path, whole: bool) -> dict:
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, __file__, "--measure", str(task)] + (["--whole"] if whole else []),
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0, help="size of train.csv in GB (default 2)")
    parser.add_argument("--compare-mb", type=float, default=0, help="also profile a task of this many MB both ways")
    parser.add_argument("--dir", type=Path, help="where to write the task (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the written files")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.whole)))
        return

    base = Path(tempfile.mkdtemp(prefix="iml-big-csv-", dir=args.dir))
    rows = []
    try:
        sizes = [("big", args.gb * 1e9)] + ([("compare", args.compare_mb * 1e6)] if args.compare_mb else [])
        for name, size in sizes:
            t0 = time.time()
            task = write_task(base / name, size)
            written = (task / "train.csv").stat().st_size
            print(f"wrote {written / 1e9:.2f} GB train.csv in {time.time() - t0:.0f}s", file=sys.stderr)
            for whole in ([False] if name == "big" else [True, False]):
                result = run_child(task, whole)
                result["train_csv_gb"] = round(written / 1e9, 2)
                rows.append(result)
                print(json.dumps(result), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"Machine: {os.cpu_count()} cores, {platform.python_version()}, {platform.platform()}.\n")
    print("| train.csv | rows | path | analyze (s) | profile (s) | peak RSS after imports / analysis / profile (MiB) | "
          "the tables in pandas (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['train_csv_gb']} GB | {r['n_train']:,} | {r['path']} | {r['analyze_s']} | {r['profile_s']} | "
              f"{r['peak_rss_after_imports_mib']:,} / {r['peak_rss_after_analysis_mib']:,} / {r['peak_rss_mib']:,} | "
              f"{r['memory_mb_if_loaded']:,.0f} |")


if __name__ == "__main__":
    main()
