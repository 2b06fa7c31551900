"""Running statistics of one column, fed chunk by chunk, in memory that does not grow with the rows.

Exact where that is cheap (counts, min/max, mean and spread from merged
moments), exact up to a cap and then estimated where it is not (distinct
values, value counts), and a seeded uniform sample of the values for what is
judged on a sample anyway (text length, date and file-name patterns).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from iml_ray.task.tables import column_kind, combined_dtype

DISTINCT_CAP = 1 << 16        # distinct values counted exactly up to here (512 KB of hashes per column)
COUNT_CAP = 20_000            # values whose frequency is tracked (for the top values)
SAMPLE_SIZE = 2000            # the in-memory profile judges text on a sample of this size too


@dataclass
class Moments:
    """Count, mean, central moments M2 and M3, min and max of finite values; chunks merge exactly (Chan / Pébay)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    lo: float = np.inf
    hi: float = -np.inf

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype="float64")
        values = values[np.isfinite(values)]
        if not len(values):
            return
        nb, mb = len(values), float(values.mean())
        dev = values - mb
        m2b, m3b = float((dev ** 2).sum()), float((dev ** 3).sum())
        na, n = self.n, self.n + nb
        delta = mb - self.mean
        self.m3 = (self.m3 + m3b + delta ** 3 * na * nb * (na - nb) / n ** 2
                   + 3 * delta * (na * m2b - nb * self.m2) / n)
        self.m2 = self.m2 + m2b + delta ** 2 * na * nb / n
        self.mean = self.mean + delta * nb / n
        self.n = n
        self.lo, self.hi = min(self.lo, float(values.min())), max(self.hi, float(values.max()))

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / (self.n - 1))) if self.n > 1 else float("nan")

    @property
    def skew(self) -> float:
        """pandas' Series.skew: the adjusted Fisher-Pearson coefficient."""
        n = self.n
        if n < 3:
            return float("nan")
        m2, m3 = self.m2 / n, self.m3 / n
        if m2 <= 1e-14 * max(self.mean ** 2, 1e-300):
            return 0.0
        return float(np.sqrt(n * (n - 1)) / (n - 2) * m3 / m2 ** 1.5)

    def stats(self) -> dict[str, float]:
        return {} if not self.n else {"mean": self.mean, "std": self.std, "min": self.lo, "max": self.hi}


class DistinctSketch:
    """The smallest CAP 64-bit hashes of the values seen (k minimum values).

    While fewer than CAP distinct values were seen it holds all of them, so the
    count is exact; beyond, the CAP-th smallest hash estimates the count within
    about 1/sqrt(CAP) (0.4 %)."""

    def __init__(self, cap: int = DISTINCT_CAP):
        self.cap = cap
        self.hashes = np.empty(0, dtype="uint64")
        self.overflowed = False

    def add(self, values: pd.Series) -> None:
        if values.empty:
            return
        hashed = np.unique(pd.util.hash_pandas_object(values, index=False).to_numpy())
        merged = np.union1d(self.hashes, hashed)
        if len(merged) > self.cap:
            self.overflowed = True
            merged = merged[: self.cap]
        self.hashes = merged

    @property
    def exact(self) -> bool:
        return not self.overflowed

    def count(self) -> int:
        if not self.overflowed:
            return len(self.hashes)
        return int(round((self.cap - 1) / (float(self.hashes[-1]) / 2.0 ** 64)))


