"""The example tasks are built from packaged data, deterministically, with answers kept outside."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from grade import grade  # noqa: E402

SMALL = ["titanic", "penguins", "diabetes"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("examples")
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_examples.py"), "--out", str(base / "tasks"),
                    "--answers", str(base / "answers"), "--only", *SMALL], check=True, capture_output=True)
    return base


@pytest.mark.parametrize("name", SMALL)
def test_task_layout(built, name):
    task = built / "tasks" / name
    assert {p.name for p in task.iterdir()} == {"description.md", "train.csv", "test.csv", "sample_submission.csv"}
    meta = json.loads((built / "answers" / f"{name}.json").read_text())
    train, test = pd.read_csv(task / "train.csv"), pd.read_csv(task / "test.csv")
    sample = pd.read_csv(task / "sample_submission.csv")
    answers = pd.read_csv(built / "answers" / f"{name}.csv")
    assert meta["target"] in train.columns and meta["target"] not in test.columns
    assert sample[meta["id_column"]].tolist() == test[meta["id_column"]].tolist()
    assert sorted(answers[meta["id_column"]]) == sorted(test[meta["id_column"]])
    assert not set(train[meta["id_column"]]) & set(test[meta["id_column"]])
    description = (task / "description.md").read_text()
    assert "## Evaluation" in description


def test_titanic_has_no_leaky_columns(built):
    columns = pd.read_csv(built / "tasks" / "titanic" / "train.csv").columns
    assert "boat" not in columns and "body" not in columns


def test_penguins_submission_has_one_column_per_species(built):
    sample = pd.read_csv(built / "tasks" / "penguins" / "sample_submission.csv")
    assert sorted(sample.columns[1:]) == ["Adelie", "Chinstrap", "Gentoo"]


def test_rebuilding_gives_identical_files(built, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_examples.py"), "--out", str(tmp_path / "tasks"),
                    "--answers", str(tmp_path / "answers"), "--only", "titanic"], check=True, capture_output=True)
    for name in ("train.csv", "test.csv", "sample_submission.csv", "description.md"):
        assert (tmp_path / "tasks" / "titanic" / name).read_bytes() == (built / "tasks" / "titanic" / name).read_bytes()


def test_answers_inside_the_task_tree_are_refused(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "make_examples.py"), "--out", str(tmp_path),
                             "--answers", str(tmp_path / "answers"), "--only", "diabetes"], capture_output=True, text=True)
    assert result.returncode != 0 and "must not be inside" in result.stderr


def test_baseline_and_grader_on_titanic(built, tmp_path):
    task, meta = built / "tasks" / "titanic", built / "answers" / "titanic.json"
    answers = built / "answers" / "titanic.csv"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "baseline.py"), str(task), "--answers-json", str(meta),
                    "--out", str(tmp_path / "sub.csv")], check=True, capture_output=True)
    assert grade(tmp_path / "sub.csv", answers, meta) > 0.7
    submission = pd.read_csv(tmp_path / "sub.csv")
    submission.iloc[1:].to_csv(tmp_path / "missing.csv", index=False)
    with pytest.raises(ValueError, match="ids differ"):
        grade(tmp_path / "missing.csv", answers, meta)
    submission.loc[0, "survived"] = None
    submission.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(ValueError, match="missing predictions"):
        grade(tmp_path / "nan.csv", answers, meta)
