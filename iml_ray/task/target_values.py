"""What a target must hold for a model to be learnt and validated: two values, in enough labelled rows."""
from __future__ import annotations

import pandas as pd

from iml_ray.errors import TaskError

# Fewer labelled rows than this cannot be validated at all: k-fold validation needs a fold to predict and
# others to fit on, with room for two target values.
MIN_LABELLED_ROWS = 4


def check_target_values(values: pd.Series, name: str, train_name: str) -> None:
    """A target must hold at least two distinct values, in enough rows to validate a model on."""
    if values.isna().all():
        raise TaskError(f"the target '{name}' is empty in every row of {train_name}",
                        "Fill in the target values, or name the right column in task.yaml as `target:`.")
    present = values.dropna()
    if len(present) < MIN_LABELLED_ROWS:
        raise TaskError(f"{train_name} has {len(present)} labelled row(s) of '{name}': too few to validate a model "
                        f"(at least {MIN_LABELLED_ROWS} are needed)", "Add labelled rows to the train table.")
    if present.nunique() < 2:
        only = present.iloc[0].item() if hasattr(present.iloc[0], "item") else present.iloc[0]
        raise TaskError(f"the target '{name}' has a single value ({only!r}) in {train_name}",
                        "A model needs at least two distinct target values to learn from.")
