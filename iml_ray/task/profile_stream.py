"""The profile of a table too large to load: the same Profile as profile_frames, computed chunk by chunk.

One pass over train (only the columns the task uses) and one over test: per
column running counts, moments, a distinct-value sketch, bounded value counts
and a seeded sample (iml_ray/task/column_stats.py). The role of each column is then
decided by the same function as in memory (profile.infer_role). A column whose
chunks parsed differently (numbers in some, text in others) is read again as
text, so that it is judged as the whole-file read would judge it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from iml_ray.task.column_stats import BoundedCounter, ColumnStats, Moments, Sample, format_value
from iml_ray.task.files import TaskSummary, read_table
from iml_ray.task.profile import ColumnFacts, Profile, TargetProfile, column_profile, profile_audio, profile_images, round_or_none
from iml_ray.task.tables import column_kind, combined_dtype, iter_table, needs_text_reread

log = logging.getLogger(__name__)

MEDIA_SAMPLE = 100        # profile_images / profile_audio open this many per split


class TargetStats:
    """The target column: missing count, class counts (by raw value) or numeric moments with skew."""

    def __init__(self, name: str):
        self.name = name
        self.missing = 0
        self.kinds: set[str] = set()
        self.moments = Moments()
        self.counts = BoundedCounter(cap=1_000_000)       # classes: as many as the task has

    def add(self, values: pd.Series) -> None:
        self.kinds.add(column_kind(values))
        present = values.dropna()
        self.missing += len(values) - len(present)
        self.counts.add(present)
        self.moments.add(pd.to_numeric(present, errors="coerce").to_numpy(dtype="float64", na_value=float("nan")))

    def profile(self, problem_type: str) -> TargetProfile:
        if problem_type == "regression":
            m = self.moments
            return TargetProfile(self.name, problem_type, self.missing, mean=round_or_none(m.mean) if m.n else None,
                                 std=round_or_none(m.std), min=round_or_none(m.lo), max=round_or_none(m.hi),
                                 skew=round_or_none(m.skew))
        dtype = combined_dtype(self.kinds, self.missing > 0)
        counts: dict[str, int] = {}
        for key, n in self.counts.counts.items():
            label = format_value(key, dtype)
            counts[label] = counts.get(label, 0) + n
        ratio = max(counts.values()) / min(counts.values()) if counts else None
        by_count = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
        return TargetProfile(self.name, problem_type, self.missing, class_counts=by_count,
                             imbalance_ratio=None if ratio is None else round(ratio, 3))


def profile_streamed(summary: TaskSummary, chunk_rows: int | None = None) -> Profile:
    root = Path(summary.task_dir)
    train_path, test_path = root / summary.train_file, root / summary.test_file
    train_header = set(read_table(train_path, nrows=1).columns)
    test_header = set(read_table(test_path, nrows=1).columns)
    profiled = list(summary.feature_columns)
    with_id = bool(summary.id_column and summary.id_column in train_header)
    if with_id:
        profiled.append(summary.id_column)
    media_columns = sorted({s.column for s in summary.media})

    columns, target, memory, media = _train_pass(train_path, profiled, summary.target, media_columns, chunk_rows)
    mixed = [c for c in profiled if needs_text_reread(columns[c].kinds)]
    if needs_text_reread(target.kinds):
        mixed.append(summary.target)
    if mixed:
        log.info("%s: column(s) %s hold text and numbers; reading them again as text", train_path.name, ", ".join(mixed))
        again, target_again, _, _ = _train_pass(train_path, [c for c in mixed if c != summary.target], summary.target,
                                                [], chunk_rows, as_str=mixed, with_target=summary.target in mixed)
        columns.update(again)
        target = target_again if summary.target in mixed else target

    tested = [c for c in profiled if c in test_header]
    test_missing, n_test, test_memory, test_media = _test_pass(test_path, tested, media_columns, chunk_rows)
    n_train = next(iter(columns.values())).n if columns else target.missing + sum(target.counts.counts.values())

    profiles = []
    for name in profiled:
        stats = columns[name]
        facts = _facts(stats)
        test_frac = test_missing.get(name, 0) / n_test if n_test else 0.0
        profiles.append(column_profile(name, stats.dtype, facts, stats.missing / max(stats.n, 1), test_frac,
                                       stats.examples(), root, "id" if with_id and name == summary.id_column else None))
    train_frame = pd.DataFrame({c: media[c].series(c) for c in media_columns}) if media_columns else None
    test_frame = pd.DataFrame({c: test_media[c].series(c) for c in media_columns}) if media_columns else None
    image_profiles = tuple(profile_images(source, train_frame, test_frame, root) for source in summary.images)
    audio_profiles = tuple(profile_audio(source, train_frame, test_frame, root) for source in summary.audio)
    return Profile(n_train, n_test, round((memory + test_memory) / 2**20, 2), tuple(profiles),
                   target.profile(summary.problem_type), image_profiles, audio=audio_profiles)


def _train_pass(path: Path, profiled: list[str], target_name: str, media_columns: list[str], chunk_rows: int | None,
                as_str: list[str] | None = None, with_target: bool = True):
    wanted = list(dict.fromkeys(profiled + ([target_name] if with_target else []) + media_columns))
    columns = {c: ColumnStats(c) for c in profiled}
    target = TargetStats(target_name)
    media = {c: Sample(MEDIA_SAMPLE) for c in media_columns}
    memory = 0
    for chunk in iter_table(path, chunk_rows, usecols=wanted, as_str=as_str):
        memory += int(chunk.memory_usage(deep=True, index=False).sum())
        for name, stats in columns.items():
            stats.add(chunk[name])
        if with_target:
            target.add(chunk[target_name])
        for name, sample in media.items():
            sample.add(chunk[name].dropna().astype(str))
    return columns, target, memory, media


def _test_pass(path: Path, tested: list[str], media_columns: list[str], chunk_rows: int | None):
    missing = {c: 0 for c in tested}
    media = {c: Sample(MEDIA_SAMPLE) for c in media_columns}
    rows, memory = 0, 0
    wanted = list(dict.fromkeys(tested + media_columns)) or None
    for chunk in iter_table(path, chunk_rows, usecols=wanted):
        rows += len(chunk)
        memory += int(chunk.memory_usage(deep=True, index=False).sum())
        for name in tested:
            missing[name] += int(chunk[name].isna().sum())
        for name, sample in media.items():
            sample.add(chunk[name].dropna().astype(str))
    return missing, rows, memory, media


def _facts(stats: ColumnStats) -> ColumnFacts:
    dtype = stats.dtype
    n_unique = stats.distinct.count()
    estimated = not stats.distinct.exact
    if dtype == "bool" or (dtype == "object" and stats.kinds - {"n"} == {"b"}):
        return ColumnFacts(stats.n, n_unique, "bool" if dtype == "bool" else "text", sample=stats.sample.series(stats.name),
                           parsed=stats.parsed.stats(), top=stats.top(), estimated=estimated)
    if dtype in ("int64", "float64"):
        return ColumnFacts(stats.n, n_unique, "numeric", integer=dtype == "int64", is_sequence=stats.is_sequence(),
                           numeric=stats.numbers.stats(), estimated=estimated)
    return ColumnFacts(stats.n, n_unique, "text", sample=stats.sample.series(stats.name), parsed=stats.parsed.stats(),
                       top=stats.top(), estimated=estimated)
