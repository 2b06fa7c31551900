"""One table file read the same way everywhere: by the library, by the prep check and by every generated
pipeline, which gets these functions' source (so pipeline.py imports nothing from iml_ray).

Formats: CSV, TSV, parquet, JSON (a list of records, one object of columns, or JSON lines), each of the
text formats optionally gzip-compressed, and a zip archive holding one such table.
"""
from __future__ import annotations

import inspect
import os

# Name endings of the table files a task may use; a bare `.zip` counts when it holds one table.
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".json", ".jsonl", ".ndjson",
                  ".csv.gz", ".tsv.gz", ".json.gz", ".jsonl.gz", ".ndjson.gz",
                  ".csv.zip", ".tsv.zip", ".json.zip", ".jsonl.zip", ".ndjson.zip", ".parquet.zip", ".zip")


# Standalone from here on: only os and what each function imports (pandas inside the function, so an
# importer of this module does not pay for pandas), so that their source can be
# copied into generated code (table_file_source).
def table_format(name):
    """csv, tsv, parquet or json, from a file name (compression suffixes ignored); None for anything else."""
    name = name.lower()
    for suffix in (".gz", ".zip"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for ending, kind in ((".csv", "csv"), (".tsv", "tsv"), (".txt", "csv"), (".parquet", "parquet"),
                         (".jsonl", "json"), (".ndjson", "json"), (".json", "json")):
        if name.endswith(ending):
            return kind
    return None


def zip_member(path):
    """The one table inside a zip archive: (member name, format). ValueError when there is not exactly one."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.namelist() if not m.endswith("/") and "__MACOSX" not in m
                   and not os.path.basename(m).startswith(".")]
    tables = [m for m in members if table_format(m)]
    if len(tables) != 1 or len(members) != 1:
        raise ValueError(f"{os.path.basename(path)} holds {len(members)} files ({len(tables)} tables); "
                         "a zipped table holds exactly one")
    return tables[0], table_format(tables[0])


def as_text(value):
    """A present value as its text; a missing one (None, NaN) stays missing."""
    return value if value is None or (isinstance(value, float) and value != value) else str(value)


def json_table(text, nrows=None):
    """A frame from JSON text: a list of records, one object of equal-length column lists, or JSON lines.

    Nested values become text (lists of words joined by spaces, other structures as JSON); a column mixing
    text with numbers becomes text, as a CSV reader would make it."""
    import json

    import pandas as pd

    start = text.lstrip()[:1]
    if start == "[":
        records = json.loads(text)
    elif start == "{":
        try:
            whole = json.loads(text)
        except ValueError:          # several objects: JSON lines
            whole = None
        if whole is None:
            records = [json.loads(line) for line in text.splitlines()[: None if nrows is None else nrows + 1] if line.strip()]
        elif whole and all(isinstance(v, list) for v in whole.values()) and len({len(v) for v in whole.values()}) == 1:
            records = [dict(zip(whole, values)) for values in zip(*whole.values())]
        else:
            records = [whole]
    else:
        raise ValueError("the JSON is not a list of records, an object of columns or JSON lines "
                         f"(it starts with {text.lstrip()[:20]!r})")
    wrong = [type(r).__name__ for r in records if not isinstance(r, dict)]
    if wrong:
        raise ValueError(f"every JSON record must be an object of fields; {len(wrong)} are not (e.g. a {wrong[0]})")
    frame = pd.DataFrame.from_records(records[:nrows] if nrows is not None else records)

    def flat(value):
        if isinstance(value, list) and not any(isinstance(v, (list, dict)) for v in value):
            return " ".join(str(v) for v in value)
        return json.dumps(value) if isinstance(value, (list, dict)) else value

    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        values = frame[column].map(flat)
        present = values[values.notna()]
        if present.map(lambda v: isinstance(v, str)).any() and not present.map(lambda v: isinstance(v, str)).all():
            values = values.map(as_text)
        frame[column] = values
    return frame


def read_table_file(path, nrows=None, warn=None, text_columns=None):
    """The table as a frame with string column names; a text file that is not UTF-8 is read as latin-1.

    text_columns: columns kept as the file spells them (ids and columns copied into a submission)."""
    import gzip
    import io
    import zipfile

    import pandas as pd

    path = str(path)
    kind, member = table_format(path), None
    if path.lower().endswith(".zip"):
        member, kind = zip_member(path)
    if kind is None:
        raise ValueError(f"{os.path.basename(path)} is not a table file (csv, tsv, parquet, json, gz or zip of one)")
    if kind == "parquet":
        if member is not None:
            with zipfile.ZipFile(path) as archive:
                frame = pd.read_parquet(io.BytesIO(archive.read(member)))
        else:
            frame = pd.read_parquet(path)
        frame = frame.head(nrows) if nrows is not None else frame
    elif kind == "json":
        if member is not None:
            with zipfile.ZipFile(path) as archive:
                data = archive.read(member)
        else:
            with (gzip.open if path.lower().endswith(".gz") else open)(path, "rb") as handle:
                data = handle.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if warn is not None:
                warn(f"{os.path.basename(path)} is not UTF-8; reading it as latin-1")
            text = data.decode("latin-1")
        frame = json_table(text, nrows)
        for column in text_columns or ():
            if column in frame.columns:
                frame[column] = frame[column].map(as_text)
    else:
        # Read by pandas from the file itself (gzip and one-member zips included): a large CSV is never held as text.
        options = dict(sep="\t" if kind == "tsv" else ",", nrows=nrows, low_memory=False,
                       dtype={c: str for c in text_columns} if text_columns else None,
                       compression="zip" if member is not None else "infer")
        try:
            frame = pd.read_csv(path, **options)
        except UnicodeDecodeError:
            # Kaggle files from older competitions are often latin-1.
            if warn is not None:
                warn(f"{os.path.basename(path)} is not UTF-8; reading it as latin-1")
            frame = pd.read_csv(path, encoding="latin-1", **options)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def table_file_source() -> str:
    """The source of read_table_file and its helpers, to copy into scripts that must not import iml_ray."""
    return "\n\n".join(inspect.getsource(f) for f in (table_format, zip_member, as_text, json_table, read_table_file))
