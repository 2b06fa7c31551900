"""Read a task's table in bounded pieces: a few columns of every row, or every column in chunks.

A 2 GB train.csv must not be loaded whole by the driver or the agents: the
analysis reads the header, a head sample and the columns it needs, the profile
is computed chunk by chunk. The C parser tokenises a whole file at once when
asked for it whole (even with usecols), so every read here goes through
`chunksize`.

Chunks are parsed one by one, so one column can come out int64 in one chunk and
str in the next; `combined_dtype` says what pandas would have made of the whole
column, and `read_columns` returns exactly that.
"""
from __future__ import annotations

import codecs
import gzip
import logging
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import pandas as pd

from iml_ray.errors import TaskError
from iml_ray.task.table_file import read_table_file, table_format, zip_member

log = logging.getLogger(__name__)

CHUNK_BYTES = 32 * 2**20          # about this much CSV text per chunk
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 1_000, 200_000
_SNIFF_BLOCK = 16 * 2**20


def is_parquet(path: Path) -> bool:
    return Path(path).name.endswith(".parquet")


def _kind(path: Path) -> str | None:
    path = Path(path)
    if path.name.lower().endswith(".zip"):
        try:
            return zip_member(path)[1]
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise TaskError(f"{path.name} cannot be read ({type(exc).__name__}: {exc})",
                            f"Check that {path} is a valid table file.") from None
    return table_format(path.name)


def read_whole(path: Path) -> bool:
    """Formats that cannot be read a chunk at a time (JSON, parquet inside a zip): read whole, then sliced."""
    return _kind(path) == "json" or (Path(path).name.lower().endswith(".zip") and _kind(path) == "parquet")


def _separator(path: Path) -> str:
    return "\t" if _kind(path) == "tsv" else ","


@contextmanager
def _open_bytes(path: Path):
    path = Path(path)
    if path.name.lower().endswith(".zip"):
        member, _ = zip_member(path)
        with zipfile.ZipFile(path) as archive, archive.open(member) as handle:
            yield handle
    else:
        with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")) as handle:
            yield handle


def text_encoding(path: Path) -> str:
    """utf-8 when the whole file decodes as UTF-8, else latin-1 (which decodes anything), as read_table does.

    Decided before the first chunk: a non-UTF-8 byte near the end would otherwise
    surface after most of the chunks were consumed."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with _open_bytes(path) as handle:
            for block in iter(lambda: handle.read(_SNIFF_BLOCK), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        log.warning("%s is not UTF-8; reading it as latin-1", Path(path).name)
        return "latin-1"
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise TaskError(f"{Path(path).name} cannot be read ({type(exc).__name__}: {exc})",
                        f"Check that {path} is a valid table file.") from None
    return "utf-8"


def chunk_rows_for(path: Path) -> int:
    """Rows per chunk so that a chunk holds about CHUNK_BYTES of text (from the first lines' length)."""
    try:
        with _open_bytes(path) as handle:
            head = handle.read(1 << 16)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        return MIN_CHUNK_ROWS
    lines = max(head.count(b"\n"), 1)
    per_row = max(len(head) / lines, 1.0)
    return int(min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, CHUNK_BYTES / per_row)))


