"""Tasks iml-ray does not build, recognised at analysis: said in one line, never attempted.

Segmentation masks, detection boxes and text generation each need an output no track
writes (run-length masks, box lists, free text). Running them as a classification of
their strings would end in a "valid" submission that scores nothing.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from iml_ray.errors import UnsupportedTask

_MASK_COLUMN = re.compile(r"^(encoded_?pixels|rle(_?mask)?|masks?|segmentation|annotation)$", re.IGNORECASE)
_BOX_COLUMN = re.compile(r"^(prediction_?string|bbox(es)?|boxes|bounding_?box(es)?|x_?min|y_?min|x_?max|y_?max)$",
                         re.IGNORECASE)
_MASK_FOLDERS = ("train_masks", "masks", "train_mask", "labels_masks")


def unsupported_output(root: Path, sample_cols: list[str]) -> str | None:
    """What the task's files ask for that iml-ray does not build (masks, boxes), or None."""
    named = [c for c in sample_cols if _MASK_COLUMN.match(str(c))]
    if named:
        return f"segmentation masks (the sample submission's column '{named[0]}')"
    folder = next((f for f in _MASK_FOLDERS if (root / f).is_dir()), None)
    if folder:
        return f"segmentation masks (the task ships a {folder}/ folder)"
    boxes = [c for c in sample_cols if _BOX_COLUMN.match(str(c))]
    if boxes:
        return f"detection boxes (the sample submission's column '{boxes[0]}')"
    return None


def text_generation(target: str, values: pd.Series) -> str | None:
    """A target of free text (mostly distinct values of several words) asks for generated text, not a class."""
    import pandas as pd
    present = values.dropna()
    if len(present) < 20 or pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
        return None
    text = present.astype(str)
    distinct = text.nunique() / len(text)
    words = float(text.str.split().str.len().mean())
    if distinct > 0.5 and words >= 4:
        return (f"text generation (the target '{target}' is free text: {distinct:.0%} of its values are distinct, "
                f"{words:.0f} words on average)")
    return None


def refuse(reason: str | None) -> None:
    if reason:
        raise UnsupportedTask(f"unsupported task: it asks for {reason}",
                              "iml-ray builds classification, regression and image/text/tabular inputs; "
                              "this task needs another tool.")
