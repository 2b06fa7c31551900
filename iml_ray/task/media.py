"""Images and audio clips a task's tables point at: by a path column, or by the row id.

Kaggle-style image tasks come in two shapes: a column holding a relative path
(`images/cat_001.jpg`), or only an id whose file sits in a folder
(`train/<id>.png`, `test/<id>.png`). Both become an ImageSource: a pattern per
split that turns the column's value into a file path. The pipeline resolves the
pattern into absolute paths in a column of its own (`<column>__image`), so the
preprocessing sees one path per row whichever shape the task had.

A third shape has no tables at all: `train/<class>/<image>` (or the class in the
file's name, `train/cat.12.jpg`) and `test/<image>` (a FolderLayout).
read_class_folders builds the tables from the folders, with a path column, so the
rest of the system sees the first shape.

Audio clips (wav, flac, ogg, mp3, aiff) come in the same shapes and become an
AudioSource (`<column>__audio`), checked by decoding a sample's headers.
"""
from __future__ import annotations

import inspect
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    import pandas as pd

from iml_ray.errors import TaskError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# What libsndfile (through soundfile) decodes.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".au")
# Folders Kaggle-style tasks keep images or clips in, per split ("" = the task directory itself).
FOLDERS = {"train": ("", "images", "train", "train_images", "img", "imgs", "data", "audio", "train_audio", "clips"),
           "test": ("", "images", "test", "test_images", "img", "imgs", "data", "audio", "test_audio", "clips")}
SAMPLE = 20
MIN_FOUND = 0.9
NAME_LABEL = r"^([A-Za-z]+)[._-]"     # cat.12.jpg, dog_7.png: the class is the leading word
NAME_LABEL_LAST = r"^.*_([A-Za-z0-9]+)\.[A-Za-z0-9]+$"   # whale: 20090328_000000_002s3ms_TRAIN0_1.aif: the last token


@dataclass(frozen=True)
class ImageSource:
    name: str              # the pipeline's column of resolved absolute paths
    column: str            # the table column whose value names the image
    train_pattern: str     # relative to the task directory; "{}" stands for the value
    test_pattern: str
    found: str             # how it was found, for the record
    width: int = 0         # of the first image checked
    height: int = 0
    mode: str = ""         # PIL mode of the first image checked ("L", "RGB", ...)

    @property
    def channels(self) -> int:
        return 1 if self.mode in ("L", "1", "I", "I;16", "F") else 3

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ImageSource":
        return cls(**data)


@dataclass(frozen=True)
class AudioSource:
    name: str              # the pipeline's column of resolved absolute paths
    column: str            # the table column whose value names the clip
    train_pattern: str
    test_pattern: str
    found: str
    sample_rate: int = 0   # of the first clip checked
    channels: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "AudioSource":
        return cls(**data)


@dataclass(frozen=True)
class FolderLayout:
    """A task without tables: images or clips in train/<class>/ (the class is the folder's name) and in test/.

    The tables are built by read_class_folders, whose source travels into the prep
    probe and the generated pipeline, so every process builds the same rows in the
    same (sorted) order: the holdout names train rows by position.
    """
    id_column: str          # the file's name or stem, as the sample submission spells the ids
    path_column: str        # the image's path relative to the task directory
    target: str             # the class folder's name
    id_style: str = "stem"  # "name" (cat_01.png) or "stem" (cat_01)
    train_dir: str = "train"
    test_dir: str = "test"
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES
    kind: str = "class_folders"
    # Where a train file's class is: its folder (train/<class>/x.png) or its name (dogs-vs-cats: train/cat.12.jpg,
    # the leading word; whale: train/<stamp>_TRAIN0_1.aif, the last token), as label_pattern's group 1 finds it.
    label_from: str = "folder"
    label_pattern: str = NAME_LABEL

    @property
    def kind_of_file(self) -> str:
        return "clip" if set(self.suffixes) == set(AUDIO_SUFFIXES) else "image"

    def to_json(self) -> dict:
        data = asdict(self)
        data["suffixes"] = list(self.suffixes)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "FolderLayout":
        if data.get("kind", "class_folders") != "class_folders":
            raise ValueError(f"unknown folder layout {data.get('kind')!r}")
        return cls(**{**data, "suffixes": tuple(data["suffixes"])})

    def read(self, root: Path | str, split: str) -> pd.DataFrame:
        return read_class_folders(str(root), self.to_json(), split)


