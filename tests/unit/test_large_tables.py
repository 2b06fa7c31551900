"""A large table is analysed and profiled in bounded pieces, with the answers of the whole-table path.

The memory itself is measured in benchmarks/big_csv.py (a 2 GB CSV); here the
proof is structural: no read of the table returns more than a chunk of rows
unless it reads a single column, and the streamed profile equals the in-memory one.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import write_task

from iml_ray.safety.contract import check_submission
from iml_ray.scoring.evaluate import read_target
from iml_ray.task import inference as task_inference
from iml_ray.task import tables as table_stream
from iml_ray.task.column_stats import DistinctSketch, Moments
from iml_ray.task.inference import analyze_task
from iml_ray.task.profiling import profile_task
from iml_ray.task.tables import read_columns

WHOLE = 1 << 62                 # stream_above: never stream
ALWAYS = -1                     # stream_above: always stream


def mixed_task(root: Path, n: int = 5000, regression: bool = False, seed: int = 0) -> Path:
    """Every kind of column the profiler tells apart, with gaps, and a column that turns to text late in the file."""
    rng = np.random.default_rng(seed)
    words = np.array(["good", "bad", "fine", "slow", "fast", "late", "cheap", "loud", "calm"])
    frame = pd.DataFrame({
        "id": np.arange(10, 10 + n),
        "amount": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(size=n)),
        "rooms": np.where(rng.random(n) < 0.05, np.nan, rng.integers(1, 6, n)),
        "city": rng.choice(["paris", "lyon", "nice", "lille"], n, p=[0.5, 0.3, 0.15, 0.05]),
        "member": rng.random(n) < 0.3,
        "code": [f"c{i:06d}" for i in rng.permutation(n)],
        "signup": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="min"),
        "review": [" ".join(rng.choice(words, rng.integers(5, 12))) for _ in range(n)],
        "height": np.where(rng.random(n) < 0.03, "?", rng.normal(170, 10, n).round(1).astype(str)),
        "photo": [f"img_{i}.jpg" for i in range(n)],
        "constant": 7,
        # numbers for most of the file, then text: the chunks parse it differently from the whole file
        "batch": [str(i % 40) if i < int(n * 0.8) - 700 else f"b{i % 7}" for i in range(n)],
    })
    frame["signup"] = frame["signup"].dt.strftime("%Y-%m-%d %H:%M")
    if regression:
        frame["price"] = np.exp(rng.normal(3, 1, n)).round(2)
        target = "price"
    else:
        frame["label"] = rng.choice(["yes", "no", "maybe"], n, p=[0.6, 0.3, 0.1])
        target = "label"
    cut = int(n * 0.8)
    train, test = frame.iloc[:cut], frame.iloc[cut:].drop(columns=target)
    sample = pd.DataFrame({"id": test["id"], target: 0.0 if regression else "no"})
    return write_task(root, train, test, sample, "## Evaluation\n" + ("RMSE." if regression else "Accuracy."))


def assert_same_profile(whole, streamed):
    assert (streamed.n_train, streamed.n_test) == (whole.n_train, whole.n_test)
    assert streamed.memory_mb == pytest.approx(whole.memory_mb, rel=0.25)
    assert [c.name for c in streamed.columns] == [c.name for c in whole.columns]
    for a, b in zip(whole.columns, streamed.columns):
        assert (b.role, b.dtype) == (a.role, a.dtype), (a.name, a.why, b.why)
        assert (b.missing_frac, b.missing_frac_test, b.n_unique, b.unique_frac) == \
               (a.missing_frac, a.missing_frac_test, a.n_unique, a.unique_frac), a.name
        assert b.examples == a.examples, a.name
        for stat in ("mean", "std", "min", "max"):
            x, y = getattr(a, stat), getattr(b, stat)
            assert (x is None) == (y is None) and (x is None or math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-5)), (a.name, stat)
        # Judged on a sample of 2000 values in both paths (different samples past 2000 rows): close, not equal.
        for stat in ("mean_length", "mean_words"):
            x, y = getattr(a, stat), getattr(b, stat)
            assert (x is None) == (y is None) and (x is None or math.isclose(x, y, rel_tol=0.05)), (a.name, stat)
        assert b.top_values == a.top_values, a.name
    ta, tb = whole.target, streamed.target
    assert (tb.name, tb.problem_type, tb.n_missing, tb.class_counts, tb.imbalance_ratio) == \
           (ta.name, ta.problem_type, ta.n_missing, ta.class_counts, ta.imbalance_ratio)
    for stat in ("mean", "std", "min", "max", "skew"):
        x, y = getattr(ta, stat), getattr(tb, stat)
        assert (x is None) == (y is None) and (x is None or math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6)), stat


@pytest.mark.parametrize("regression", [False, True])
def test_streamed_profile_gives_the_answers_of_the_in_memory_profile(tmp_path, regression):
    summary = analyze_task(mixed_task(tmp_path / "t", regression=regression))
    whole = profile_task(summary, stream_above=WHOLE)
    streamed = profile_task(summary, stream_above=ALWAYS, chunk_rows=333)
    # The roles the rest of the system acts on, spelled out (a regression in either path shows here first).
    assert whole.roles == {"numeric": ["amount", "rooms", "height"], "categorical": ["city", "member", "batch"],
                           "id": ["code", "id"], "datetime": ["signup"], "text": ["review"], "path": ["photo"],
                           "constant": ["constant"]}
    assert "missing marked as '?'" in whole.column("height").why
    assert_same_profile(whole, streamed)


class ReadLog:
    """Every pd.read_csv of the task's files: how many rows and columns each frame (or chunk) it returned held."""

    def __init__(self, monkeypatch):
        self.reads: list[tuple[str, int, int]] = []
        real = pd.read_csv

        def spy(source, *args, **kwargs):
            result = real(source, *args, **kwargs)
            name = Path(source).name if isinstance(source, (str, Path)) else "?"
            if isinstance(result, pd.DataFrame):
                self.reads.append((name, len(result), result.shape[1]))
                return result
            return _Chunks(result, name, self.reads)

        monkeypatch.setattr(pd, "read_csv", spy)

    def of(self, name: str) -> list[tuple[int, int]]:
        return [(rows, width) for file, rows, width in self.reads if file == name]


