"""The submission takes the sample submission's columns and values as they come in real competitions.

MLE-bench's "detecting-insults-in-social-commentary": train.csv (Insult, Date, Comment), test.csv
(Date, Comment), no id column, sample_submission_null.csv (Insult, Date, Comment). The grader
matches rows by Comment, so Date and Comment must be copied from each test row.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import bbc_comments, verified_candidate

from iml_ray.errors import TaskError
from iml_ray.safety.contract import check_submission
from iml_ray.task.inference import STRIPPED_DESCRIPTION, analyze_task, check_task


def _insults_task(root: Path, description: str = "Predict whether a comment is an insult. Submissions are "
                  "evaluated on area under the ROC curve (AUC).\n") -> tuple[Path, pd.DataFrame]:
    frame = bbc_comments()
    train, test = frame.iloc[:420].reset_index(drop=True), frame.iloc[420:].reset_index(drop=True)
    root.mkdir(parents=True)
    train[["Insult", "Date", "Comment"]].to_csv(root / "train.csv", index=False)
    test[["Date", "Comment"]].to_csv(root / "test.csv", index=False)
    test.assign(Insult=0)[["Insult", "Date", "Comment"]].to_csv(root / "sample_submission_null.csv", index=False)
    (root / "description.md").write_text(description)
    return root, test


def test_insults_layout_is_understood(tmp_path):
    task, _ = _insults_task(tmp_path / "insults")
    summary = analyze_task(task)
    fmt = summary.submission
    assert summary.sample_submission_file == "sample_submission_null.csv"
    assert summary.target == "Insult" and summary.id_column is None
    assert fmt.all_columns == ("Insult", "Date", "Comment") and fmt.passthrough == ("Date", "Comment")
    assert fmt.target_columns == ("Insult",) and fmt.kind == "probability" and summary.metric == "auc"
    # Passthrough columns that are features in train stay features.
    assert "Comment" in summary.feature_columns
    assert "passthrough_columns" in summary.decisions


def test_insults_submission_copies_its_test_rows(tmp_path):
    """A real pipeline, run in the sandbox: the submission has the sample's columns and each row's Date and
    Comment equal its test row's, row by row."""
    task, test = _insults_task(tmp_path / "insults")
    summary = analyze_task(task)
    result = verified_candidate(tmp_path, summary, time.time() + 240)
    written = pd.read_csv(result.submission_path, dtype=str, keep_default_na=False)
    expected = pd.read_csv(task / "test.csv", dtype=str, keep_default_na=False)
    assert list(written.columns) == ["Insult", "Date", "Comment"]
    assert len(written) == len(expected)
    assert (written["Comment"] == expected["Comment"]).all() and (written["Date"] == expected["Date"]).all()
    p = written["Insult"].astype(float)
    assert p.between(0, 1).all() and p.nunique() > 10           # probabilities, not labels
    truth = test["Insult"].to_numpy()
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(truth, p) > 0.8
    assert check_submission(Path(result.submission_path), summary) == []


def test_checker_refuses_wrong_columns_and_altered_passthrough(tmp_path):
    task, test = _insults_task(tmp_path / "insults")
    summary = analyze_task(task)
    good = test[["Date", "Comment"]].assign(Insult=0.5)[["Insult", "Date", "Comment"]]
    path = tmp_path / "submission.csv"
    good.to_csv(path, index=False)
    assert check_submission(path, summary) == []
    good[["Insult"]].to_csv(path, index=False)                     # what iml-ray wrote before
    assert any("differ from ['Insult', 'Date', 'Comment']" in p for p in check_submission(path, summary))
    shuffled = good.copy()
    shuffled["Comment"] = shuffled["Comment"].iloc[::-1].to_numpy()  # rows out of test order
    shuffled.to_csv(path, index=False)
    problems = check_submission(path, summary)
    assert any("column 'Comment' differs from test.csv" in p and "row 1" in p for p in problems), problems


def test_passthrough_with_an_id_follows_the_sample_order(tmp_path):
    """With an id, rows follow the sample submission's order and passthrough values follow their id."""
    from helpers import binary_frames, write_task

    train, test, _ = binary_frames(200, 60)
    sample = test[["id", "colour"]].assign(label=0.5)[["id", "label", "colour"]].iloc[::-1]
    task = write_task(tmp_path / "t", train, test, sample, "Evaluated on AUC.")
    summary = analyze_task(task)
    assert summary.id_column == "id" and summary.submission.passthrough == ("colour",)
    assert summary.submission.all_columns == ("id", "label", "colour")
    answer = sample.copy()
    path = tmp_path / "submission.csv"
    answer.to_csv(path, index=False)
    assert check_submission(path, summary) == []
    answer["colour"] = answer["colour"].iloc[::-1].to_numpy()
    answer.to_csv(path, index=False)
    assert any("column 'colour' differs" in p for p in check_submission(path, summary))


