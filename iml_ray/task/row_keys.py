"""Which column keys the test rows: the id the sample submission and test share, or a sample column that numbers
the test rows in order. Part of the rules TaskAnalyzer (inference.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from iml_ray.errors import TaskError
from iml_ray.task.files import ID_NAME


def row_number_column(sample_cols: list[str], train_set: set[str], test_set: set[str]) -> str | None:
    """The sample submission's first column when it is named like an id yet is a column of neither train nor test
    (Kaggle's digit recognizer: ImageId 1..n beside a test table of pixels only): the test rows' numbers."""
    if len(sample_cols) < 2:
        return None
    first = sample_cols[0]
    known = {c.casefold() for c in train_set | test_set}
    return first if ID_NAME.match(first) and first.casefold() not in known else None


def row_number_start(values: pd.Series, column: str, sample_name: str, n_test: int) -> int:
    """Where the sample's row-number column starts counting (0 or 1); a TaskError when it does not count the rows."""
    numbers = pd.to_numeric(values, errors="coerce")
    for start in (1, 0):
        if len(numbers) == n_test and (numbers.to_numpy() == start + np.arange(n_test)).all():
            return start
    raise TaskError(f"{sample_name}'s column '{column}' is not a column of the test table and does not number its "
                    f"rows 0.. or 1.. in order", f"Add '{column}' to the test table, or state `id_column:` in task.yaml.")


def infer_id(test_head: pd.DataFrame, sample_cols: list[str], decisions: dict[str, str]) -> str | None:
    """The column that names a row: shared by the sample submission and test, and named or shaped like a key.

    A shared column of free text or repeated values (a comment, a date) is not a key: it is passed through."""
    test_cols = [str(c) for c in test_head.columns]
    shared = [c for c in sample_cols if c in test_cols]
    named = [c for c in shared if ID_NAME.match(c)]
    if named:
        decisions["id_column"] = f"inferred: '{named[0]}' appears in both sample_submission and test and is named like an id"
        return named[0]
    keys = [c for c in shared if key_like(test_head[c])]
    if keys:
        decisions["id_column"] = f"inferred: '{keys[0]}' appears in both sample_submission and test, one distinct value per row"
        return keys[0]
    if not sample_cols:
        named = [c for c in test_cols if ID_NAME.match(c)]
        if named:
            decisions["id_column"] = f"inferred: '{named[0]}' is named like an id"
            return named[0]
    decisions["id_column"] = "inferred: none (rows are matched by position)"
    return None


def key_like(values: pd.Series) -> bool:
    """Distinct, present in every row, and not free text: integers, or short strings without spaces."""
    if values.isna().any() or values.duplicated().any():
        return False
    if pd.api.types.is_integer_dtype(values):
        return True
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    text = values.astype(str)
    return bool((text.str.len() <= 64).all() and not text.str.contains(r"\s").any())
