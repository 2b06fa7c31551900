"""The plain reference baseline iml-ray must beat, given the answer format.

    python benchmarks/baseline.py TASK_DIR --answers-json ANSWERS_JSON --out SUBMISSION_CSV

Tabular: default HistGradientBoosting, string columns ordinal-encoded and
declared categorical (categories unseen in training become missing). A task
with a long free-text column: default TF-IDF + LogisticRegression(max_iter=1000)
(Ridge for a regression) on that text alone. An image task (the tables hold only
the id, each row's picture is `images/<id>.png`): LogisticRegression(max_iter=1000)
(Ridge for a regression) on the raw grey pixels scaled to [0, 1].
random_state=0 everywhere. The baseline is told the metric and submission
format (the answers JSON) and writes exactly that format. Layouts of real
competitions: JSON tables are read with pandas; several targets get one model
each; a forecast gets the seasonal naive forecast (each series' value a season
back); passthrough columns are copied from the test rows; zipped images named
by their class (train.zip: `<class>.<n>.png`) get the pixel model. Audio clips
named by a column (`train_audio/<file>`): each clip's 64-band log-mel
spectrogram (scipy's STFT, 32 ms windows), its mean and standard deviation per
band, standardised, into LogisticRegression(max_iter=1000).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OrdinalEncoder

log = logging.getLogger("baseline")
SEED = 0
TEXT_MIN_MEAN_LENGTH = 50
IMAGE_DIR = "images"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# HistGradientBoosting refuses categorical features with more categories than
# this (max_bins); wider string columns go in as plain ordinal codes.
MAX_CATEGORIES = 255


def is_string_column(column: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def text_column(features: pd.DataFrame) -> str | None:
    """The longest string column when its mean length says free text, else None."""
    lengths = {name: features[name].dropna().astype(str).str.len().mean()
               for name in features.columns if is_string_column(features[name])}
    lengths = {name: length for name, length in lengths.items() if length > TEXT_MIN_MEAN_LENGTH}
    return max(lengths, key=lengths.get) if lengths else None


def text_model(regression: bool) -> Pipeline:
    head = Ridge(random_state=SEED) if regression else LogisticRegression(max_iter=1000, random_state=SEED)
    return make_pipeline(TfidfVectorizer(), head)


def tabular_model(features: pd.DataFrame, regression: bool) -> Pipeline:
    strings = [name for name in features.columns if is_string_column(features[name])]
    encoder = ColumnTransformer(
        [("strings", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                    encoded_missing_value=np.nan), strings)],
        remainder="passthrough", verbose_feature_names_out=False)
    # The encoder puts the string columns first, in this order.
    categorical = [i for i, name in enumerate(strings) if features[name].nunique() <= MAX_CATEGORIES]
    head_class = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    head = head_class(random_state=SEED, categorical_features=categorical or None)
    return make_pipeline(encoder, head)


def strings_as_str(features: pd.DataFrame) -> pd.DataFrame:
    """String columns as Python str (missing stays missing), so the encoder never sees mixed types."""
    strings = [name for name in features.columns if is_string_column(features[name])]
    out = features.copy()
    for name in strings:
        out[name] = features[name].map(lambda v: v if pd.isna(v) else str(v)).astype(object)
    return out


def fit_and_predict(train: pd.DataFrame, test: pd.DataFrame, features: list[str], target: str,
                    regression: bool) -> tuple[BaseEstimator, np.ndarray]:
    """The fitted model and its test predictions: values for a regression, class probabilities otherwise."""
    text = text_column(train[features])
    if text:
        log.info("text task: TF-IDF + %s on column %r", "Ridge" if regression else "LogisticRegression", text)
        model, x_train, x_test = text_model(regression), train[text].fillna(""), test[text].fillna("")
    else:
        log.info("tabular task: HistGradientBoosting on %d columns", len(features))
        model = tabular_model(train[features], regression)
        x_train, x_test = strings_as_str(train[features]), strings_as_str(test[features])
    model.fit(x_train, train[target])
    return model, model.predict(x_test) if regression else model.predict_proba(x_test)


def to_submission(ids: pd.Series | None, predictions: np.ndarray, model: BaseEstimator, meta: dict) -> pd.DataFrame:
    fmt = meta["submission_format"]
    columns = fmt["target_columns"]
    submission = pd.DataFrame({meta["id_column"]: ids}) if ids is not None else pd.DataFrame(index=range(len(predictions)))
    if fmt["kind"] == "value":
        # RMSLE is undefined below -1; a price model can dip below 0 at the edges.
        clip = meta["metric"] in ("rmsle", "mean_rmsle")
        submission[columns[0]] = np.clip(predictions, 0, None) if clip else predictions
        return submission
    # Class values read back from CSV and from JSON may differ in type (1 vs "1"): match by text.
    position = {str(c): i for i, c in enumerate(model.classes_)}
    if fmt["kind"] == "label":
        submission[columns[0]] = model.classes_[predictions.argmax(axis=1)]
    elif fmt["kind"] == "probability":
        submission[columns[0]] = predictions[:, position[str(fmt["positive_class"])]]
    else:
        for column, cls in zip(columns, fmt["classes"]):
            submission[column] = predictions[:, position[str(cls)]]
    return submission


def image_file(task_dir: Path, row_id) -> Path:
    for suffix in IMAGE_SUFFIXES:
        path = task_dir / IMAGE_DIR / f"{row_id}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no picture for id {row_id!r} in {task_dir / IMAGE_DIR}")


def pixels(task_dir: Path, ids: pd.Series, size: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """One row of grey pixels in [0, 1] per id, and the (width, height) every picture was resized to
    (the first one's size unless given)."""
    from PIL import Image

    rows = []
    for row_id in ids:
        with Image.open(image_file(task_dir, row_id)) as image:
            image = image.convert("L")
            size = size or image.size
            rows.append(np.asarray(image.resize(size) if image.size != size else image, dtype=np.float32).ravel())
    return np.stack(rows) / 255.0, size


def fit_and_predict_images(task_dir: Path, train: pd.DataFrame, test: pd.DataFrame, id_column: str, target: str,
                           regression: bool) -> tuple[BaseEstimator, np.ndarray]:
    x_train, size = pixels(task_dir, train[id_column])
    x_test, _ = pixels(task_dir, test[id_column], size)
    log.info("image task: %s on %d pixels", "Ridge" if regression else "LogisticRegression", x_train.shape[1])
    model = Ridge(random_state=SEED) if regression else LogisticRegression(max_iter=1000, random_state=SEED)
    model.fit(x_train, train[target])
    return model, model.predict(x_test) if regression else model.predict_proba(x_test)


def read_table(task_dir: Path, stem: str) -> pd.DataFrame:
    """The task's train or test table in whichever format it ships (csv, json records, json lines, parquet)."""
    for name in (f"{stem}.csv", f"{stem}.json", f"{stem}.jsonl", f"{stem}.parquet"):
        path = task_dir / name
        if not path.is_file():
            continue
        if name.endswith(".csv"):
            return pd.read_csv(path, low_memory=False)
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        return pd.read_json(path, lines=name.endswith(".jsonl"))
    raise FileNotFoundError(f"no {stem} table in {task_dir}")


def zipped_images(task_dir: Path, scratch: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """dogs-vs-cats' layout: train.zip of <class>.<n>.png, test.zip of <id>.png, unpacked into scratch."""
    frames = {}
    for split in ("train", "test"):
        with zipfile.ZipFile(task_dir / f"{split}.zip") as archive:
            archive.extractall(scratch / split)
        paths = sorted(p for p in (scratch / split).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        rows = [{"path": p, "id": p.stem, "label": p.name.split(".")[0]} for p in paths]
        frames[split] = pd.DataFrame(rows)
    return frames["train"], frames["test"]


def fit_and_predict_zipped(task_dir: Path, meta: dict) -> pd.DataFrame:
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        train, test = zipped_images(task_dir, Path(scratch))

        def grey(paths):
            return np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float32).ravel() for p in paths]) / 255.0

        x_train, x_test = grey(train["path"]), grey(test["path"])
    log.info("zipped image task: LogisticRegression on %d pixels", x_train.shape[1])
    model = LogisticRegression(max_iter=1000, random_state=SEED).fit(x_train, train["label"])
    ids = test["id"].astype(int) if test["id"].str.isdigit().all() else test["id"]
    return to_submission(ids, model.predict_proba(x_test), model, meta)


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
AUDIO_FOLDERS = {"train": ("train_audio", "audio", "train", ""), "test": ("test_audio", "audio", "test", "")}


