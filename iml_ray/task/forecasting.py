"""Time-series forecasting: train holds dates (and series keys), test the dates that follow.

Part of the rules TaskAnalyzer. A regression task is a forecast when a column of dates
in both tables puts (almost) every test date after the last train date. Then the holdout
is the last stretch of train's dates, never a random split (scoring/evaluate.py); the
generated pipeline adds calendar, seasonal-lag and series-level features computed only
from rows before each row's horizon (codegen/templates/forecast.py.tmpl); and the
fallback is the seasonal naive forecast, not the target's mean.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# name of a frequency → (pandas offset keyword and size of one step, steps in one season)
FREQUENCIES = {"day": ({"days": 1}, 7), "week": ({"weeks": 1}, 52), "month": ({"months": 1}, 12),
               "quarter": ({"months": 3}, 4), "year": ({"years": 1}, 1)}
ADVERB = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly", "year": "yearly"}
_TIME_NAME = re.compile(r"(date|time|day|week|month|period|timestamp|^ds$|_dt$|^dt$)", re.IGNORECASE)
# At least this share of test dates after the last train date makes the task a forecast.
MIN_FUTURE_SHARE = 0.95
MAX_KEYS = 3


@dataclass(frozen=True)
class Forecast:
    time_column: str
    series_keys: tuple[str, ...]
    frequency: str          # a key of FREQUENCIES
    season: int             # steps in one season (7 for days, 12 for months)
    horizon: int            # steps from the last train date to the last test date

    def to_json(self) -> dict:
        data = asdict(self)
        data["series_keys"] = list(self.series_keys)
        data["step"] = FREQUENCIES[self.frequency][0]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Forecast":
        return cls(data["time_column"], tuple(data["series_keys"]), data["frequency"], int(data["season"]),
                   int(data["horizon"]))


def as_dates(values: pd.Series) -> pd.Series | None:
    """The column as datetimes when (almost) every present value is one, else None. Numbers are not dates."""
    import pandas as pd
    present = values.dropna()
    if present.empty or pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
        return None
    if pd.api.types.is_datetime64_any_dtype(present):
        return pd.to_datetime(values, utc=True).dt.tz_localize(None)
    text = present.astype(str)
    if not text.str.contains(r"\d").all():
        return None
    # utc=True: a zone on some values (20120618192155Z) and none on others would stop the parse.
    parsed = pd.to_datetime(values.astype("string"), errors="coerce", format="mixed", utc=True).dt.tz_localize(None)
    return parsed if parsed[values.notna()].notna().mean() >= 0.95 else None


def find_forecast(files, features: tuple[str, ...]) -> tuple[Forecast | None, str]:
    """(Forecast or None, why) for a task's files (task.files.TaskFiles): reads the candidate time and key
    columns of every row, nothing else."""
    import pandas as pd

    from iml_ray.task.tables import read_columns

    head = files.read("test", nrows=200)
    timely = [c for c in features if as_dates(head[c]) is not None]
    if not timely:
        return None, ""
    wanted = list(features) if len(features) <= 12 else timely + [
        c for c in features if c not in timely and not pd.api.types.is_float_dtype(head[c])][:12]
    train, test = read_columns(files.train, wanted), read_columns(files.test, wanted)
    return detect_forecast(train, test, tuple(wanted), "")


def detect_forecast(train: pd.DataFrame, test: pd.DataFrame, features: tuple[str, ...],
                    target: str) -> tuple[Forecast | None, str]:
    """The Forecast a regression task asks for, or None; and why, for the task summary.

    `train` and `test` hold the feature columns of every row (the time column and the key candidates)."""
    for column in sorted(features, key=lambda c: not _TIME_NAME.search(c)):
        train_dates, test_dates = as_dates(train[column]), as_dates(test[column])
        if train_dates is None or test_dates is None:
            continue
        last = train_dates.max()
        future = float((test_dates.dropna() > last).mean()) if test_dates.notna().any() else 0.0
        if future < MIN_FUTURE_SHARE:
            continue
        keys = _series_keys(train, train_dates, [c for c in features if c != column])
        frequency = _frequency(train_dates)
        offset, season = FREQUENCIES[frequency]
        horizon = _steps(last, test_dates.max(), frequency)
        why = (f"inferred: forecasting: {future:.0%} of test's '{column}' dates follow train's last "
               f"({last.date()}); {ADVERB[frequency]}, {horizon} step(s) ahead, season {season}; series "
               f"{list(keys) if keys else 'none (one series)'}")
        return Forecast(column, keys, frequency, season, max(1, horizon)), why
    return None, ""


def _series_keys(train: pd.DataFrame, dates: pd.Series, candidates: list[str]) -> tuple[str, ...]:
    """The fewest low-cardinality columns that make (keys, date) name one row: the series."""
    import pandas as pd
    n = len(train)
    usable = [c for c in candidates if not pd.api.types.is_float_dtype(train[c])
              and 1 < train[c].nunique() <= max(50, n // 20)]
    keys: list[str] = []

    def repeats(columns: list[str]) -> float:
        frame = pd.DataFrame({"__date": dates, **{c: train[c].astype(str) for c in columns}})
        return float(frame.duplicated().mean())

    current = repeats(keys)
    while current > 0.01 and len(keys) < MAX_KEYS and usable:
        best = min(usable, key=lambda c: repeats(keys + [c]))
        after = repeats(keys + [best])
        if after >= current:
            break
        keys.append(best)
        usable.remove(best)
        current = after
    return tuple(keys)


def _frequency(dates: pd.Series) -> str:
    import numpy as np
    distinct = np.sort(dates.dropna().unique())
    if len(distinct) < 2:
        return "day"
    days = float(np.median(np.diff(distinct).astype("timedelta64[s]").astype(float))) / 86400
    for name, low, high in (("day", 0, 1.5), ("week", 5.5, 8.5), ("month", 26, 33), ("quarter", 85, 95),
                            ("year", 360, 370)):
        if low <= days <= high:
            return name
    return "day"


def _steps(start: pd.Timestamp, end: pd.Timestamp, frequency: str) -> int:
    import numpy as np
    if frequency in ("month", "quarter", "year"):
        months = (end.year - start.year) * 12 + (end.month - start.month)
        return max(1, months // {"month": 1, "quarter": 3, "year": 12}[frequency])
    days = (end - start).days
    return max(1, int(np.ceil(days / (7 if frequency == "week" else 1))))