class BoundedCounter:
    """Value counts, exact while at most `cap` distinct values were seen; then the rarer half is dropped
    whenever the table fills, so frequent values keep (nearly) exact counts and rare ones are forgotten."""

    def __init__(self, cap: int = COUNT_CAP):
        self.cap = cap
        self.counts: dict[Any, int] = {}
        self.exact = True

    def add(self, values: pd.Series) -> None:
        # Counted on the chunk first (fast), merged in order of first appearance, as value_counts breaks ties.
        counts = values.value_counts(sort=False)
        for key, n in zip(counts.index.tolist(), counts.to_numpy().tolist()):
            self.counts[key] = self.counts.get(key, 0) + int(n)
        if len(self.counts) > self.cap:
            self.exact = False
            keep = sorted(self.counts.items(), key=lambda kv: -kv[1])[: self.cap // 2]
            kept = {k for k, _ in keep}
            self.counts = {k: v for k, v in self.counts.items() if k in kept}

    def top(self, k: int) -> list[tuple[Any, int]]:
        return sorted(self.counts.items(), key=lambda kv: -kv[1])[:k]


class Sample:
    """A seeded uniform sample of at most `size` values (the smallest random keys win), in file order."""

    def __init__(self, size: int = SAMPLE_SIZE, seed: int = 0):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.keys = np.empty(0)
        self.positions = np.empty(0, dtype="int64")
        self.values: list[Any] = []
        self.seen = 0

    def add(self, values: pd.Series) -> None:
        if values.empty:
            return
        keys = np.concatenate([self.keys, self.rng.random(len(values))])
        positions = np.concatenate([self.positions, self.seen + np.arange(len(values))])
        pool = self.values + values.tolist()
        self.seen += len(values)
        if len(keys) > self.size:
            chosen = np.argpartition(keys, self.size)[: self.size]
            keys, positions, pool = keys[chosen], positions[chosen], [pool[i] for i in chosen]
        self.keys, self.positions, self.values = keys, positions, pool

    def series(self, name: str) -> pd.Series:
        order = np.argsort(self.positions, kind="stable")
        return pd.Series([self.values[i] for i in order], name=name, dtype=object)


def format_value(value: Any, dtype: str) -> str:
    """A value as str() shows it once the whole column has its final dtype (an int chunk of a float column: 1 -> '1.0')."""
    if dtype == "float64":
        return str(float(value))
    if dtype == "int64":
        return str(int(value))
    return str(value)


@dataclass
class ColumnStats:
    """Everything profile_column measures, accumulated over the chunks of one column."""

    name: str
    keep_sample: int = SAMPLE_SIZE
    n: int = 0
    missing: int = 0
    kinds: set = field(default_factory=set)

    def __post_init__(self):
        self.distinct = DistinctSketch()
        self.first: list[Any] = []                  # the first distinct values, for examples
        self.numbers = Moments()                    # numeric chunks
        self.parsed = Moments()                     # text chunks, as numbers where they parse
        self.counts = BoundedCounter()              # text and boolean chunks
        self.sample = Sample(self.keep_sample)
        self.integer_sum = 0                        # the sum of an integer column (an id's check)

    def add(self, values: pd.Series) -> None:
        kind = column_kind(values)
        self.kinds.add(kind)
        self.n += len(values)
        present = values.dropna()
        self.missing += len(values) - len(present)
        if present.empty:
            return
        if kind == "b":
            present = present.astype(bool)
        numeric = kind in ("i", "f")
        # int and float chunks of one column hash alike: 1 and 1.0 are one value once the column is float64
        self.distinct.add(present.astype("float64") if numeric else present.astype(str) if kind in ("s", "o") else present)
        if len(self.first) < 3:
            for value in present.drop_duplicates().head(3).tolist():
                if len(self.first) < 3 and value not in self.first:
                    self.first.append(value)
        if numeric:
            self.numbers.add(present.to_numpy(dtype="float64"))
            if kind == "i":
                self.integer_sum += int(present.sum())
            return
        self.counts.add(present)
        if kind in ("s", "o"):
            self.parsed.add(pd.to_numeric(present, errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
        self.sample.add(present.astype(str))

    @property
    def dtype(self) -> str:
        return combined_dtype(self.kinds, self.missing > 0)

    def examples(self) -> tuple[str, ...]:
        return tuple(format_value(v, self.dtype)[:80] for v in self.first)

    def top(self, k: int = 5) -> dict[str, int]:
        return {format_value(key, self.dtype): n for key, n in self.counts.top(k)}

    def is_sequence(self) -> bool:
        """Unique consecutive integers, one per row: n values, n distinct, spanning exactly n integers."""
        if self.dtype != "int64" or self.numbers.n != self.n or self.n < 2:
            return False
        span = int(self.numbers.hi) - int(self.numbers.lo) + 1
        if self.distinct.exact:
            return span == self.n and self.distinct.count() == self.n
        # Past the sketch's cap: the span and the sum of lo..hi must both fit.
        return span == self.n and 2 * self.integer_sum == self.n * (int(self.numbers.lo) + int(self.numbers.hi))
