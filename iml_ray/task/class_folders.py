"""Tasks without tables: train/<class>/<file> (or the class in the file's name) and test/<file>.

The files are images or audio clips, whichever the train folders hold more of; the ids and the target's name
come from the sample submission (or task.yaml). The result is a FolderLayout, checked: a broken layout is one
clear error here, not an empty table later.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from iml_ray.errors import TaskError
from iml_ray.task.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, NAME_LABEL, NAME_LABEL_LAST, FolderLayout


def class_folder_layout(root: Path, sample: tuple[str, pd.DataFrame] | None, stated: dict[str, Any]) -> FolderLayout:
    """The FolderLayout of train/<class>/ and test/ folders, checked; column names from the sample submission
    (its file name and table) and what task.yaml states."""
    train_dir, test_dir = root / "train", root / "test"
    classes = [p for p in sorted(train_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    suffixes = _media_kind(train_dir, classes)
    noun = "audio files" if suffixes == AUDIO_SUFFIXES else "image files"
    label_from, pattern = "folder", NAME_LABEL
    named = _name_pattern(_media_names(train_dir, suffixes)) if len(classes) < 2 else None
    if named:
        label_from, pattern = "name", named
    elif len(classes) < 2:
        raise TaskError(f"train/ has no train.csv beside it and {len(classes)} class folder(s) "
                        f"({', '.join(p.name for p in classes) or 'none'})",
                        f"Put the training {noun} in one folder per class, at least two: train/<class>/<file> "
                        "(or name each by its class: train/<class>.<n>.jpg).")
    empty = [p.name for p in classes if not _media_names(p, suffixes)] if label_from == "folder" else []
    if empty:
        raise TaskError(f"class folder(s) with no {noun}: {', '.join(f'train/{n}/' for n in empty[:5])}",
                        f"Put the class's {noun} ({', '.join(suffixes[:3])}, …) in it, or remove the folder.")
    if not test_dir.is_dir():
        raise TaskError(f"no test/ folder in {root}", f"Put the {noun} to predict in test/ (test/<file>).")
    test_names = _media_names(test_dir, suffixes)
    if not test_names:
        raise TaskError(f"test/ holds no {noun}", f"Put the {noun} to predict ({', '.join(suffixes[:3])}, …) "
                        "directly in test/.")
    id_column, id_style, predicted = _sample_ids(sample, test_names, stated.get("id_column"))
    stems = [Path(n).stem for n in test_names]
    if id_style == "stem" and len(set(stems)) < len(stems):
        twice = sorted(s for s in set(stems) if stems.count(s) > 1)[0]
        raise TaskError(f"test/ has several files named {twice!r} (with different extensions)",
                        "Give each test file its own name, or list the full file names as ids in the sample submission.")
    target = stated.get("target") or (predicted[0] if len(predicted) == 1 else "label")
    path_column = next(c for c in ("path", "file_path", "media_file") if c not in (id_column, target))
    return FolderLayout(str(id_column), path_column, str(target), id_style, suffixes=suffixes, label_from=label_from,
                        label_pattern=pattern)


def _media_kind(train_dir: Path, classes: list[Path]) -> tuple[str, ...]:
    """IMAGE_SUFFIXES or AUDIO_SUFFIXES: whichever kind of file the train folders hold more of."""
    folders = classes or [train_dir]
    images = sum(len(_media_names(f, IMAGE_SUFFIXES)) for f in folders[:20])
    clips = sum(len(_media_names(f, AUDIO_SUFFIXES)) for f in folders[:20])
    return AUDIO_SUFFIXES if clips > images else IMAGE_SUFFIXES


def _name_pattern(names: list[str]) -> str | None:
    """The pattern that finds a class in most train file names: the leading word (cat.12.jpg, dog.7.jpg), else the
    last _token (whale: ..._TRAIN0_1.aif); at least two classes, and few enough that they are classes, not ids."""
    for pattern in (NAME_LABEL, NAME_LABEL_LAST):
        found = [m.group(1) for m in (re.match(pattern, name) for name in names) if m]
        if names and len(found) >= 0.9 * len(names) and 2 <= len(set(found)) <= max(2, len(names) // 5):
            return pattern
    return None


def _media_names(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(suffixes))


def _sample_ids(sample: tuple[str, pd.DataFrame] | None, test_names: list[str],
                stated_id: str | None) -> tuple[str, str, list[str]]:
    """The sample submission's id column, whether its ids are file names or stems, and its other columns."""
    if sample is None:
        return stated_id or "id", "stem", []
    sample_name, frame = sample
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    names, stems = set(test_names), {Path(n).stem for n in test_names}
    best = None
    for column in ([stated_id] if stated_id in frame.columns else frame.columns):
        values = set(frame[column].astype(str).str.strip())
        by_name, by_stem = len(values & names), len(values & stems)
        if max(by_name, by_stem) and (best is None or max(by_name, by_stem) > best[0]):
            best = (max(by_name, by_stem), column, "name" if by_name >= by_stem else "stem")
    if best is None:
        first = frame.iloc[0, 0] if len(frame) else None
        raise TaskError(f"the ids of {sample_name} match no file in test/ (e.g. {first!r}; test/ has {test_names[0]!r})",
                        "List the test files' names (or their names without extension) in the sample submission.")
    _, column, style = best
    return column, style, [c for c in frame.columns if c != column]
