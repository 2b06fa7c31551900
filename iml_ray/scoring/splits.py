"""Seeded shuffled splits of n rows: one holdout, or k folds, stratified by class when labels are given.

numpy alone: the driver makes the run's holdout, and importing scikit-learn's model_selection (with scipy) there
cost 1.2 CPU-s while the agents' processes were starting, on the path to the first track.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def holdout_positions(n: int, fraction: float, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """ceil(fraction * n) of the positions 0..n-1 (at least one, and one fewer than n), sorted; with labels,
    each class holds its share of them (largest remainders, ties drawn at random)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    size = max(1, min(n - 1, math.ceil(fraction * n)))
    if labels is None:
        return np.sort(rng.permutation(n)[:size])
    _, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse)
    exact = counts * size / n
    quota = np.floor(exact).astype(int)
    # The rows left after each class's whole share go to the classes closest to their next row.
    tie_break = rng.permutation(len(counts))
    order = tie_break[np.argsort(-(exact - quota)[tie_break], kind="stable")]
    quota[order[: size - quota.sum()]] += 1
    held = [rng.permutation(np.flatnonzero(inverse == c))[:q] for c, q in enumerate(quota)]
    return np.sort(np.concatenate(held))


def fold_positions(n: int, k: int, seed: int, labels: np.ndarray | None = None) -> list[np.ndarray]:
    """k folds of the positions 0..n-1 that together hold each once, sizes within one row of each other; with
    labels, each class spread over the folds within one row too. Each fold sorted."""
    import numpy as np

    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if labels is not None:
        _, inverse = np.unique(labels, return_inverse=True)
        order = order[np.argsort(inverse[order], kind="stable")]     # grouped by class, shuffled within
    fold = np.empty(n, dtype=int)
    fold[order] = np.arange(n) % k
    return [np.flatnonzero(fold == i) for i in range(k)]
