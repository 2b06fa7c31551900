"""Runtime checks of what generated code produced, against the contract and the task.

The framework checks; it never takes the generated code's word. Three checks:
- the preprocessing output (shapes, types, finiteness), from a report written by
  a framework-owned probe that runs the prep module in the sandbox;
- the validation predictions (exactly the held-out rows, the right columns);
- the submission (the sample submission's columns, one row per test id, passthrough
  columns equal to their test rows, no NaN, probabilities in [0, 1]).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from iml_ray.blueprint import InterfaceContract
from iml_ray.task.files import TaskSummary, read_table
from iml_ray.task.tables import iter_table, read_columns


def check_layout(layout, width: int) -> list[str]:
    """The prep's layout_ must describe the matrix it returns: blocks inside it, in the contract's order."""
    if not isinstance(layout, dict):
        return [f"the preprocessor has no layout_ dict (got {str(layout)[:80]})"]
    problems = []
    if layout.get("n_features") != width:
        problems.append(f"layout_ says {layout.get('n_features')} features but the matrix has {width}")
    bad = [i for i in layout.get("categorical") or [] if not (isinstance(i, int) and 0 <= i < width)]
    if bad:
        problems.append(f"layout_ categorical columns {bad[:5]} are outside the {width} columns")
    for name in ("embedding", "text"):
        block = layout.get(name)
        if block is not None and not (isinstance(block, list) and len(block) == 2 and 0 <= block[0] < block[1] <= width):
            problems.append(f"layout_ {name} block {block} is not a [start, end) range inside the {width} columns")
    image = layout.get("image")
    if image is not None:
        try:
            size = int(np.prod(image["shape"]))
            if len(image["shape"]) != 3 or not 0 <= image["start"] or image["start"] + size > width:
                problems.append(f"layout_ image block {image} does not fit the {width} columns")
        except (KeyError, TypeError):
            problems.append(f"layout_ image block {image} needs a start and a [C, H, W] shape")
    return problems


def prep_probe_spec(summary: TaskSummary, contract: InterfaceContract) -> dict:
    root = Path(summary.task_dir)
    return {
        "train_path": str(root / summary.train_file),
        "test_path": str(root / summary.test_file),
        "target": summary.target,
        "input_columns": list(contract.input_columns),
        "prep_class": contract.prep_class,
        "task_dir": str(root),
        "layout": None if summary.layout is None else summary.layout.to_json(),
        "media": [{"name": i.name, "column": i.column, "train": i.train_pattern, "test": i.test_pattern}
                  for i in summary.media if i.name in contract.input_columns],
    }


def check_prep_report(report: dict, contract: InterfaceContract) -> list[str]:
    """Contract violations in the probe's report (empty when the prep output is fine)."""
    if not report.get("ok"):
        return [f"prep failed: {report.get('error', 'no report')}"]
    problems = []
    train, test = report["train"], report["test"]
    for name, info, rows in (("train", train, report["n_train_input"]), ("test", test, report["n_test_input"])):
        if len(info["shape"]) != 2:
            problems.append(f"{name} matrix is not 2-D (shape {info['shape']})")
            continue
        if info["shape"][0] != rows:
            problems.append(f"{name} matrix has {info['shape'][0]} rows for {rows} input rows")
        if not info["numeric"]:
            problems.append(f"{name} matrix is not numeric (dtype {info['dtype']})")
        if contract.finite and info["nonfinite"] != 0:
            problems.append(f"{name} matrix has {info['nonfinite']} NaN/inf values where the contract promises none")
    if len(train["shape"]) == 2 and len(test["shape"]) == 2 and train["shape"][1] != test["shape"][1]:
        problems.append(f"train has {train['shape'][1]} features but test has {test['shape'][1]}")
    width = train["shape"][1] if len(train["shape"]) == 2 else 0
    problems += check_layout(report.get("layout"), width)
    if report["n_test_input"] != contract.n_test_rows:
        problems.append(f"prep saw {report['n_test_input']} test rows, the task has {contract.n_test_rows}")
    return problems