def audio_column(task_dir: Path, train: pd.DataFrame, test: pd.DataFrame) -> tuple[str, dict[str, str]] | None:
    """The column naming audio clips, and the folder they are in per split."""
    for column in test.columns:
        if not test[column].astype(str).str.lower().str.endswith(AUDIO_SUFFIXES).all():
            continue
        first = {"train": str(train[column].iloc[0]), "test": str(test[column].iloc[0])}
        folders = {split: next((f for f in AUDIO_FOLDERS[split] if (task_dir / f / first[split]).is_file()), None)
                   for split in ("train", "test")}
        return column, folders
    return None


def log_mel_summary(path: Path, mels: int = 64) -> np.ndarray:
    import soundfile
    from scipy.signal import stft

    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    _, _, spectrum = stft(audio.mean(axis=1), fs=rate, nperseg=int(0.032 * rate))
    power = np.abs(spectrum) ** 2
    bins = np.linspace(0, rate / 2, power.shape[0])
    mel = 2595 * np.log10(1 + bins / 700)
    edges = np.linspace(0, mel[-1], mels + 1)
    bands = np.stack([power[(mel >= lo) & (mel <= hi)].sum(axis=0) for lo, hi in zip(edges, edges[1:])])
    log_mel = np.log(bands + 1e-10)
    return np.concatenate([log_mel.mean(axis=1), log_mel.std(axis=1)])


