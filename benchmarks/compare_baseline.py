"""iml-ray against the plain baseline on the example tasks, graded on the held-back test answers.

    python benchmarks/compare_baseline.py [--time-budget 120] [--only titanic ...] [--out benchmarks/out]

Builds the example tasks, runs `iml run` (as a user would, one process per
task) and benchmarks/baseline.py on each, grades both submissions with
benchmarks/grade.py (the framework's metrics), and prints a markdown table:
metric, both test scores, which is better, and iml-ray's wall time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from grade import grade  # noqa: E402

from iml_ray.metrics.registry import get_metric  # noqa: E402

TASKS = ["titanic", "adult", "house_prices", "penguins", "bbc_news", "diabetes", "diamonds", "churn", "breast_cancer",
         "wine"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-budget", type=float, default=120)
    parser.add_argument("--only", nargs="*", choices=TASKS)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    tasks_dir, answers_dir = args.out / "tasks", args.out / "answers"
    names = args.only or TASKS
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_examples.py"), "--out", str(tasks_dir),
                    "--answers", str(answers_dir), "--only", *names], check=True)
    rows = []
    for name in names:
        meta_path, answers = answers_dir / f"{name}.json", answers_dir / f"{name}.csv"
        metric = get_metric(json.loads(meta_path.read_text())["metric"])
        run_dir = args.out / "runs" / name
        started = time.time()
        iml = subprocess.run([sys.executable, "-m", "iml_ray.cli", "run", str(tasks_dir / name), "--out", str(run_dir),
                              "--time-budget", str(args.time_budget), "--force"], capture_output=True, text=True)
        iml_s = time.time() - started
        try:
            iml_score = grade(run_dir / "submission.csv", answers, meta_path) if iml.returncode == 0 else None
        except ValueError:
            iml_score = None
        baseline_csv = args.out / "baseline" / f"{name}.csv"
        started = time.time()
        subprocess.run([sys.executable, str(HERE / "baseline.py"), str(tasks_dir / name), "--answers-json", str(meta_path),
                        "--out", str(baseline_csv)], check=True)
        base_s = time.time() - started
        base_score = grade(baseline_csv, answers, meta_path)
        better = iml_score is not None and (iml_score >= base_score if metric.higher_is_better else iml_score <= base_score)
        rows.append((name, metric.name, iml_score, base_score, better, iml_s, base_s, iml.returncode))
        print(f"{name}: iml-ray {iml_score} vs baseline {base_score} ({iml_s:.0f}s)", file=sys.stderr, flush=True)

    print("| task | metric | iml-ray (test) | baseline (test) | iml-ray ≥ baseline | iml-ray wall s | baseline wall s |")
    print("|---|---|---|---|---|---|---|")
    for name, metric, iml_score, base_score, better, iml_s, base_s, code in rows:
        shown = "failed (exit %d)" % code if iml_score is None else f"{iml_score:.4f}"
        print(f"| {name} | {metric} | {shown} | {base_score:.4f} | {'yes' if better else 'NO'} | {iml_s:.0f} | {base_s:.0f} |")
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