def read_prep_report(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {"ok": False, "error": "the prep probe wrote no report"}


def check_answer_frame(frame: pd.DataFrame, summary: TaskSummary, what: str) -> list[str]:
    """Checks shared by submissions and validation predictions: columns, NaN, ranges."""
    fmt = summary.submission
    problems = []
    missing = [c for c in fmt.target_columns if c not in frame.columns]
    if missing:
        return [f"{what} lacks column(s) {missing}"]
    values = frame[list(fmt.target_columns)]
    if values.isna().any().any():
        problems.append(f"{what} has {int(values.isna().sum().sum())} missing predictions")
    if fmt.kind in ("probability", "class_probabilities", "value"):
        numeric = values.apply(pd.to_numeric, errors="coerce")
        if numeric.isna().any().any() and not values.isna().any().any():
            problems.append(f"{what} has non-numeric predictions")
        elif fmt.kind != "value" and not ((numeric >= 0) & (numeric <= 1)).all().all():
            problems.append(f"{what} has probabilities outside [0, 1]")
        elif fmt.kind == "value" and not np.isfinite(numeric.to_numpy(dtype=float)).all():
            problems.append(f"{what} has infinite predictions")
    if fmt.kind == "label":
        # One label per row, or (MAP@k) up to top_k of them separated by spaces.
        rows = [str(v).split() if fmt.top_k > 1 else [str(v)] for v in values.iloc[:, 0]]
        unknown = {label for row in rows for label in row} - {str(c) for c in fmt.classes}
        if unknown:
            problems.append(f"{what} predicts unknown label(s) {sorted(unknown)[:3]}")
        if fmt.top_k > 1 and any(not 1 <= len(row) <= fmt.top_k for row in rows):
            problems.append(f"{what} has rows without 1 to {fmt.top_k} space-separated labels")
    return problems


def check_submission(path: Path, summary: TaskSummary) -> list[str]:
    """The submission against the sample submission and the test ids."""
    path = Path(path)
    if not path.is_file():
        return ["no submission.csv was written"]
    fmt = summary.submission
    try:
        # Copied columns as text: they must be the test file's values as it spells them.
        frame = pd.read_csv(path, low_memory=False, dtype={c: str for c in fmt.copied_columns})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return [f"submission.csv cannot be read: {exc}"]
    frame.columns = [str(c) for c in frame.columns]
    root = Path(summary.task_dir)
    expected_columns = list(fmt.all_columns)
    if summary.sample_submission_file:
        expected_columns = [str(c) for c in read_table(root / summary.sample_submission_file, nrows=1).columns]
    problems = []
    if list(frame.columns) != expected_columns:
        problems.append(f"submission columns {list(frame.columns)[:6]} differ from {expected_columns[:6]}")
    if len(frame) != summary.n_test:
        problems.append(f"submission has {len(frame)} rows for {summary.n_test} test rows")
    if fmt.id_column and fmt.id_column in frame.columns:
        # Only the id column of the test table (the folder listing for a FolderLayout), never the whole table.
        test = summary.read("test") if summary.layout is not None else read_columns(root / summary.test_file, [fmt.id_column])
        ids = frame[fmt.id_column].astype(str)
        if ids.duplicated().any():
            problems.append(f"submission repeats {int(ids.duplicated().sum())} id(s)")
        missing = set(test[fmt.id_column].astype(str)) - set(ids)
        if missing:
            problems.append(f"submission lacks {len(missing)} test id(s), e.g. {sorted(missing)[0]!r}")
    numbered = fmt.row_number_column
    if numbered in frame.columns and len(frame) == summary.n_test:
        expected = fmt.row_number_start + np.arange(len(frame))
        if not (pd.to_numeric(frame[numbered], errors="coerce").to_numpy() == expected).all():
            problems.append(f"submission column '{numbered}' does not number the test rows from {fmt.row_number_start}")
    if not problems:
        problems += passthrough_problems(frame, summary)
    problems += check_answer_frame(frame, summary, "submission")
    return problems


def passthrough_problems(frame: pd.DataFrame, summary: TaskSummary) -> list[str]:
    """Each passthrough column must hold its test row's value (matched by id, else by position)."""
    fmt = summary.submission
    if not fmt.passthrough or summary.layout is not None:
        return []
    copied = list(fmt.copied_columns)
    test = pd.concat(iter_table(Path(summary.task_dir) / summary.test_file, usecols=copied, as_str=copied),
                     ignore_index=True)
    got = frame[copied].reset_index(drop=True)
    if fmt.id_column:
        test = test.drop_duplicates(fmt.id_column).set_index(fmt.id_column).reindex(got[fmt.id_column])
        test = test.reset_index(drop=True)
        got = got.drop(columns=[fmt.id_column])
    problems = []
    for column in fmt.passthrough:
        want, have = test[column].fillna("").to_numpy(), got[column].fillna("").to_numpy()
        differ = np.flatnonzero(want != have)
        if len(differ):
            problems.append(f"submission column '{column}' differs from {Path(summary.test_file).name} in "
                            f"{len(differ)} row(s), e.g. row {int(differ[0]) + 1}: {str(have[differ[0]])[:40]!r} "
                            f"for {str(want[differ[0]])[:40]!r}")
    return problems


def check_valid_predictions(path: Path, summary: TaskSummary, rows: np.ndarray) -> tuple[list[str], pd.DataFrame | None]:
    """Validation predictions must cover exactly the framework's held-out rows."""
    path = Path(path)
    if not path.is_file():
        return ["no valid_predictions.csv was written"], None
    try:
        frame = pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return [f"valid_predictions.csv cannot be read: {exc}"], None
    frame.columns = [str(c) for c in frame.columns]
    if "__row__" not in frame.columns:
        return ["valid_predictions.csv lacks the __row__ column"], None
    got = frame["__row__"].to_numpy()
    if len(got) != len(rows) or set(got.tolist()) != set(rows.tolist()):
        return [f"valid_predictions.csv covers {len(set(got.tolist()) & set(rows.tolist()))} of {len(rows)} held-out rows "
                f"(and {len(set(got.tolist()) - set(rows.tolist()))} others)"], None
    problems = check_answer_frame(frame, summary, "valid_predictions.csv")
    return problems, (None if problems else frame)
