"""Load a task directory (MLE-bench layout): its files, its tables, its task.yaml.

A task is `description.md`, `train.csv`, `test.csv`, `sample_submission.csv` and
optional extra files, plus an optional `task.yaml` stating `target`,
`id_column`, `metric`, `problem_type` (and `positive_class`). What is not stated
is inferred by inference.py; the TaskSummary defined here records it.

An image task may have no tables at all: `train/<class>/<image>` and
`test/<image>` (a FolderLayout). Its tables are built from the folders by
read_split, the one way every part of the framework reads a task's rows.

Every problem with the input raises TaskError: one line of what is wrong, one of
what to do.
"""
from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from iml_ray.errors import TaskError
from iml_ray.metrics.submission import PROBLEM_TYPES, SubmissionFormat
from iml_ray.task.archives import media_archives
from iml_ray.task.class_folders import class_folder_layout
from iml_ray.task.forecasting import Forecast
from iml_ray.task.media import AudioSource, FolderLayout, ImageSource
from iml_ray.task.table_file import TABLE_SUFFIXES, read_table_file, zip_member
from iml_ray.task.unsupported import refuse, unsupported_output

log = logging.getLogger(__name__)

YAML_KEYS = {"target", "id_column", "metric", "problem_type", "positive_class"}
ID_NAME = re.compile(r"^(id|.*[_\s-]id|.*Id|.*ID|index|key|row_?id)$")


@dataclass(frozen=True)
class TaskFiles:
    """Where the parts of a task are. `root` holds the data (an MLE-bench `public/`)."""

    root: Path
    name: str
    train: Path
    test: Path
    sample_submission: Path | None
    description: Path | None
    task_yaml: Path | None
    extras: tuple[str, ...] = ()
    layout: FolderLayout | None = None    # train/<class>/ and test/ folders instead of tables
    # Splits shipped as zips of images or clips ({split: archive}): a run unpacks them (archives.py) and
    # analyses the unpacked copy.
    archives: dict[str, Path] = field(default_factory=dict)
    # The test rows come from these columns of `test` (the sample submission's ids when there is no test table).
    test_columns: tuple[str, ...] = ()

    def relative(self, path: Path | None) -> str | None:
        return None if path is None else str(path.relative_to(self.root))

    def read(self, split: str, nrows: int | None = None) -> pd.DataFrame:
        """The train or test table (built from the folders for a FolderLayout)."""
        return read_split(self.root, self.train if split == "train" else self.test, split, self.layout, nrows,
                          self.test_columns if split == "test" else ())


@dataclass(frozen=True)
class TaskSummary:
    """What the competition asks for: the TaskAnalyzer's answer."""

    name: str
    task_dir: str
    train_file: str
    test_file: str
    sample_submission_file: str | None
    target: str
    id_column: str | None
    problem_type: str
    metric: str
    submission: SubmissionFormat
    feature_columns: tuple[str, ...]
    dropped_columns: tuple[str, ...]
    n_train: int
    n_test: int
    # field -> how it was decided ("stated in task.yaml", "inferred: ...")
    decisions: dict[str, str] = field(default_factory=dict)
    description: str = ""
    images: tuple[ImageSource, ...] = ()     # images named by a column (a path, or the id)
    audio: tuple[AudioSource, ...] = ()      # audio clips named by a column
    layout: FolderLayout | None = None       # the tables are built from train/<class>/ and test/ folders
    # Several targets (multi-label, multi-target regression); `target` is the first. Empty: one target.
    targets: tuple[str, ...] = ()
    forecast: Forecast | None = None         # a time-series forecast: dates, series keys, season, horizon
    test_columns: tuple[str, ...] = ()       # test rows from these columns of test_file (the sample's ids)

    @property
    def media(self) -> tuple[ImageSource | AudioSource, ...]:
        """Every column of files (images, clips) the pipeline resolves into absolute paths."""
        return self.images + self.audio

    @property
    def all_targets(self) -> tuple[str, ...]:
        return self.targets or (self.target,)

    @property
    def unit_metric(self) -> str:
        """The metric each target's model is selected on: a column-wise metric's per-column metric."""
        from iml_ray.metrics.registry import get_metric

        return get_metric(self.metric).unit or self.metric

    @property
    def task_type(self) -> str:
        """What a reader calls the task: the problem type, or multi-label / multi-target regression."""
        if len(self.targets) > 1:
            return "multi-label" if self.problem_type == "binary" else "multi-target regression"
        if self.forecast is not None:
            return "forecasting"
        return self.problem_type

    def to_json(self) -> dict:
        data = asdict(self)
        data["submission"] = self.submission.to_json()
        data["feature_columns"] = list(self.feature_columns)
        data["dropped_columns"] = list(self.dropped_columns)
        data["images"] = [source.to_json() for source in self.images]
        data["audio"] = [source.to_json() for source in self.audio]
        data["layout"] = None if self.layout is None else self.layout.to_json()
        data["targets"] = list(self.targets)
        data["forecast"] = None if self.forecast is None else self.forecast.to_json()
        data["test_columns"] = list(self.test_columns)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "TaskSummary":
        data = dict(data)
        data["submission"] = SubmissionFormat.from_json(data["submission"])
        data["feature_columns"] = tuple(data["feature_columns"])
        data["dropped_columns"] = tuple(data["dropped_columns"])
        data["images"] = tuple(ImageSource.from_json(source) for source in data.get("images", ()))
        data["audio"] = tuple(AudioSource.from_json(source) for source in data.get("audio", ()))
        data["layout"] = FolderLayout.from_json(data["layout"]) if data.get("layout") else None
        data["targets"] = tuple(data.get("targets") or ())
        data["forecast"] = Forecast.from_json(data["forecast"]) if data.get("forecast") else None
        data["test_columns"] = tuple(data.get("test_columns") or ())
        return cls(**data)

    def read(self, split: str) -> pd.DataFrame:
        """The train or test table, as the generated pipeline reads it."""
        return read_split(Path(self.task_dir), self.train_file if split == "train" else self.test_file, split,
                          self.layout, columns=self.test_columns if split == "test" else ())

    @property
    def inferred(self) -> dict[str, str]:
        return {k: v for k, v in self.decisions.items() if not v.startswith("stated")}


