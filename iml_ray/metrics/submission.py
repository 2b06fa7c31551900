"""What a submission looks like, and turning its columns back into predictions.

The same format describes `submission.csv` and the validation predictions a
candidate writes, so the Evaluator scores exactly what would be submitted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

# The kinds of task iml-ray builds; every layer above names them from here.
ProblemType = Literal["binary", "multiclass", "regression"]
PROBLEM_TYPES: tuple[str, ...] = get_args(ProblemType)

SubmissionKind = Literal["label", "probability", "class_probabilities", "value"]


@dataclass(frozen=True)
class SubmissionFormat:
    """Columns of the answer file and what their values mean.

    kind:
      label                one column of predicted labels (values from `classes`); with `top_k` > 1, up to
                           top_k labels per row, best first, separated by spaces (MAP@k)
      probability          binary only: one column, probability of `positive_class`
      class_probabilities  one column per class; `target_columns[i]` holds P(classes[i])
      value                regression: one numeric column
    """

    id_column: str | None
    target_columns: tuple[str, ...]
    kind: SubmissionKind
    # Original class values: in target_columns order for class_probabilities,
    # sorted otherwise. Empty for regression.
    classes: tuple[Any, ...] = ()
    positive_class: Any = None             # binary: the class whose probability is reported
    label_dtype: str = "object"            # dtype name of the target in train.csv
    sample_rows: int = 0                   # rows of sample_submission.csv (0 if none)
    # Every column of the submission, in the sample submission's order (empty: the id, then the targets).
    columns: tuple[str, ...] = ()
    # Columns copied from each row's test row, neither the id nor predicted (MLE-bench's insults: Date, Comment).
    passthrough: tuple[str, ...] = ()
    top_k: int = 1                         # label: how many ranked labels each row holds
    # A column of the sample submission numbering the test rows in order, from row_number_start (digit-recognizer's
    # ImageId 1..n): written as those numbers, neither predicted nor copied from the test table.
    row_number_column: str | None = None
    row_number_start: int = 0

    @property
    def all_columns(self) -> tuple[str, ...]:
        """The submission's header."""
        return self.columns or tuple(c for c in (self.id_column, *self.target_columns) if c)

    @property
    def copied_columns(self) -> tuple[str, ...]:
        """The columns taken from the test rows: the id and the passthrough columns, in header order."""
        return tuple(c for c in self.all_columns if c == self.id_column or c in self.passthrough)

    def to_json(self) -> dict:
        data = asdict(self)
        data["target_columns"] = list(self.target_columns)
        data["columns"] = list(self.all_columns)
        data["passthrough"] = list(self.passthrough)
        data["classes"] = [_plain(c) for c in self.classes]
        data["positive_class"] = _plain(self.positive_class)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "SubmissionFormat":
        data = dict(data)
        data["target_columns"] = tuple(data["target_columns"])
        data["columns"] = tuple(data.get("columns") or ())
        data["passthrough"] = tuple(data.get("passthrough") or ())
        data["classes"] = tuple(data.get("classes") or ())
        return cls(**data)


def _plain(value: Any) -> Any:
    """numpy scalars → Python scalars so the format serialises to JSON."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


__all__ = ["SubmissionFormat", "SubmissionKind", "field"]
