"""Executed data profiling: what the columns really hold, measured on the data (a table in memory).

Every later decision (which columns become TF-IDF features, whether classes are
imbalanced, whether the target is skewed) is grounded in this Profile, not in
the column names or the description. `profiling.profile_task` picks this
in-memory path or the streamed one (profile_stream.py); both share the Profile
and the role decision defined here.
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

from iml_ray.task.files import TaskSummary
from iml_ray.task.media import media_paths

log = logging.getLogger(__name__)

ROLES = ("numeric", "categorical", "text", "datetime", "id", "path", "constant")
FILE_SUFFIX = re.compile(r"\.(?:png|jpe?g|gif|bmp|tiff?|webp|wav|mp3|flac|txt|json|npy|dcm)$", re.IGNORECASE)
# 2013-04-10, 10/04/2013 12:30; April 10, 2013, 10 Apr 2013; 20120618192155Z (the insults competition's stamps).
DATE_LIKE = re.compile(r"^((mon|tue|wed|thu|fri|sat|sun)[a-z]*,? )?"       # RFC 2822's weekday: "Tue, 01 Jan 2013"
                       r"(\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2})?)?"
                       r"|(\d{1,2} )?(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,4}(,? \d{4})?"
                       r"|\d{8}(T?\d{4,6})?Z)", re.IGNORECASE)
SAMPLE_SIZE = 2000            # text columns are judged on a seeded sample of this many values


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    dtype: str
    role: str
    missing_frac: float
    missing_frac_test: float
    n_unique: int
    unique_frac: float
    examples: tuple[str, ...]
    why: str
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    mean_length: float | None = None
    mean_words: float | None = None
    top_values: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetProfile:
    name: str
    problem_type: str
    n_missing: int
    class_counts: dict[str, int] = field(default_factory=dict)
    imbalance_ratio: float | None = None       # largest class / smallest class
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    skew: float | None = None


@dataclass(frozen=True)
class ImageProfile:
    """Measured on a sample of the files an ImageSource names."""

    name: str
    column: str
    n_checked: int
    n_unreadable: int
    min_width: int
    max_width: int
    min_height: int
    max_height: int
    modes: dict[str, int] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        colour = sum(n for mode, n in self.modes.items() if mode not in ("L", "1", "I", "I;16", "F", "LA"))
        return 3 if colour else 1


@dataclass(frozen=True)
class AudioProfile:
    """Measured on a sample of the clips an AudioSource names (headers only)."""

    name: str
    column: str
    n_checked: int
    n_unreadable: int
    min_rate: int
    max_rate: int
    max_channels: int
    min_seconds: float
    median_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class Profile:
    n_train: int
    n_test: int
    memory_mb: float
    columns: tuple[ColumnProfile, ...]
    target: TargetProfile
    images: tuple[ImageProfile, ...] = ()
    # What profiling code written by the LLM Profiler measured (short strings), when the llm policy ran it.
    findings: dict[str, str] = field(default_factory=dict)
    audio: tuple[AudioProfile, ...] = ()

    def columns_with_role(self, role: str) -> list[str]:
        return [c.name for c in self.columns if c.role == role]

    @property
    def roles(self) -> dict[str, list[str]]:
        return {role: self.columns_with_role(role) for role in ROLES if self.columns_with_role(role)}

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)

    def to_json(self) -> dict:
        data = asdict(self)
        data["roles"] = self.roles
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Profile":
        columns = tuple(ColumnProfile(**{**c, "examples": tuple(c["examples"])}) for c in data["columns"])
        images = tuple(ImageProfile(**i) for i in data.get("images", ()))
        audio = tuple(AudioProfile(**a) for a in data.get("audio", ()))
        return cls(data["n_train"], data["n_test"], data["memory_mb"], columns, TargetProfile(**data["target"]), images,
                   dict(data.get("findings") or {}), audio)


def profile_frames(train: pd.DataFrame, test: pd.DataFrame, summary: TaskSummary, root: Path | None = None) -> Profile:
    memory = float(train.memory_usage(deep=True).sum() + test.memory_usage(deep=True).sum()) / 2**20
    columns = []
    for name in summary.feature_columns:
        columns.append(profile_column(train[name], test[name], root))
    if summary.id_column and summary.id_column in train.columns:
        columns.append(profile_column(train[summary.id_column], test[summary.id_column], root, forced_role="id"))
    target = profile_target(train[summary.target], summary.problem_type)
    images = tuple(profile_images(source, train, test, root) for source in summary.images) if root else ()
    audio = tuple(profile_audio(source, train, test, root) for source in summary.audio) if root else ()
    return Profile(len(train), len(test), round(memory, 2), tuple(columns), target, images, audio=audio)


def _sampled_paths(source, train: pd.DataFrame, test: pd.DataFrame, root: Path, sample: int) -> list[Path]:
    """A seeded sample of the files a source names, half from each split."""
    paths = []
    for frame, pattern in ((train, source.train_pattern), (test, source.test_pattern)):
        values = frame[source.column].dropna().astype(str)
        values = values.sample(min(len(values), sample // 2), random_state=0) if len(values) else values
        paths += [Path(p) for p in media_paths(str(root), pattern, values.tolist()) if p]
    return paths


def profile_audio(source, train: pd.DataFrame, test: pd.DataFrame, root: Path, sample: int = 200) -> AudioProfile:
    """Read the headers of a seeded sample of the clips (both splits): rates, channels, durations, unreadable files."""
    from iml_ray.task.media import AudioError, audio_facts

    facts, bad = [], 0
    for path in _sampled_paths(source, train, test, root, sample):
        try:
            facts.append(audio_facts(path))
        except AudioError:
            bad += 1
    rates = [f[0] for f in facts] or [0]
    seconds = sorted(f[2] for f in facts) or [0.0]
    return AudioProfile(source.name, source.column, len(facts) + bad, bad, min(rates), max(rates),
                        max((f[1] for f in facts), default=0), seconds[0], seconds[len(seconds) // 2], seconds[-1])


def profile_images(source, train: pd.DataFrame, test: pd.DataFrame, root: Path, sample: int = 200) -> ImageProfile:
    """Open a seeded sample of the images (both splits): sizes, colour modes, unreadable files."""
    from PIL import Image

    paths = _sampled_paths(source, train, test, root, sample)
    widths, heights, modes, bad = [], [], {}, 0
    for path in paths:
        try:
            with Image.open(path) as image:
                widths.append(image.width)
                heights.append(image.height)
                modes[image.mode] = modes.get(image.mode, 0) + 1
        except Exception:
            bad += 1
    return ImageProfile(source.name, source.column, len(paths), bad, min(widths, default=0), max(widths, default=0),
                        min(heights, default=0), max(heights, default=0), modes)


@dataclass(frozen=True)
class ColumnFacts:
    """What the role of a column is decided on: measured on the whole column (profile_column) or chunk by chunk
    (profile_stream.py). One decision function for both keeps their answers the same."""

    n_rows: int                       # rows of train, missing values included
    n_unique: int                     # distinct non-missing values
    kind: Literal["bool", "numeric", "datetime", "text"]
    integer: bool = False             # an integer dtype (no missing values)
    is_sequence: bool = False         # the values are n distinct consecutive integers
    numeric: dict = field(default_factory=dict)      # mean/std/min/max of a numeric column
    sample: pd.Series | None = None   # up to SAMPLE_SIZE values of a text column, as strings
    parsed: dict = field(default_factory=dict)       # mean/std/min/max of a text column's values that parse as numbers
    top: dict = field(default_factory=dict)          # its most frequent values (text or bool)
    estimated: bool = False           # n_unique is an estimate (past the exact count's cap)


def profile_column(train_col: pd.Series, test_col: pd.Series, root: Path | None = None,
                   forced_role: str | None = None) -> ColumnProfile:
    values = train_col.dropna()
    n = max(len(train_col), 1)
    n_unique = int(values.nunique())
    examples = tuple(str(v)[:80] for v in values.drop_duplicates().head(3))
    return column_profile(str(train_col.name), str(train_col.dtype), _facts(values, n_unique, n),
                          float(train_col.isna().mean()), float(test_col.isna().mean()) if len(test_col) else 0.0,
                          examples, root, forced_role)


def column_profile(name: str, dtype: str, facts: ColumnFacts, missing_frac: float, missing_frac_test: float,
                   examples: tuple[str, ...], root: Path | None = None, forced_role: str | None = None) -> ColumnProfile:
    n = max(facts.n_rows, 1)
    base = dict(name=name, dtype=dtype, missing_frac=round(missing_frac, 4), missing_frac_test=round(missing_frac_test, 4),
                n_unique=facts.n_unique, unique_frac=round(facts.n_unique / n, 4), examples=examples)
    role, why, extra = infer_role(facts, root)
    if forced_role:
        role, why = forced_role, "the task's id column"
    if facts.estimated:
        why += " (distinct values estimated)"
    return ColumnProfile(role=role, why=why, **base, **extra)


def _facts(values: pd.Series, n_unique: int, n_rows: int) -> ColumnFacts:
    import pandas as pd
    if pd.api.types.is_bool_dtype(values):
        return ColumnFacts(n_rows, n_unique, "bool", top=_top(values))
    if pd.api.types.is_numeric_dtype(values):
        integer = pd.api.types.is_integer_dtype(values)
        return ColumnFacts(n_rows, n_unique, "numeric", integer=integer,
                           is_sequence=integer and n_unique == n_rows and _is_sequence(values), numeric=_moments(values))
    if pd.api.types.is_datetime64_any_dtype(values):
        return ColumnFacts(n_rows, n_unique, "datetime")
    text = values.astype(str)
    sample = text.sample(min(len(text), SAMPLE_SIZE), random_state=0) if len(text) > SAMPLE_SIZE else text
    return ColumnFacts(n_rows, n_unique, "text", sample=sample, parsed=_moments(pd.to_numeric(text, errors="coerce")),
                       top=_top(values))


def infer_role(facts: ColumnFacts, root: Path | None) -> tuple[str, str, dict[str, Any]]:
    import pandas as pd
    n_unique, n_rows = facts.n_unique, facts.n_rows
    if n_unique <= 1:
        return "constant", "one value (or none) in train", {}
    if facts.kind == "bool":
        return "categorical", "boolean", {"top_values": facts.top}
    if facts.kind == "numeric":
        stats = _rounded(facts.numeric)
        if facts.integer and facts.is_sequence:
            return "id", "unique consecutive integers, one per row", stats
        return "numeric", "numeric dtype", stats
    if facts.kind == "datetime":
        return "datetime", "datetime dtype", {}

    sample = facts.sample
    numeric = pd.to_numeric(sample, errors="coerce")
    markers = sorted(set(sample[numeric.isna()]))
    # Numbers with a few placeholder tokens ('?', 'NA', '-') are numbers with gaps.
    if numeric.notna().mean() >= 0.95 or (numeric.notna().mean() >= 0.5 and len(markers) <= 3):
        why = "strings that parse as numbers" + (f" (missing marked as {', '.join(map(repr, markers))})" if markers else "")
        return "numeric", why, _rounded(facts.parsed)
    if sample.str.match(DATE_LIKE).mean() >= 0.9:
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)
        if parsed.notna().mean() >= 0.9:
            return "datetime", "strings that parse as dates", {}
    lengths = sample.str.len()
    words = sample.str.count(r"\S+")
    text_stats = {"mean_length": round(float(lengths.mean()), 1), "mean_words": round(float(words.mean()), 2)}
    if sample.str.contains(FILE_SUFFIX).mean() >= 0.9:
        exists = root is not None and any((root / v).exists() for v in sample.head(20))
        return "path", "file names" + (" that exist in the task directory" if exists else ""), text_stats
    unique_frac = n_unique / n_rows
    if text_stats["mean_words"] >= 4 and text_stats["mean_length"] >= 20 and unique_frac >= 0.3:
        return "text", f"free text (about {text_stats['mean_words']:.0f} words, {unique_frac:.0%} unique)", text_stats
    if unique_frac >= 0.95 and text_stats["mean_words"] <= 1.01:
        return "id", f"single-token strings, {unique_frac:.0%} unique (an identifier)", text_stats
    return "categorical", f"{n_unique} distinct strings", {**text_stats, "top_values": facts.top}


def _moments(values: pd.Series) -> dict[str, float]:
    import numpy as np
    import pandas as pd
    values = pd.to_numeric(values, errors="coerce").astype("float64")
    values = values[np.isfinite(values)]
    if values.empty:
        return {}
    return {"mean": values.mean(), "std": values.std(), "min": values.min(), "max": values.max()}


def _rounded(stats: dict[str, float]) -> dict[str, Any]:
    return {k: round_or_none(v) for k, v in stats.items()}


def _is_sequence(values: pd.Series) -> bool:
    import numpy as np
    ordered = np.sort(values.to_numpy())
    return bool(len(ordered) > 1 and (np.diff(ordered) == 1).all())


def _top(values: pd.Series, k: int = 5) -> dict[str, int]:
    counts = values.astype(str).value_counts().head(k)
    return {str(key): int(v) for key, v in counts.items()}


def profile_target(y: pd.Series, problem_type: str) -> TargetProfile:
    import pandas as pd
    n_missing = int(y.isna().sum())
    y = y.dropna()
    if problem_type == "regression":
        values = pd.to_numeric(y, errors="coerce").astype("float64").dropna()
        return TargetProfile(str(y.name), problem_type, n_missing, mean=round_or_none(values.mean()),
                             std=round_or_none(values.std()), min=round_or_none(values.min()),
                             max=round_or_none(values.max()), skew=round_or_none(values.skew()))
    counts = y.astype(str).value_counts()
    ratio = float(counts.max() / counts.min()) if counts.min() > 0 else None
    return TargetProfile(str(y.name), problem_type, n_missing,
                         class_counts={str(k): int(v) for k, v in counts.items()},
                         imbalance_ratio=None if ratio is None else round(ratio, 3))


def round_or_none(value: Any) -> float | None:
    import numpy as np
    value = float(value)
    return None if not np.isfinite(value) else round(value, 6)
