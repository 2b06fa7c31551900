"""Hostile input to task loading and profiling: a clear TaskError or a correct result, never a crash."""
from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pytest
from helpers import binary_frames, write_task
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iml_ray.errors import TaskError
from iml_ray.task.inference import analyze_task, check_task
from iml_ray.task.profiling import profile_task

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def survives(root) -> str:
    """'ok' or 'error: ...' — anything else escaping is a bug and fails the test."""
    try:
        check_task(root)
        summary = analyze_task(root)
        profile_task(summary)
    except TaskError as exc:
        rendered = exc.render()
        assert rendered.startswith("error: ") and "Traceback" not in rendered
        assert len(rendered.splitlines()) <= 2
        return f"error: {exc.problem}"
    return "ok"


def _task_with_train_bytes(tmp_path, data: bytes):
    train, test, sample = binary_frames(20, 5)
    root = write_task(tmp_path, train, test, sample)
    (root / "train.csv").write_bytes(data)
    return root


@SETTINGS
@given(data=st.binary(max_size=400))
def test_binary_junk_as_train_csv(tmp_path_factory, data):
    survives(_task_with_train_bytes(tmp_path_factory.mktemp("junk"), data))


@SETTINGS
@given(rows=st.lists(st.lists(st.sampled_from(["1", "a", "", "2.5", "x y", '"q"']), min_size=0, max_size=6),
                     min_size=1, max_size=12))
def test_ragged_rows(tmp_path_factory, rows):
    text = "id,x1,colour,age,label\n" + "\n".join(",".join(r) for r in rows) + "\n"
    survives(_task_with_train_bytes(tmp_path_factory.mktemp("ragged"), text.encode()))


@SETTINGS
@given(names=st.lists(st.text(alphabet=string.ascii_letters + " _-.", max_size=4), min_size=2, max_size=5))
def test_arbitrary_header_names(tmp_path_factory, names):
    root = tmp_path_factory.mktemp("names")
    width = len(names)
    body = "\n".join(",".join(str((i * 7 + j) % 3) for j in range(width)) for i in range(12))
    header = ",".join(names)
    (root / "train.csv").write_text(header + "\n" + body + "\n")
    (root / "test.csv").write_text(",".join(names[:-1]) + "\n" + "\n".join(",".join("1" * 1 for _ in range(width - 1))
                                                                         for _ in range(3)) + "\n")
    survives(root)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "cp1252"])
def test_other_encodings(tmp_path, encoding):
    train, test, sample = binary_frames(40, 10)
    train["colour"] = np.where(train["x1"] > 0, "rouge é", "vert ü")
    root = write_task(tmp_path / encoding, train, test, sample)
    (root / "train.csv").write_bytes(train.to_csv(index=False).encode(encoding))
    outcome = survives(root)
    if encoding != "utf-16":
        assert outcome == "ok"


@pytest.mark.parametrize("case", ["constant", "all_missing", "one_row", "three_labelled", "duplicate_ids",
                                  "duplicate_columns", "empty_column_name", "wide"])
def test_degenerate_tables(tmp_path, case):
    train, test, sample = binary_frames(30, 10)
    if case == "constant":
        train["label"] = 0
    elif case == "all_missing":
        train["label"] = np.nan
    elif case == "one_row":
        train = train.iloc[:1]
    elif case == "three_labelled":
        train["label"] = [0, 1, 0] + [np.nan] * (len(train) - 3)
    elif case == "duplicate_ids":
        test["id"] = 1
        sample["id"] = 1
    elif case == "wide":
        extra = pd.DataFrame(np.zeros((len(train), 10_000), dtype=np.int8), columns=[f"c{i}" for i in range(10_000)])
        train = pd.concat([train, extra], axis=1)
        test = pd.concat([test, extra.iloc[:len(test)].reset_index(drop=True)], axis=1)
    root = write_task(tmp_path / case, train, test, sample)
    if case == "duplicate_columns":
        (root / "train.csv").write_text("id,x1,x1,label\n1,2,3,0\n2,3,4,1\n3,4,5,0\n")
        (root / "test.csv").write_text("id,x1,x1\n4,5,6\n")
    if case == "empty_column_name":
        (root / "train.csv").write_text("id,,label\n1,2,0\n2,3,1\n3,4,0\n")
        (root / "test.csv").write_text("id,\n4,5\n")
    outcome = survives(root)
    expected_error = {"constant": "single value", "all_missing": "empty in every row", "one_row": "too few to validate",
                      "three_labelled": "3 labelled row(s) of 'label': too few to validate",
                      "duplicate_columns": "duplicate column names"}
    if case in expected_error:
        assert expected_error[case] in outcome
    if case == "wide":
        assert outcome == "ok"


def test_symlinked_data_files_are_read_not_written(tmp_path):
    # Datasets mounted elsewhere are commonly symlinked in; reading through them is a correct run.
    train, test, sample = binary_frames(30, 10)
    outside = write_task(tmp_path / "elsewhere", train, test, sample)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    root = tmp_path / "task"
    root.mkdir()
    (root / "train.csv").symlink_to(outside / "train.csv")
    (root / "test.csv").write_text(test.to_csv(index=False))
    assert survives(root) == "ok"
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
