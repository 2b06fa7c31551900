"""Tables as competitions ship them: CSV, TSV, parquet, JSON records, JSON lines, gzip and zip of these.

The library and the generated pipeline read them with the same code (table_file.py); a broken file is one
clear TaskError line."""
from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import bbc_comments, binary_frames, verified_candidate

from iml_ray.errors import TaskError
from iml_ray.task.inference import analyze_task
from iml_ray.task.profiling import profile_task
from iml_ray.task.tables import count_rows, iter_table, read_columns


def _write(frame: pd.DataFrame, path: Path) -> None:
    """The frame in the format the file name says."""
    name = path.name
    if name.endswith(".zip"):
        inner = name[: -len(".zip")]
        buffer = io.BytesIO()
        _write_to(frame, inner, buffer)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(inner, buffer.getvalue())
        return
    if name.endswith(".gz"):
        buffer = io.BytesIO()
        _write_to(frame, name[: -len(".gz")], buffer)
        path.write_bytes(gzip.compress(buffer.getvalue()))
        return
    with open(path, "wb") as handle:
        _write_to(frame, name, handle)


def _write_to(frame: pd.DataFrame, name: str, handle) -> None:
    if name.endswith(".parquet"):
        frame.to_parquet(handle, index=False)
    elif name.endswith((".jsonl", ".ndjson")):
        handle.write(frame.to_json(orient="records", lines=True).encode())
    elif name.endswith(".json"):
        handle.write(frame.to_json(orient="records").encode())
    else:
        handle.write(frame.to_csv(index=False, sep="\t" if name.endswith(".tsv") else ",").encode())


FORMATS = [".tsv", ".parquet", ".json", ".jsonl", ".csv.gz", ".tsv.gz", ".json.gz", ".csv.zip", ".json.zip",
           ".parquet.zip"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_every_format_gives_the_csv_task(tmp_path, suffix):
    train, test, sample = binary_frames(200, 50)
    reference = tmp_path / "csv"
    reference.mkdir()
    _write(train, reference / "train.csv")
    _write(test, reference / "test.csv")
    sample.to_csv(reference / "sample_submission.csv", index=False)
    other = tmp_path / "other"
    other.mkdir()
    _write(train, other / f"train{suffix}")
    _write(test, other / f"test{suffix}")
    sample.to_csv(other / "sample_submission.csv", index=False)
    want, got = analyze_task(reference), analyze_task(other)
    assert got.train_file == f"train{suffix}"
    for field in ("target", "id_column", "problem_type", "metric", "feature_columns", "n_train", "n_test"):
        assert getattr(got, field) == getattr(want, field), field
    assert count_rows(other / f"train{suffix}") == 200
    # (pandas writes JSON numbers with 10 significant decimals)
    assert np.allclose(read_columns(other / f"train{suffix}", ["x1"])["x1"].to_numpy(), train["x1"].to_numpy(), atol=1e-9)
    assert sum(len(chunk) for chunk in iter_table(other / f"test{suffix}", chunk_rows=17)) == 50
    profile = profile_task(got)
    assert {c.name for c in profile.columns} >= {"x1", "colour", "age"}


def test_json_records_with_nested_fields_run_through_a_real_pipeline(tmp_path):
    """Pizza-like records (random-acts-of-pizza): JSON lines with a list field and a text field; the generated
    pipeline reads the same files and writes a verified submission."""
    frame = bbc_comments()
    records = [{"request_id": f"t3_{i}", "request_text": row.Comment, "subreddits": row.Comment.split()[:3],
                "upvotes": i % 7, "received_pizza": bool(row.Insult)} for i, row in enumerate(frame.itertuples())]
    root = tmp_path / "pizza"
    root.mkdir()
    train, test = records[:420], records[420:]
    (root / "train.json").write_text(json.dumps(train))
    (root / "test.json").write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "received_pizza"})
                                              for r in test))
    pd.DataFrame({"request_id": [r["request_id"] for r in test], "received_pizza": 0}).to_csv(
        root / "sampleSubmission.csv", index=False)
    (root / "description.md").write_text("Predict whether the request got a pizza. Evaluated on AUC.\n")
    summary = analyze_task(root)
    assert summary.target == "received_pizza" and summary.id_column == "request_id"
    assert set(summary.feature_columns) == {"request_text", "subreddits", "upvotes"}
    result = verified_candidate(tmp_path, summary, time.time() + 240)
    written = pd.read_csv(result.submission_path)
    assert written["request_id"].tolist() == [r["request_id"] for r in test]
    assert written["received_pizza"].between(0, 1).all()


@pytest.mark.parametrize("content, problem", [
    ('"' + "x" * 200_000 + '"', "not a list of records"),
    ('[{"a": 1, "y": 0}, 5, "text"]', "must be an object of fields"),
    ('[{"a": 1, "y": 0}, {"a": 2, "y": 1', "cannot be read"),
    ("", "cannot be read"),
])
def test_broken_json_is_one_clear_line(tmp_path, content, problem):
    train, test, sample = binary_frames(30, 10)
    root = tmp_path / "t"
    root.mkdir()
    (root / "train.json").write_text(content)
    _write(test, root / "test.json")
    sample.to_csv(root / "sample_submission.csv", index=False)
    with pytest.raises(TaskError) as info:
        analyze_task(root)
    rendered = info.value.render()
    assert problem in rendered and len(rendered.splitlines()) <= 2 and "Traceback" not in rendered


def test_records_of_mixed_field_types_read_as_text(tmp_path):
    """A field that is a number in one record and text in another is text, as a CSV reader would make it."""
    from iml_ray.task.table_file import read_table_file

    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"a": 1, "b": 2.5}, {"a": "one", "b": None}, {"a": None, "b": 3}]))
    frame = read_table_file(path)
    assert frame["a"].tolist()[:2] == ["1", "one"] and frame["a"].isna().tolist() == [False, False, True]
    assert frame["b"].dtype == float


def test_a_zip_with_several_files_is_not_a_table(tmp_path):
    train, test, sample = binary_frames(30, 10)
    root = tmp_path / "t"
    root.mkdir()
    with zipfile.ZipFile(root / "train.zip", "w") as archive:
        archive.writestr("a.csv", train.to_csv(index=False))
        archive.writestr("b.csv", train.to_csv(index=False))
    _write(test, root / "test.csv")
    with pytest.raises(TaskError, match="no train file"):
        analyze_task(root)