# Standalone: only os and pandas (as pd), so its source can be copied into the
# generated pipeline and the prep probe (see class_folders_source).
def read_class_folders(data, layout, split):
    """The train or test table of a folder-per-class image task: one row per image, in sorted path order.

    train/<class>/<image> -> id, path (relative to the task directory), class; test/<image> -> id, path.
    The id is the file's name or its stem (layout["id_style"]), as the sample submission spells the ids.
    """
    import pandas as pd
    suffixes = tuple(layout["suffixes"])

    def images(folder):
        full = os.path.join(data, folder)
        return [name for name in sorted(os.listdir(full))
                if not name.startswith(".") and name.lower().endswith(suffixes) and os.path.isfile(os.path.join(full, name))]

    def row(folder, name):
        ident = name if layout["id_style"] == "name" else os.path.splitext(name)[0]
        return {layout["id_column"]: ident, layout["path_column"]: folder + "/" + name}

    columns = [layout["id_column"], layout["path_column"]]
    if split == "test":
        return pd.DataFrame([row(layout["test_dir"], name) for name in images(layout["test_dir"])], columns=columns)
    rows = []
    if layout.get("label_from", "folder") == "name":
        import re

        # The class is what the pattern finds in the name (a name without it has no label).
        for name in images(layout["train_dir"]):
            found = re.match(layout["label_pattern"], name)
            rows.append({**row(layout["train_dir"], name), layout["target"]: found.group(1) if found else None})
        return pd.DataFrame(rows, columns=columns + [layout["target"]])
    for label in sorted(os.listdir(os.path.join(data, layout["train_dir"]))):
        folder = layout["train_dir"] + "/" + label
        if not label.startswith(".") and os.path.isdir(os.path.join(data, folder)):
            rows += [{**row(folder, name), layout["target"]: label} for name in images(folder)]
    return pd.DataFrame(rows, columns=columns + [layout["target"]])


def class_folders_source() -> str:
    """The source of read_class_folders, to copy into scripts that must not import iml_ray."""
    return inspect.getsource(read_class_folders)


# Standalone: only os, so its source can be copied into the generated pipeline and the prep probe.
def media_paths(data, pattern, values):
    """The path of the file each value names below the task directory `data` (None for a missing value).

    A pattern is a path with {} for the value ("train_images/{}.png"); "<folder>/**/<name>" names a file anywhere
    below the folder, found by its name (paddy's train_images/<label>/<image_id>), None when there is none."""
    import os
    index = None
    if "/**/" in pattern:
        folder, pattern = pattern.split("/**/", 1)
        index = {}
        for current, _, files in os.walk(os.path.join(data, folder)):
            for file in files:
                index.setdefault(file, os.path.join(current, file))
    paths = []
    for value in values:
        if value is None or (isinstance(value, float) and value != value):
            paths.append(None)
        elif index is not None:
            paths.append(index.get(pattern.format(str(value).strip())))
        else:
            paths.append(os.path.join(data, pattern.format(str(value).strip())))
    return paths


def media_paths_source() -> str:
    """The source of media_paths, to copy into scripts that must not import iml_ray."""
    return inspect.getsource(media_paths)


def find_image_sources(train: pd.DataFrame, test: pd.DataFrame, root: Path, columns: Iterable[str]) -> list[ImageSource]:
    """ImageSources for the given columns whose values name image files in both splits."""
    sources = []
    for column, train_pattern, test_pattern, how in _file_columns(train, test, root, columns, IMAGE_SUFFIXES):
        # A value found below a folder names a path; one of the few it may miss names none.
        first = Path(next(p for p in media_paths(str(root), train_pattern, _sample(train[column])) if p))
        width, height, mode = _image_facts(first)
        sources.append(ImageSource(f"{column}__image", column, train_pattern, test_pattern, how, width, height, mode))
    return sources


def find_audio_sources(train: pd.DataFrame, test: pd.DataFrame, root: Path, columns: Iterable[str]) -> list[AudioSource]:
    """AudioSources for the given columns whose values name audio clips in both splits.

    A sample of the clips is decoded (headers only): files named like clips that are not audio are an
    error here, at analysis, rather than a pipeline of silence."""
    sources = []
    for column, train_pattern, test_pattern, how in _file_columns(train, test, root, columns, AUDIO_SUFFIXES):
        paths = [Path(p) for p in media_paths(str(root), train_pattern, _sample(train[column]))
                 + media_paths(str(root), test_pattern, _sample(test[column])) if p]
        facts, bad = [], []
        for path in paths:
            try:
                facts.append(audio_facts(path))
            except AudioError as exc:
                bad.append((path, exc))
        if len(bad) > (1 - MIN_FOUND) * len(paths):
            path, exc = bad[0]
            raise TaskError(f"{path.relative_to(root)} is not an audio file iml-ray can read ({exc}); "
                            f"{len(bad)} of {len(paths)} clips checked in column {column!r} are not",
                            "Replace the files with wav, flac, ogg, mp3 or aiff clips, or remove the column.")
        rate, channels, seconds = facts[0]
        sources.append(AudioSource(f"{column}__audio", column, train_pattern, test_pattern, how, rate, channels, seconds))
    return sources


