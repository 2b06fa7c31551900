"""The example tasks: built from packaged data, deterministically, answers kept outside; baseline and grader work."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from iml_ray.metrics.in_description import find_metric_in_text

ROOT = Path(__file__).resolve().parents[2]
# The small tasks only: each builds in well under a second.
SMALL = ["titanic", "penguins", "diabetes"]
TASK_FILES = {"description.md", "train.csv", "test.csv", "sample_submission.csv"}


def load_script(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module      # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


make_examples = load_script("make_examples_under_test", ROOT / "examples" / "make_examples.py")
grader = load_script("grade_under_test", ROOT / "benchmarks" / "grade.py")


def build(out: Path, answers: Path, names: list[str]) -> None:
    assert make_examples.main(["--out", str(out), "--answers", str(answers), "--only", *names]) == 0


def snapshot(*roots: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root.parent)): p.read_bytes() for root in roots for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("examples")
    build(base / "tasks", base / "answers", SMALL)
    return base


def meta_of(built: Path, name: str) -> dict:
    return json.loads((built / "answers" / f"{name}.json").read_text())


def evaluation_section(description: str) -> str:
    assert "\n## Evaluation\n" in description
    return description.split("\n## Evaluation\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("name", SMALL)
def test_task_has_the_four_files_and_no_answers(built, name):
    task = built / "tasks" / name
    assert {p.name for p in task.iterdir()} == TASK_FILES
    meta = meta_of(built, name)
    train, test = pd.read_csv(task / "train.csv"), pd.read_csv(task / "test.csv")
    assert meta["target"] in train.columns
    assert meta["target"] not in test.columns
    assert not (built / "answers").resolve().is_relative_to(task.resolve())
    assert not set(train[meta["id_column"]]) & set(test[meta["id_column"]])


@pytest.mark.parametrize("name", SMALL)
def test_sample_submission_matches_test_rows_and_answers_cover_them(built, name):
    task, meta = built / "tasks" / name, meta_of(built, name)
    test, sample = pd.read_csv(task / "test.csv"), pd.read_csv(task / "sample_submission.csv")
    answers = pd.read_csv(built / "answers" / f"{name}.csv")
    id_column = meta["id_column"]
    assert sample[id_column].tolist() == test[id_column].tolist()
    assert list(sample.columns) == [id_column, *meta["submission_format"]["target_columns"]]
    assert meta["submission_format"]["sample_rows"] == len(test)
    assert sorted(answers[id_column]) == sorted(test[id_column])
    assert answers[id_column].is_unique and answers[meta["target"]].notna().all()


@pytest.mark.parametrize("name", SMALL)
def test_description_names_the_metric_in_its_evaluation_section(built, name):
    description = (built / "tasks" / name / "description.md").read_text()
    assert find_metric_in_text(evaluation_section(description)) == meta_of(built, name)["metric"]
    assert "## Submission format" in description


def test_titanic_has_no_leaky_columns_and_question_marks_are_missing(built):
    train = pd.read_csv(built / "tasks" / "titanic" / "train.csv", dtype=str, keep_default_na=False)
    assert "boat" not in train.columns and "body" not in train.columns
    assert not (train == "?").any().any()
    assert pd.to_numeric(train["age"].replace("", None)).notna().sum() > 0


def test_penguins_submission_has_one_probability_column_per_species(built):
    task = built / "tasks" / "penguins"
    species = sorted(pd.read_csv(task / "train.csv")["species"].unique())
    sample = pd.read_csv(task / "sample_submission.csv")
    assert list(sample.columns) == ["id", *species]
    fmt = meta_of(built, "penguins")["submission_format"]
    assert fmt["kind"] == "class_probabilities" and fmt["classes"] == species


def test_ids_do_not_follow_the_source_order(built):
    # palmerpenguins lists the species in blocks; ids in that order would give the species away.
    train = pd.read_csv(built / "tasks" / "penguins" / "train.csv").sort_values("id")
    changes = (train["species"] != train["species"].shift()).sum()
    assert changes > 30


def test_rebuilding_gives_identical_files(built, tmp_path):
    out, answers = tmp_path / "tasks", tmp_path / "answers"
    build(out, answers, SMALL)
    first = snapshot(out, answers)
    assert first == snapshot(built / "tasks", built / "answers")
    build(out, answers, SMALL)          # over the existing tasks
    assert snapshot(out, answers) == first
    assert sorted(p.name for p in out.iterdir()) == sorted(SMALL)   # no staging left behind


def test_answers_inside_the_task_tree_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build(tmp_path, tmp_path / "answers", ["diabetes"])
    assert "must not be inside" in capsys.readouterr().err
    assert not (tmp_path / "answers").exists()


@pytest.fixture(scope="module")
def titanic_submission(built, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baseline") / "titanic.csv"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "baseline.py"), str(built / "tasks" / "titanic"),
                    "--answers-json", str(built / "answers" / "titanic.json"), "--out", str(out)],
                   check=True, capture_output=True)
    return out


def grade_titanic(built: Path, submission: Path) -> float:
    return grader.grade(submission, built / "answers" / "titanic.csv", built / "answers" / "titanic.json")


def test_baseline_beats_chance_on_titanic_when_graded(built, titanic_submission):
    submission = pd.read_csv(titanic_submission)
    sample = pd.read_csv(built / "tasks" / "titanic" / "sample_submission.csv")
    assert list(submission.columns) == list(sample.columns)
    assert set(submission["survived"]) <= {0, 1}
    assert grade_titanic(built, titanic_submission) > 0.7


def test_grade_cli_prints_the_score(built, titanic_submission):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "grade.py"), str(titanic_submission),
                             "--answers", str(built / "answers" / "titanic.csv"),
                             "--answers-json", str(built / "answers" / "titanic.json")],
                            capture_output=True, text=True, check=True)
    assert float(result.stdout.strip()) == pytest.approx(grade_titanic(built, titanic_submission), abs=1e-6)


def test_grade_refuses_a_submission_with_a_missing_id(built, titanic_submission, tmp_path):
    pd.read_csv(titanic_submission).iloc[1:].to_csv(tmp_path / "missing.csv", index=False)
    with pytest.raises(ValueError, match="1 missing"):
        grade_titanic(built, tmp_path / "missing.csv")


def test_grade_refuses_a_submission_with_nan(built, titanic_submission, tmp_path):
    submission = pd.read_csv(titanic_submission).astype({"survived": float})
    submission.loc[0, "survived"] = float("nan")
    submission.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(ValueError, match="missing predictions"):
        grade_titanic(built, tmp_path / "nan.csv")


def test_grade_refuses_repeated_ids_and_wrong_columns(built, titanic_submission, tmp_path):
    submission = pd.read_csv(titanic_submission)
    pd.concat([submission, submission.iloc[:1]]).to_csv(tmp_path / "repeated.csv", index=False)
    with pytest.raises(ValueError, match="repeats"):
        grade_titanic(built, tmp_path / "repeated.csv")
    submission.rename(columns={"survived": "Survived"}).to_csv(tmp_path / "renamed.csv", index=False)
    with pytest.raises(ValueError, match="lacks column"):
        grade_titanic(built, tmp_path / "renamed.csv")