def test_numbers_in_the_sample_ask_for_a_probability_of_the_event(tmp_path):
    """Stripped description: train holds good/bad, the sample 0. A probability (of 'bad', the event),
    scored by AUC by default; the summary says which evidence decided."""
    rng = np.random.default_rng(1)
    n = 400
    x = rng.normal(size=n)
    frame = pd.DataFrame({"id": np.arange(n), "amount": x, "risk": np.where(x + rng.normal(size=n) > 0.8, "bad", "good")})
    train, test = frame.iloc[:300], frame.iloc[300:].drop(columns="risk")
    from helpers import write_task

    task = write_task(tmp_path / "credit", train, test, test[["id"]].assign(risk=0), STRIPPED_DESCRIPTION)
    summary = analyze_task(task)
    assert summary.submission.kind == "probability" and summary.submission.positive_class == "bad"
    assert summary.metric == "auc"
    assert "numbers where the train target holds labels" in summary.decisions["submission"]
    assert "conventional positive label" in summary.decisions["submission"]
    assert summary.decisions["metric"].startswith("default: AUC for one probability column")


def test_labels_in_the_sample_keep_labels(tmp_path):
    from helpers import write_task

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"id": np.arange(200), "x": rng.normal(size=200), "kind": rng.choice(["cat", "dog"], 200)})
    train, test = frame.iloc[:150], frame.iloc[150:].drop(columns="kind")
    task = write_task(tmp_path / "pets", train, test, test[["id"]].assign(kind="cat"), STRIPPED_DESCRIPTION)
    summary = analyze_task(task)
    assert summary.submission.kind == "label" and summary.metric == "accuracy"


def test_minority_class_is_the_event_when_no_word_names_one(tmp_path):
    from iml_ray.task.answer_format import positive_class

    y = pd.Series(["alpha"] * 80 + ["omega"] * 20)
    assert positive_class(["alpha", "omega"], {}, "", "t", y)[0] == "omega"
    y = pd.Series(["alpha"] * 20 + ["omega"] * 80)
    cls, why = positive_class(["alpha", "omega"], {}, "", "t", y)
    assert cls == "alpha" and "minority" in why
    with pytest.raises(TaskError):
        positive_class(["a", "b"], {"positive_class": "c"}, "", "t", y)


def test_a_hinted_id_that_is_free_text_stays_a_passthrough_feature(tmp_path):
    """An LLM answering id_column='Comment' on the insults layout would drop the only feature: refused."""
    task, _ = _insults_task(tmp_path / "insults")
    summary = analyze_task(task, hints={"id_column": "Comment"}, hints_from="llm TaskAnalyzer")
    assert summary.id_column is None and "Comment" in summary.feature_columns
    assert summary.submission.passthrough == ("Date", "Comment")


def _digit_recognizer(root: Path, start: int = 1) -> Path:
    """Kaggle's digit recognizer: train (label, pixels), test (pixels only), sample (ImageId 1..n, Label)."""
    from helpers import write_task

    rng = np.random.default_rng(5)
    n = 360
    label = rng.integers(0, 3, n)
    frame = pd.DataFrame({"label": label, **{f"pixel{i}": label * (i % 3) + rng.normal(0, 0.5, n) for i in range(6)}})
    train, test = frame.iloc[:300], frame.iloc[300:].drop(columns="label").reset_index(drop=True)
    sample = pd.DataFrame({"ImageId": start + np.arange(len(test)), "Label": 0})
    return write_task(root, train, test, sample, "The evaluation metric is the categorization accuracy.")


def test_a_sample_column_numbering_the_test_rows_is_written_as_their_numbers(tmp_path):
    summary = analyze_task(_digit_recognizer(tmp_path / "digits"))
    fmt = summary.submission
    assert (summary.target, summary.id_column, summary.problem_type) == ("label", None, "multiclass")
    assert (fmt.kind, fmt.target_columns, fmt.columns) == ("label", ("Label",), ("ImageId", "Label"))
    assert (fmt.row_number_column, fmt.row_number_start) == ("ImageId", 1)
    assert "counts the test rows" in summary.decisions["id_column"]
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    submission = Path(result.submission_path)
    written = pd.read_csv(submission)
    assert list(written.columns) == ["ImageId", "Label"]
    assert written["ImageId"].tolist() == list(range(1, summary.n_test + 1))
    assert check_submission(submission, summary) == []
    written.assign(ImageId=written["ImageId"] - 1).to_csv(tmp_path / "shifted.csv", index=False)
    assert any("does not number the test rows from 1" in p for p in check_submission(tmp_path / "shifted.csv", summary))


def test_a_sample_column_that_neither_test_has_nor_counts_its_rows_is_refused(tmp_path):
    root = _digit_recognizer(tmp_path / "digits")
    sample = pd.read_csv(root / "sample_submission.csv")
    sample.assign(ImageId=sample["ImageId"] * 7).to_csv(root / "sample_submission.csv", index=False)
    with pytest.raises(TaskError, match="'ImageId' is not a column of the test table and does not number its rows"):
        analyze_task(root)


def test_an_id_spelled_otherwise_in_the_sample_is_one_clear_line(tmp_path):
    from helpers import binary_frames, write_task

    train, test, sample = binary_frames()
    root = write_task(tmp_path / "t", train, test, sample.rename(columns={"id": "ID"}), "Scored on accuracy.")
    with pytest.raises(TaskError, match="sample_submission.csv's id column 'ID' is 'id' in test.csv") as info:
        check_task(root)
    assert info.value.fix == "Spell the id column the same way in both files."
