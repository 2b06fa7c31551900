"""A round that scores better is kept only when its gain stands out of the validation rows' noise (paired bootstrap)."""
from __future__ import annotations

import types

import numpy as np
import pandas as pd
from helpers import binary_frames, write_task

from iml_ray.metrics.predictions import score_predictions
from iml_ray.scoring.evaluate import read_target
from iml_ray.scoring.noise import gain_deviation
from iml_ray.task.inference import analyze_task
from iml_ray.track.improve import NOISE_DEVIATIONS, _within_noise


def _task(tmp_path):
    train, test, sample = binary_frames(400, 20)
    sample["label"] = 0.5
    return analyze_task(write_task(tmp_path / "t", train, test, sample, "## Evaluation\nAUC"))


def _write(round_dir, rows, chance):
    (round_dir / "output").mkdir(parents=True)
    frame = pd.DataFrame({"__row__": rows, "label": chance})
    frame.to_csv(round_dir / "output" / "valid_predictions.csv", index=False)
    return frame


def _auc(summary, frame):
    truth = read_target(summary).iloc[frame["__row__"].to_numpy()].reset_index(drop=True)
    return score_predictions(summary.metric, truth, frame.reset_index(drop=True), summary.submission)


def test_a_gain_within_the_noise_of_the_validation_rows_is_not_kept_and_the_round_says_why(tmp_path):
    summary = _task(tmp_path)
    assert summary.metric == "auc"
    y = read_target(summary).to_numpy()
    rng = np.random.default_rng(1)
    rows = np.arange(len(y))
    signal = y + rng.normal(0, 1.0, len(y))
    best = _write(tmp_path / "round_1", rows, signal)
    # Another model as good on average, its rows shuffled the other way (char n-grams on drug reviews): the two
    # scores differ by chance, and the paired deviation is large against that difference.
    other = _write(tmp_path / "round_2", rows[::-1], (y + rng.normal(0, 1.0, len(y)))[::-1])
    deviation = gain_deviation(tmp_path / "round_2" / "output" / "valid_predictions.csv",
                               tmp_path / "round_1" / "output" / "valid_predictions.csv", summary)
    assert deviation is not None and 0.01 < deviation < 0.1
    best_score, other_score = _auc(summary, best), _auc(summary, other)
    assert abs(other_score - best_score) < 3 * deviation

    track = types.SimpleNamespace(job=types.SimpleNamespace(summary=summary))
    verified = types.SimpleNamespace(number=1, round_dir=tmp_path / "round_1", score=best_score)   # a Verified
    small = best_score + 0.5 * NOISE_DEVIATIONS * deviation
    why = _within_noise(track, tmp_path / "round_2", verified, "char_ngrams", small)
    assert why is not None and "within the validation rows' noise" in why
    # A gain several deviations wide is kept; so is any gain of a step that gives the same model more rows or time.
    assert _within_noise(track, tmp_path / "round_2", verified, "char_ngrams", best_score + 3 * deviation) is None
    assert _within_noise(track, tmp_path / "round_2", verified, "rows", small) is None


def test_a_clear_gain_has_a_small_paired_deviation_and_other_rows_have_none(tmp_path):
    summary = _task(tmp_path)
    y = read_target(summary).to_numpy()
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 1.0, len(y))
    rows = np.arange(len(y))
    best = _write(tmp_path / "a", rows, y + noise)
    better = _write(tmp_path / "b", rows, y + 0.5 * noise)      # the same errors, halved: better on nearly every resample
    deviation = gain_deviation(tmp_path / "b" / "output" / "valid_predictions.csv",
                               tmp_path / "a" / "output" / "valid_predictions.csv", summary)
    gain = _auc(summary, better) - _auc(summary, best)
    assert gain > 0.05 and gain > 3 * deviation
    # Predictions of other rows cannot be paired.
    _write(tmp_path / "c", rows[:200], (y + noise)[:200])
    assert gain_deviation(tmp_path / "c" / "output" / "valid_predictions.csv",
                          tmp_path / "a" / "output" / "valid_predictions.csv", summary) is None


def test_too_few_resamples_give_no_estimate(tmp_path):
    summary = _task(tmp_path)
    y = read_target(summary).to_numpy()
    rows = np.arange(len(y))
    _write(tmp_path / "a", rows, y + 0.3)
    _write(tmp_path / "b", rows, y * 0.5)
    assert gain_deviation(tmp_path / "b" / "output" / "valid_predictions.csv",
                          tmp_path / "a" / "output" / "valid_predictions.csv", summary, resamples=3) is None
