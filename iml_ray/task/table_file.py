"""One table file (CSV, TSV or parquet) read the same way everywhere: by the library, by the prep check and
by every generated pipeline, which gets this function's source (so pipeline.py imports nothing from iml_ray)."""
from __future__ import annotations

import inspect
import os

import pandas as pd


# Standalone: only os and pandas (as pd), so its source can be copied into generated code (table_file_source).
def read_table_file(path, nrows=None, warn=None):
    """The table as a frame with string column names; a file that is not UTF-8 is read as latin-1."""
    path = str(path)
    if path.endswith(".parquet"):
        frame = pd.read_parquet(path)
    else:
        sep = "\t" if path.endswith(".tsv") else ","
        try:
            frame = pd.read_csv(path, sep=sep, nrows=nrows, low_memory=False)
        except UnicodeDecodeError:
            # Kaggle files from older competitions are often latin-1.
            if warn is not None:
                warn(f"{os.path.basename(path)} is not UTF-8; reading it as latin-1")
            frame = pd.read_csv(path, sep=sep, nrows=nrows, low_memory=False, encoding="latin-1")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def table_file_source() -> str:
    """The source of read_table_file, to copy into scripts that must not import iml_ray."""
    return inspect.getsource(read_table_file)