def iter_table(path: Path, chunk_rows: int | None = None, usecols: list[str] | None = None,
               as_str: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The table's rows in chunks of at most chunk_rows, optionally only some columns (as_str: read those as text).

    A broken file is a TaskError, as in read_table."""
    import pandas as pd
    path = Path(path)
    if read_whole(path):
        yield from _iter_whole(path, chunk_rows or MAX_CHUNK_ROWS, usecols, as_str)
        return
    rows = chunk_rows or chunk_rows_for(path)
    if is_parquet(path):
        yield from _iter_parquet(path, rows, usecols)
        return
    encoding = text_encoding(path)
    dtype = {c: str for c in as_str} if as_str else None
    try:
        reader = pd.read_csv(path, sep=_separator(path), chunksize=rows, usecols=usecols, dtype=dtype,
                             encoding=encoding)
        with reader:
            for chunk in reader:
                chunk.columns = [str(c) for c in chunk.columns]
                yield chunk
    except pd.errors.EmptyDataError:
        raise TaskError(f"{path.name} is empty", f"Put the header and the rows in {path}.") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0]
        raise TaskError(f"{path.name} is malformed ({first})",
                        f"Fix {path}: every row needs as many fields as the header.") from None
    except (OSError, ValueError) as exc:
        raise TaskError(f"{path.name} cannot be read ({type(exc).__name__}: {exc})",
                        f"Check that {path} is a valid table file.") from None


def _iter_whole(path: Path, rows: int, usecols: list | None, as_str: list[str] | None) -> Iterator[pd.DataFrame]:
    try:
        frame = read_table_file(path, warn=log.warning, text_columns=as_str)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TaskError(f"{path.name} cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                        f"Check that {path} is a valid table file.") from None
    if usecols is not None:
        frame = frame.iloc[:, usecols] if all(isinstance(c, int) for c in usecols) else frame[list(usecols)]
    for start in range(0, max(len(frame), 1), rows):
        yield frame.iloc[start: start + rows]


def _iter_parquet(path: Path, rows: int, usecols: list[str] | None) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
        for batch in table.iter_batches(batch_size=rows, columns=usecols):
            chunk = batch.to_pandas()
            chunk.columns = [str(c) for c in chunk.columns]
            yield chunk
    except (OSError, ValueError) as exc:
        raise TaskError(f"{path.name} cannot be read ({type(exc).__name__}: {exc})",
                        f"Check that {path} is a valid table file.") from None


def count_rows(path: Path, chunk_rows: int | None = None) -> int:
    """Data rows of a table, without holding more than one chunk of its first column."""
    path = Path(path)
    if is_parquet(path):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return sum(len(chunk) for chunk in iter_table(path, chunk_rows, usecols=[0]))


# ---------------------------------------------------------------- dtypes across chunks


def column_kind(values: pd.Series) -> str:
    """What one chunk of a column holds: n(othing), b(ool), i(nt), f(loat), s(tring) or o(ther)."""
    import pandas as pd
    present = values.dropna()
    if present.empty:
        return "n"
    if pd.api.types.is_bool_dtype(values) or (values.dtype == object and present.map(type).eq(bool).all()):
        return "b"
    if pd.api.types.is_integer_dtype(values):
        return "i"
    if pd.api.types.is_float_dtype(values):
        return "f"
    if pd.api.types.is_string_dtype(values):
        return "s"
    return "o"


def combined_dtype(kinds: set[str], has_missing: bool) -> str:
    """The dtype read_csv gives the whole column, from the kinds of its chunks (see column_kind)."""
    kinds = kinds - {"n"}
    if not kinds:
        return "float64"                  # an empty column reads as NaN
    if kinds == {"b"}:
        return "object" if has_missing else "bool"
    if kinds == {"i"}:
        return "float64" if has_missing else "int64"
    if kinds <= {"i", "f"}:
        return "float64"
    if "o" in kinds:
        return "object"
    return "str"


def needs_text_reread(kinds: set[str]) -> bool:
    """Text mixed with numbers or booleans: the whole-file parse keeps every value as its text, the chunks did not."""
    kinds = kinds - {"n"}
    return "s" in kinds and len(kinds) > 1 or ("b" in kinds and bool(kinds & {"i", "f"}))


def read_columns(path: Path, columns: list[str], chunk_rows: int | None = None) -> pd.DataFrame:
    """These columns of every row, typed as a whole-file read would type them, one chunk at a time."""
    import pandas as pd
    path = Path(path)
    if is_parquet(path):
        try:
            frame = pd.read_parquet(path, columns=list(columns))
        except (OSError, ValueError) as exc:
            raise TaskError(f"{path.name} cannot be read ({type(exc).__name__}: {exc})",
                            f"Check that {path} is a valid table file.") from None
        frame.columns = [str(c) for c in frame.columns]
        return frame
    parts, kinds, missing = [], {c: set() for c in columns}, {c: False for c in columns}
    for chunk in iter_table(path, chunk_rows, usecols=list(columns)):
        for c in columns:
            kinds[c].add(column_kind(chunk[c]))
            missing[c] = missing[c] or bool(chunk[c].isna().any())
        parts.append(chunk)
    mixed = [c for c in columns if needs_text_reread(kinds[c])]
    if mixed:
        parts = list(iter_table(path, chunk_rows, usecols=list(columns), as_str=mixed))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns))
    for c in columns:
        wanted = combined_dtype(kinds[c], missing[c])
        if str(frame[c].dtype) != wanted and wanted in ("float64", "int64", "bool", "str"):
            frame[c] = frame[c].astype(wanted)
    return frame[list(columns)]