class _Chunks:
    def __init__(self, reader, name, reads):
        self.reader, self.name, self.reads = reader, name, reads

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reader.close()

    def __iter__(self):
        for chunk in self.reader:
            self.reads.append((self.name, len(chunk), chunk.shape[1]))
            yield chunk


def test_analysis_profile_and_scoring_never_hold_more_than_a_chunk_of_the_table(tmp_path, monkeypatch):
    root = mixed_task(tmp_path / "t", n=4000)
    summary = analyze_task(root)
    whole = profile_task(summary, stream_above=WHOLE)

    chunk, head = 250, 100
    monkeypatch.setattr(table_stream, "MIN_CHUNK_ROWS", 10)
    monkeypatch.setattr(table_stream, "MAX_CHUNK_ROWS", chunk)
    monkeypatch.setattr(task_inference, "HEAD_ROWS", head)
    log = ReadLog(monkeypatch)
    again = analyze_task(root)
    streamed = profile_task(again, stream_above=ALWAYS)
    labels = read_target(again)
    submission = tmp_path / "submission.csv"
    pd.read_csv(root / "sample_submission.csv").to_csv(submission, index=False)
    assert check_submission(submission, again) == []

    assert again == summary and len(labels) == summary.n_train == 3200
    assert_same_profile(whole, streamed)
    train_width = len(pd.read_csv(root / "train.csv", nrows=0).columns)
    for name in ("train.csv", "test.csv"):
        reads = log.of(name)
        # Whole columns are read one at a time (the target, the ids); anything wider comes a chunk at a time.
        assert all(rows <= chunk or width == 1 for rows, width in reads), reads
        assert max(rows for rows, width in reads if width > 1) <= chunk
    # The profile saw every train row, in many chunks of (nearly) every column.
    profiled = [rows for rows, width in log.of("train.csv") if width >= train_width - 1 and rows > head]
    assert sum(profiled) == 3200 and len(profiled) >= 3200 // chunk
    assert all(width <= 2 for rows, width in log.of("sample_submission.csv") if rows > head)


@pytest.mark.parametrize("values, dtype", [
    (["1", "2", "", "3", "4", "5"], "float64"),            # an int column with a gap is float, as a whole
    (["1", "2", "3", "x", "4", "5"], "str"),               # numbers, then text: every value stays text
    (["True", "False", "True", "", "True", "False"], "object"),
    (["a", "b", "", "", "c", "d"], "str"),
    (["", "", "", "", "", ""], "float64"),
])
def test_a_column_read_in_chunks_has_the_whole_file_dtype_and_values(tmp_path, values, dtype):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "\n".join(f"{v},1" for v in values) + "\n")
    whole = pd.read_csv(path, low_memory=False)["a"]
    chunked = read_columns(path, ["a"], chunk_rows=2)["a"]
    assert str(chunked.dtype) == str(whole.dtype) == dtype
    assert [(type(v), str(v)) for v in chunked] == [(type(v), str(v)) for v in whole]


def test_a_non_utf8_byte_late_in_the_file_reads_the_whole_file_as_latin1(tmp_path):
    rows = [f"{i},{'café' if i == 3900 else 'x'},{i % 2}" for i in range(4000)]
    train = tmp_path / "train.csv"
    train.write_bytes(("id,name,label\n" + "\n".join(rows) + "\n").encode("latin-1"))
    frame = read_columns(train, ["name", "label"], chunk_rows=500)
    assert frame["name"].iloc[3900] == "café" and len(frame) == 4000


def test_running_moments_merge_to_the_whole_column_statistics():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.lognormal(size=5000), [np.nan, np.inf]])
    moments = Moments()
    for part in np.array_split(values, 17):
        moments.add(part)
    finite = pd.Series(values[np.isfinite(values)])
    assert (moments.n, moments.lo, moments.hi) == (len(finite), finite.min(), finite.max())
    assert moments.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert moments.std == pytest.approx(finite.std(), rel=1e-10)
    assert moments.skew == pytest.approx(finite.skew(), rel=1e-8)


def test_distinct_count_is_exact_up_to_its_cap_and_estimated_beyond():
    small, large = DistinctSketch(cap=1024), DistinctSketch(cap=1024)
    for start in range(0, 50_000, 5000):
        small.add(pd.Series(np.arange(start, start + 5000) % 1000, dtype="float64"))
        large.add(pd.Series(np.arange(start, start + 5000), dtype="float64"))
    assert small.exact and small.count() == 1000
    assert not large.exact and large.count() == pytest.approx(50_000, rel=0.1)