class AudioError(Exception):
    """A file that does not decode as audio."""


def audio_facts(path: Path) -> tuple[int, int, float]:
    """(sample rate, channels, seconds) from the clip's header; AudioError when it is not audio."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError by version
        raise AudioError(str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__) from None
    if info.samplerate <= 0 or info.frames <= 0:
        raise AudioError("no samples")
    return int(info.samplerate), int(info.channels), round(info.frames / info.samplerate, 3)


def _file_columns(train: pd.DataFrame, test: pd.DataFrame, root: Path, columns: Iterable[str], suffixes: tuple[str, ...]):
    """(column, train pattern, test pattern, how it was found) for the columns naming files with these suffixes."""
    below: dict[str, dict[str, int]] = {}          # each folder's file names, counted, listed once per analysis
    for column in columns:
        if column not in train.columns or column not in test.columns:
            continue
        train_pattern = _pattern(train[column], root, "train", suffixes, below=below)
        if train_pattern is None:
            continue
        test_pattern = _pattern(test[column], root, "test", suffixes, prefer=train_pattern, below=below)
        if test_pattern is None:
            log.info("column %s names files in train but not in test; not used", column)
            continue
        how = ("the column holds file paths" if train_pattern == "{}" and test_pattern == "{}"
               else f"the column's values name files {train_pattern} / {test_pattern}")
        yield column, train_pattern, test_pattern, how


def _sample(values: pd.Series) -> list[str]:
    values = values.dropna().astype(str).str.strip()
    values = values[values != ""]
    if len(values) > SAMPLE:
        values = values.sample(SAMPLE, random_state=0)
    return values.tolist()


def _pattern(values: pd.Series, root: Path, split: str, suffixes: tuple[str, ...], prefer: str | None = None,
             below: dict[str, dict[str, int]] | None = None) -> str | None:
    sample = _sample(values)
    if not sample:
        return None
    has_suffix = sum(v.lower().endswith(suffixes) for v in sample) >= MIN_FOUND * len(sample)
    candidates = []
    if prefer:
        candidates.append(prefer)
    for folder in FOLDERS[split]:
        if folder and not (root / folder).is_dir():
            continue
        prefix = f"{folder}/" if folder else ""
        if has_suffix:
            candidates.append(prefix + "{}")
        else:
            candidates += [prefix + "{}" + suffix for suffix in suffixes]
    # A pattern is dropped at its first misses past what MIN_FOUND allows: a wide table of plain values costs
    # a few stats per column and pattern, not one per sampled value (10,000 columns took minutes).
    allowed_misses = int((1 - MIN_FOUND) * len(sample) + 1e-9)
    for pattern in dict.fromkeys(candidates):
        misses = 0
        for value in sample:
            misses += not _is_file(root, pattern.format(value))
            if misses > allowed_misses:
                break
        else:
            return pattern
    return _pattern_below(sample, root, split, suffixes, has_suffix, {} if below is None else below)


def _pattern_below(sample: list[str], root: Path, split: str, suffixes: tuple[str, ...], has_suffix: bool,
                   below: dict[str, dict[str, int]]) -> str | None:
    """"<folder>/**/<name>" when the values name files found, once each, anywhere below one of the split's folders
    (paddy keeps its train images in train_images/<label>/ and names them in train.csv)."""
    tails = ["{}"] if has_suffix else ["{}" + suffix for suffix in suffixes]
    for folder in FOLDERS[split]:
        if not folder or not (root / folder).is_dir():
            continue
        if folder not in below:
            counts: dict[str, int] = {}
            for _, _, files in os.walk(root / folder):
                for file in files:
                    counts[file] = counts.get(file, 0) + 1
            below[folder] = counts
        for tail in tails:
            found = sum(below[folder].get(tail.format(value), 0) == 1 for value in sample)
            if found >= MIN_FOUND * len(sample):
                return f"{folder}/**/{tail}"
    return None


def _is_file(root: Path, relative: str) -> bool:
    path = root / relative
    # Never follow a value out of the task directory ("../../etc/passwd").
    try:
        return path.is_file() and path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def _image_facts(path: Path) -> tuple[int, int, str]:
    try:
        from PIL import Image

        with Image.open(path) as image:
            return int(image.width), int(image.height), str(image.mode)
    except Exception as exc:  # an unreadable first image is reported by the profile, not fatal here
        log.warning("cannot read image %s: %s", path, exc)
        return 0, 0, ""
