"""Grade a submission against the private answers with the framework's own metrics.

    python benchmarks/grade.py SUBMISSION_CSV --answers ANSWERS_CSV --answers-json ANSWERS_JSON

Prints the score. An invalid submission (ids differ from the answers', a
repeated id, wrong columns, a missing value) is refused with a one-line reason
and exit code 2: it gets no score rather than a bad one.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from iml_ray.metrics.predictions import score_predictions  # noqa: E402
from iml_ray.metrics.submission import SubmissionFormat  # noqa: E402

log = logging.getLogger("grade")


def read_submission(submission_csv: Path, key: str | None = None) -> pd.DataFrame:
    try:
        submission = pd.read_csv(submission_csv, low_memory=False, dtype={key: str} if key else None)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"submission cannot be read: {reason}") from None
    submission.columns = [str(c) for c in submission.columns]
    return submission


def check_columns(submission: pd.DataFrame, expected: list[str]) -> None:
    missing = [c for c in expected if c not in submission.columns]
    if missing:
        raise ValueError(f"submission lacks column(s) {missing}; expected {expected}")
    extra = [c for c in submission.columns if c not in expected]
    if extra:
        raise ValueError(f"submission has unexpected column(s) {extra}; expected {expected}")


def check_ids(submitted: pd.Series, wanted: pd.Series) -> None:
    repeated = submitted[submitted.duplicated()]
    if len(repeated):
        raise ValueError(f"submission repeats {repeated.nunique()} id(s), e.g. {repeated.iloc[0]!r}")
    missing, unknown = set(wanted) - set(submitted), set(submitted) - set(wanted)
    if missing or unknown:
        example = sorted(missing or unknown)[0]
        raise ValueError(f"submission ids differ from the test ids: {len(missing)} missing, {len(unknown)} unknown "
                         f"(e.g. {example!r})")


def check_values(submission: pd.DataFrame, columns: list[str], id_column: str) -> None:
    empty = submission[columns].isna().any(axis=1)
    if empty.any():
        raise ValueError(f"submission has missing predictions in {int(empty.sum())} row(s), "
                         f"e.g. {id_column} {submission.loc[empty, id_column].iloc[0]!r}")


def grade(submission_csv: Path | str, answers_csv: Path | str, answers_json: Path | str) -> float:
    """The submission's score; ValueError with a one-line reason when it is invalid.

    Rows are matched by the id column, or, for a task without one, by the column the grading JSON names in
    `match_by` (MLE-bench's insults task: the comment). Several targets are scored by the column-wise metric."""
    meta = json.loads(Path(answers_json).read_text())
    fmt = SubmissionFormat.from_json(meta["submission_format"])
    targets = meta.get("targets") or [meta["target"]]
    key = meta["id_column"] or meta.get("match_by")
    answers = pd.read_csv(answers_csv, low_memory=False, dtype={key: str})
    submission = read_submission(Path(submission_csv), key)
    check_columns(submission, meta.get("columns") or [meta["id_column"], *fmt.target_columns])
    # Keys compared as text: a reader may take "7" for an int in one file and a str in the other.
    submitted_ids, wanted_ids = submission[key].astype(str), answers[key].astype(str)
    check_ids(submitted_ids, wanted_ids)
    check_values(submission, list(fmt.target_columns), key)
    aligned = submission.set_index(submitted_ids).loc[wanted_ids].reset_index(drop=True)
    truth = answers[targets[0]] if len(targets) == 1 else answers[targets]
    return float(score_predictions(meta["metric"], truth, aligned, fmt))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", type=Path)
    parser.add_argument("--answers", type=Path, required=True, help="the private answers CSV (id, target)")
    parser.add_argument("--answers-json", type=Path, required=True, help="metric and submission format")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        score = grade(args.submission, args.answers, args.answers_json)
    except ValueError as exc:
        log.error("invalid submission: %s", exc)
        return 2
    print(f"{score:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