# ---------------------------------------------------------------- locating files


def locate_task(path: str | Path) -> TaskFiles:
    """Find the data files of a task directory, or say clearly what is missing."""
    given = Path(path).expanduser()
    if not given.exists():
        raise TaskError(f"task directory {given} does not exist", "Check the path (it should hold train.csv and test.csv).")
    if not given.is_dir():
        raise TaskError(f"{given} is a file, not a task directory", "Pass the directory that holds train.csv and test.csv.")
    root = given.resolve()
    # MLE-bench prepared competitions keep what a participant sees in public/.
    if _find_table(root, "train") is None and not (root / "train").is_dir() and (root / "public").is_dir():
        root = root / "public"
    name = root.parent.name if root.name == "public" else root.name
    sample = find_sample_submission(root)
    description = next((p for p in (root / "description.md", root / "description.txt", root / "README.md") if p.is_file()), None)
    task_yaml = next((p for p in (root / "task.yaml", root / "task.yml") if p.is_file()), None)
    sample_columns = [] if sample is None else [str(c) for c in read_table(sample, nrows=1).columns]
    refuse(unsupported_output(root, sample_columns))
    train = _find_table(root, "train") or _labels_table(root)
    layout = None
    archives = media_archives(root)
    if archives:
        return TaskFiles(root, name, archives.get("train", root / "train"), archives.get("test", root / "test"),
                         sample, description, task_yaml, _extras(root, sample, description, task_yaml,
                                                                 *archives.values()), None, archives)
    if train is None and (root / "train").is_dir():
        # No tables: images in a folder per class (train/<class>/<image>, test/<image>).
        layout = class_folder_layout(root, None if sample is None else (sample.name, read_table(sample)),
                                     read_task_yaml(task_yaml))
        train, test = root / layout.train_dir, root / layout.test_dir
    else:
        if train is None:
            raise TaskError(f"no train file in {root}", "Add train.csv (or .tsv, .parquet, .json, .jsonl, gzipped or zipped), "
                            "or the training images in one folder per class (train/<class>/<image>).")
        test = _find_table(root, "test")
        if test is None and sample is not None and _test_media_folder(root) is not None:
            # No test table, a test/ folder of images or clips (aerial-cactus, whale): the test rows are the
            # sample submission's ids, its first column.
            return TaskFiles(root, name, train, sample, sample, description, task_yaml,
                             _extras(root, train, sample, description, task_yaml), None,
                             test_columns=(sample_columns[0],))
        if test is None:
            raise TaskError(f"no test file in {root}", "Add test.csv with the rows to predict.")
    return TaskFiles(root, name, train, test, sample, description, task_yaml,
                     _extras(root, train, test, sample, description, task_yaml), layout)


# The labels of files named by their ids, as image competitions ship them beside a train/ folder: dog breeds'
# labels.csv, histopathology's train_labels.csv, CIFAR-10's trainLabels.csv.
_LABELS_STEMS = ("labels", "train_labels", "trainLabels", "training_labels", "train-labels")


def _labels_table(root: Path) -> Path | None:
    """The train table of a task whose train files are named by the ids of a labels table; None when train/ holds
    class folders (the folders are the labels then) or there is no such table."""
    train_dir = root / "train"
    if train_dir.is_dir() and sum(1 for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) >= 2:
        return None
    return next((found for stem in _LABELS_STEMS if (found := _find_table(root, stem)) is not None), None)


def _extras(root: Path, *known: Path | None) -> tuple[str, ...]:
    """The task directory's other entries (hidden ones aside)."""
    return tuple(sorted(p.name for p in root.iterdir() if p not in known and not p.name.startswith(".")))