def fit_and_predict_audio(task_dir: Path, train: pd.DataFrame, test: pd.DataFrame, column: str,
                          folders: dict[str, str], meta: dict) -> pd.DataFrame:
    from sklearn.preprocessing import StandardScaler

    def features(frame, split):
        folder = task_dir / (folders[split] or "")
        return np.stack([log_mel_summary(folder / name) for name in frame[column].astype(str)])

    log.info("audio task: log-mel mean and std per band + LogisticRegression")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=SEED))
    model.fit(features(train, "train"), train[meta["target"]])
    predictions = model.predict_proba(features(test, "test"))
    return to_submission(test[meta["id_column"]], predictions, model, meta)


def seasonal_naive(train: pd.DataFrame, test: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """A forecast's baseline: each series' value one season back (as many seasons as needed to reach train),
    else the series' mean, else the mean."""
    spec, target = meta["forecast"], meta["target"]
    time, keys, months = spec["time_column"], list(spec["series_keys"]), int(spec["season_months"])
    known = train.assign(**{time: pd.to_datetime(train[time])}).set_index(keys + [time])[target]
    dates = pd.to_datetime(test[time])
    values = np.full(len(test), np.nan)
    for seasons in range(1, 6):
        back = dates - pd.DateOffset(months=months * seasons)
        found = known.reindex(pd.MultiIndex.from_arrays([*(test[k] for k in keys), back])).to_numpy(dtype=float)
        values = np.where(np.isnan(values), found, values)
    means = train.groupby(keys)[target].mean()
    series_mean = means.reindex(pd.MultiIndex.from_frame(test[keys]) if len(keys) > 1 else test[keys[0]]).to_numpy()
    values = np.where(np.isnan(values), series_mean, values)
    values = np.where(np.isnan(values), train[target].mean(), values)
    return pd.DataFrame({meta["id_column"]: test[meta["id_column"]], target: values})


def run_baseline(task_dir: Path, meta: dict) -> pd.DataFrame:
    if (task_dir / "train.zip").is_file() and not (task_dir / "train.csv").is_file():
        return fit_and_predict_zipped(task_dir, meta)
    train, test = read_table(task_dir, "train"), read_table(task_dir, "test")
    if meta.get("forecast"):
        log.info("forecast: seasonal naive")
        return seasonal_naive(train, test, meta)
    id_column = meta["id_column"]
    targets = meta.get("targets") or [meta["target"]]
    regression = meta["submission_format"]["kind"] == "value"
    features = [name for name in test.columns if name != id_column]
    audio = audio_column(task_dir, train, test[features])
    if audio is not None:
        return fit_and_predict_audio(task_dir, train, test, *audio, meta)
    if not features and (task_dir / IMAGE_DIR).is_dir():
        model, predictions = fit_and_predict_images(task_dir, train, test, id_column, targets[0], regression)
        return to_submission(test[id_column], predictions, model, meta)
    if len(targets) > 1:
        # Several targets: one model per target column, as the baseline would be on each alone.
        answer = pd.DataFrame({id_column: test[id_column]})
        for target in targets:
            labelled = train[train[target].notna()]
            one = {**meta, "submission_format": {**meta["submission_format"], "target_columns": [target]}}
            model, predictions = fit_and_predict(labelled, test, features, target, regression)
            answer[target] = to_submission(test[id_column], predictions, model, one)[target]
        return answer
    model, predictions = fit_and_predict(train, test, features, targets[0], regression)
    answer = to_submission(test[id_column] if id_column else None, predictions, model, meta)
    columns = meta.get("columns") or list(answer.columns)
    for column in columns:
        if column not in answer.columns:            # passthrough columns: copied from the test row
            answer[column] = test[column].to_numpy()
    return answer[columns]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task_dir", type=Path)
    parser.add_argument("--answers-json", type=Path, required=True, help="metric and submission format of the task")
    parser.add_argument("--out", type=Path, required=True, help="where to write the submission CSV")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    meta = json.loads(args.answers_json.read_text())
    started = time.monotonic()
    submission = run_baseline(args.task_dir, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    submission.to_csv(args.out, index=False)
    log.info("wrote %s (%d rows) in %.1f s", args.out, len(submission), time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
