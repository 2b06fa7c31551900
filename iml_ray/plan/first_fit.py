"""The first fit's cost model: whether a track's first candidate must train on a sample to surely finish.

A verified candidate is where a track starts (plan/improvements.py grows it from its measured time); this only
decides the first fit, from the columns the prep makes, the classes, and the fits a validated run makes. The
boosted families' time limits are here too: the first round's, and what a round's fits of a time-limited family
take in multiples of its limit (limited_fits), which the improvement steps size their limits by.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from iml_ray.blueprint import PrepPlan, TrackPlan

if TYPE_CHECKING:
    from iml_ray.plan.repairs import Plans

# A rough cost model of one traditional candidate run on this hardware class,
# calibrated on the example tasks (2 threads): fixed start-up, then per cell of
# the tabular matrix and per row of each text column, for the two fits a
# validated run makes. Only used to decide whether to train on a sample.
STARTUP_S = 8.0
SECONDS_PER_CELL = 3e-6
# Vectorising and fitting text grows with its characters: 2.1e-6 s per character of a row's text per fit
# (measured: 1,701 BBC articles of 2,245 characters). A column of unknown length counts as 1,900 characters,
# the 4 ms a text row was charged before lengths were known.
SECONDS_PER_TEXT_CHAR = 2.1e-6
DEFAULT_TEXT_CHARS = 1900.0
SECONDS_PER_AUDIO_SECOND = 4e-3  # decoding and a log-mel spectrogram, per second of clip at 16 kHz
BUDGET_SHARE = 0.35          # of the time budget the first attempt should need at most
# The first fit's sample is never smaller (a track with time left grows it: plan/improvements.py).
MIN_SAMPLE_ROWS = 500
# What a first round's LightGBM fits may take together: each pipeline fit (two, or k under k folds) makes an
# early-stopped fit, stopped at the limit this gives, and a refit on 1/0.85 the rows for the rounds it reached
# (about 1.4 times the limit). The limit ends boosting that is still improving slowly, which the cost model above
# cannot foresee: on 985 rows of 16x16-pixel digits (ten classes) the validation fit's LightGBM stopped at 97
# rounds in 4.8 s and the final fit's at 735 rounds in 25.5 s, and the round ran out of its 39.5 s. A round that
# improves on the first one lets a fit its limit stopped train longer (plan/improvements.py: boosting_time).
LIGHTGBM_SHARE = 0.25
FIT_AND_REFIT = 2.4
MIN_BOOSTED_LIMIT_S = 2.0       # a boosted fit's time limit is never shorter (a small table's fits end well before it)


def estimated_seconds(prep: PrepPlan, n_rows: int, num_threads: int, n_classes: int = 1, fits: int = 2,
                      text_chars: dict[str, float] | None = None) -> float:
    """fits: the pipeline's fits (the validation fit and the final one; k under k-fold validation)."""
    width = (len(prep.numeric) + len(prep.numeric_coerce) + len(prep.categorical) + 7 * len(prep.datetime)
             + _media_width(prep))
    # LightGBM grows k trees a round for k classes, at twice the learning rate (plan_track): about k/2 the cost.
    trees = n_classes / 2 if n_classes > 2 else 1.0
    per_fit = (SECONDS_PER_CELL * n_rows * max(width, 1) * 2 * trees / max(num_threads, 1)
               + SECONDS_PER_TEXT_CHAR * n_rows * sum((text_chars or {}).get(c) or DEFAULT_TEXT_CHARS for c in prep.text))
    # Clips are decoded once per process (the pipeline's two fits share them).
    decoding = SECONDS_PER_AUDIO_SECOND * n_rows * prep.audio_seconds * len(prep.audio)
    return STARTUP_S + fits * per_fit + decoding


def _media_width(prep: PrepPlan) -> int:
    """The dense columns images, clips and encoders add: pixels and per-image statistics, an encoder's vector,
    the prep template's log-mel statistics (5 per band, 20 MFCCs' mean and std, loudness, length, unreadable)."""
    width = 0
    if prep.audio and prep.audio_mode == "stats":
        width += len(prep.audio) * (5 * prep.audio_mels + 2 * min(20, prep.audio_mels) + 4)
    if prep.image and prep.image_mode == "pixels":
        side = prep.image_size[0] * prep.image_size[1] * prep.image_channels
        width += len(prep.image) * (side + (4 * prep.image_channels + 3 if prep.image_stats else 0))
    elif prep.image:
        width += len(prep.image) * int(prep.image_encoder.get("dim") or 1280)
    if prep.text and prep.text_mode == "pretrained":
        width += len(prep.text) * int(prep.text_encoder.get("dim") or 384)
    return width


def sample_for_budget(prep: PrepPlan, n_rows: int, num_threads: int, time_budget_s: float,
                      n_targets: int = 1, n_classes: int = 1, fits: int = 2,
                      text_chars: dict[str, float] | None = None) -> tuple[int | None, str | None]:
    """A row cap for fitting when all rows would not fit the budget (validation still uses every held-out row).

    Several targets are fitted one after another: each costs what one target would."""
    one_target = estimated_seconds(prep, n_rows, num_threads, n_classes, fits, text_chars) - STARTUP_S
    expected = STARTUP_S + one_target * max(1, n_targets)
    allowed = BUDGET_SHARE * time_budget_s
    if expected <= allowed or n_rows <= MIN_SAMPLE_ROWS:
        return None, None
    rows = int(n_rows * max(allowed - STARTUP_S, 1.0) / (expected - STARTUP_S))
    rows = max(MIN_SAMPLE_ROWS, min(rows, n_rows))
    if rows >= n_rows:
        return None, None
    targets = f" for {n_targets} targets" if n_targets > 1 else ""
    return rows, (f"fit on a seeded sample of {rows} of {n_rows} rows: all rows would take about {expected:.0f} s"
                  f"{targets}, more than {BUDGET_SHARE:.0%} of the {time_budget_s:.0f} s budget")


def lightgbm_time_limit(time_budget_s: float, fits: int) -> float:
    """The first round's limit on one early-stopped LightGBM fit, for a pipeline that makes `fits` fits."""
    return round(max(MIN_BOOSTED_LIMIT_S, LIGHTGBM_SHARE * time_budget_s / (max(1, fits) * FIT_AND_REFIT)), 1)


def limited_fits(plans: Plans) -> float:
    """A time-limited family's round, in multiples of its limit: per pipeline fit, the early-stopped fit and the
    refit; bagged, k early-stopped fits per shuffle and no refit; after one holdout the final fit only refits."""
    folds = plans.track.bagging_folds
    if folds:
        return plans.train.pipeline_fits * folds * plans.track.bagging_repeats
    if not plans.train.holdout_folds:
        # The final refit: the validation refit's (FIT_AND_REFIT - 1), its rounds and rows grown by the holdout's.
        return FIT_AND_REFIT + (FIT_AND_REFIT - 1.0) / (1.0 - plans.train.holdout_fraction) ** 2
    return plans.train.pipeline_fits * FIT_AND_REFIT


def scaled_lightgbm_limit(track: TrackPlan, factor: float) -> TrackPlan:
    """The plan with its LightGBM time limit (if any) scaled by `factor`."""
    limit = track.lightgbm.get("time_limit_s")
    if not limit:
        return track
    return track.replace(lightgbm={**track.lightgbm, "time_limit_s": round(float(limit) * factor, 1)})
