"""The one order of class labels: numbers and numeric strings by value, then the rest by text.

Labels read from CSV are often strings; sorted as text "10" < "2", which would
scramble the ordinal classes QWK weights, pick the wrong "larger" label for
binary F1, and order a task's classes differently from its metric's.
"""
from __future__ import annotations

import math
from typing import Any, Iterable


def as_number(value: Any) -> float | None:
    """The value as a finite number, if it is one or spells one ("3", "2.5")."""
    import numpy as np
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def class_sort_key(value: Any) -> tuple:
    """Sort key of a class label: numbers (and strings that spell one) by value first, then the rest by text."""
    number = as_number(value)
    return (0, number, "") if number is not None else (1, 0.0, str(value))


def natural_order(labels: Iterable[Any]) -> list[Any]:
    """The distinct labels in class_sort_key order."""
    return sorted(set(labels), key=class_sort_key)