def _test_media_folder(root: Path) -> Path | None:
    """The folder of test images or clips when there is no test table: test/, else the one folder named like it
    (cassava's test_images/, a test_audio/)."""
    if _holds_media(root / "test"):
        return root / "test"
    named = [p for p in sorted(root.iterdir()) if p.is_dir() and re.match(r"test[_-]?(?:images?|imgs?|audio|clips|files|data)$",
                                                                          p.name, re.IGNORECASE) and _holds_media(p)]
    return named[0] if len(named) == 1 else None


def _holds_media(folder: Path) -> bool:
    from iml_ray.task.archives import MEDIA_SUFFIXES

    if not folder.is_dir():
        return False
    return any(p.name.lower().endswith(MEDIA_SUFFIXES) for p, _ in zip(folder.iterdir(), range(1000)))


# sample_submission.csv, sampleSubmission.csv, and the variants competitions ship (MLE-bench's insults task has
# sample_submission_null.csv; others sample_submission_v2.csv, SampleSubmission.csv).
_SAMPLE_NAME = re.compile(r"^sample_?submission", re.IGNORECASE)


def find_sample_submission(root: Path) -> Path | None:
    """The task's sample submission: the plain name first, then any table whose name starts like one."""
    exact = _find_table(root, "sample_submission") or _find_table(root, "sampleSubmission")
    if exact is not None:
        return exact
    named = sorted(p for p in root.iterdir() if p.is_file() and _SAMPLE_NAME.match(p.name)
                   and p.name.lower().endswith(TABLE_SUFFIXES))
    if len(named) > 1:
        log.info("several sample submissions in %s; using %s", root, named[0].name)
    return named[0] if named else None


def _find_table(root: Path, stem: str) -> Path | None:
    for suffix in TABLE_SUFFIXES:
        candidate = root / f"{stem}{suffix}"
        if candidate.is_file() and (suffix != ".zip" or _holds_one_table(candidate)):
            return candidate
    return None


def _holds_one_table(archive: Path) -> bool:
    """A bare train.zip is a table when it holds one table file (a folder of images is extracted instead)."""
    try:
        zip_member(archive)
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    return True


# ---------------------------------------------------------------- reading tables


def read_split(root: Path, file: Path | str, split: str, layout: FolderLayout | None = None,
               nrows: int | None = None, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """The train or test table of a task: its file, or for a FolderLayout the rows built from its folders.

    columns: only these (test rows taken from the sample submission's ids)."""
    if layout is None:
        frame = read_table(Path(root) / file, nrows=nrows)
    else:
        try:
            frame = layout.read(root, split)
        except OSError as exc:
            raise TaskError(f"the {split} files cannot be listed ({type(exc).__name__}: {exc})",
                            f"Check the {split}/ folder of {root}.") from None
        if nrows is not None:
            frame = frame.head(nrows)
    frame.columns = [str(c) for c in frame.columns]
    return frame[list(columns)] if columns else frame


def read_table(path: Path, nrows: int | None = None) -> pd.DataFrame:
    """Read a table file (see table_file.py for the formats); a broken file is a TaskError, not a traceback."""
    import pandas as pd
    label = path.name
    try:
        frame = read_table_file(path, nrows, warn=log.warning)
    except pd.errors.EmptyDataError:
        raise TaskError(f"{label} is empty", f"Put the header and the rows in {path}.") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0]
        raise TaskError(f"{label} is malformed ({first})", f"Fix {path}: every row needs as many fields as the header.") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TaskError(f"{label} cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                        f"Check that {path} is a valid table file.") from None
    if frame.shape[1] == 0:
        raise TaskError(f"{label} has no columns", f"Put a header row in {path}.")
    if len(frame) == 0:
        raise TaskError(f"{label} has a header but no rows", f"Add data rows to {path}.")
    dupes = [c for c in frame.columns if re.fullmatch(r".+\.\d+", str(c)) and str(c).rsplit(".", 1)[0] in frame.columns]
    if dupes:
        raise TaskError(f"{label} has duplicate column names ({', '.join(map(str, dupes))})",
                        f"Rename the columns in {path} so each name is unique.")
    return frame


def read_task_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    from iml_ray.metrics.registry import UnknownMetric, get_metric

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TaskError(f"{path.name} is not valid YAML ({str(exc).splitlines()[0]})", f"Fix the syntax of {path}.") from None
    if not isinstance(data, dict):
        raise TaskError(f"{path.name} must be a mapping like `target: price`", f"Rewrite {path} as key: value lines.")
    unknown = sorted(set(data) - YAML_KEYS)
    if unknown:
        raise TaskError(f"{path.name} has unknown key(s): {', '.join(unknown)}", f"Use only: {', '.join(sorted(YAML_KEYS))}.")
    if data.get("metric") is not None:
        try:
            data["metric"] = get_metric(str(data["metric"])).name
        except UnknownMetric as exc:
            raise TaskError(f"{path.name}: {exc}", f"Set `metric:` in {path} to one of the known metrics.") from None
    if data.get("problem_type") is not None and data["problem_type"] not in PROBLEM_TYPES:
        raise TaskError(f"{path.name}: unknown problem_type '{data['problem_type']}'",
                        f"Set `problem_type:` to one of {', '.join(PROBLEM_TYPES)}.")
    return data
