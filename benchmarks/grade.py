"""Grade a submission against private answers with the framework's own metrics.

    python benchmarks/grade.py SUBMISSION_CSV --answers ANSWERS_CSV --answers-json ANSWERS_JSON
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from iml_ray.metrics import score_predictions  # noqa: E402
from iml_ray.submission import SubmissionFormat  # noqa: E402


def grade(submission_csv: Path, answers_csv: Path, answers_json: Path) -> float:
    """The submission's score; ValueError with a one-line reason when it is invalid."""
    meta = json.loads(Path(answers_json).read_text())
    fmt = SubmissionFormat.from_json(meta["submission_format"])
    answers = pd.read_csv(answers_csv, low_memory=False)
    try:
        submission = pd.read_csv(submission_csv, low_memory=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"submission cannot be read: {exc}") from None
    submission.columns = [str(c) for c in submission.columns]
    id_column = meta["id_column"]
    expected = [id_column, *fmt.target_columns]
    missing = [c for c in expected if c not in submission.columns]
    if missing:
        raise ValueError(f"submission lacks column(s) {missing}")
    ids = submission[id_column].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"submission repeats {int(ids.duplicated().sum())} id(s)")
    wanted = answers[id_column].astype(str)
    if set(ids) != set(wanted):
        raise ValueError(f"submission ids differ from the test ids ({len(set(wanted) - set(ids))} missing, "
                         f"{len(set(ids) - set(wanted))} unknown)")
    if submission[list(fmt.target_columns)].isna().any().any():
        raise ValueError("submission has missing predictions")
    aligned = submission.set_index(ids).loc[wanted].reset_index(drop=True)
    return float(score_predictions(meta["metric"], answers[meta["target"]], aligned, fmt))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", type=Path)
    parser.add_argument("--answers", type=Path, required=True)
    parser.add_argument("--answers-json", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        print(f"{grade(args.submission, args.answers, args.answers_json):.6f}")
    except ValueError as exc:
        print(f"error: invalid submission: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
