import numpy as np
import pytest

from iml_ray.scoring.splits import fold_positions, holdout_positions


@pytest.mark.parametrize("n,fraction", [(10, 0.2), (101, 0.2), (5000, 0.1), (3, 0.5)])
def test_a_holdout_holds_the_ceiling_of_its_fraction_of_distinct_rows_and_its_seed_decides_which(n, fraction):
    held = holdout_positions(n, fraction, seed=7)
    assert len(held) == min(n - 1, int(np.ceil(fraction * n)))
    assert len(set(held.tolist())) == len(held) and held.min() >= 0 and held.max() < n
    assert held.tolist() == sorted(held.tolist())
    assert held.tolist() == holdout_positions(n, fraction, seed=7).tolist()
    if n > 10:
        assert held.tolist() != holdout_positions(n, fraction, seed=8).tolist()


def test_a_stratified_holdout_holds_each_class_in_its_share():
    rng = np.random.default_rng(0)
    labels = rng.choice(np.array(["a", "b", "c"]), size=1003, p=[0.7, 0.25, 0.05])
    held = holdout_positions(len(labels), 0.2, seed=3, labels=labels)
    assert len(held) == int(np.ceil(0.2 * len(labels)))
    for c in "abc":
        share = (labels == c).sum() * len(held) / len(labels)
        assert abs((labels[held] == c).sum() - share) < 1.0


@pytest.mark.parametrize("seed", range(4))
def test_the_row_two_classes_share_goes_to_one_of_them(seed):
    labels = np.array(["x"] * 3 + ["y"] * 7)          # each class's share of five rows is 1.5 and 3.5
    held = holdout_positions(10, 0.5, seed=seed, labels=labels)
    assert len(held) == 5 and sorted([(labels[held] == "x").sum(), (labels[held] == "y").sum()]) in ([1, 4], [2, 3])


@pytest.mark.parametrize("stratified", [False, True])
def test_folds_hold_every_row_once_in_near_equal_parts_and_spread_each_class(stratified):
    rng = np.random.default_rng(1)
    labels = rng.choice(np.array([0, 1]), size=303, p=[0.8, 0.2])
    folds = fold_positions(303, 5, seed=2, labels=labels if stratified else None)
    assert sorted(np.concatenate(folds).tolist()) == list(range(303))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    if stratified:
        ones = [int(labels[f].sum()) for f in folds]
        assert max(ones) - min(ones) <= 1
    assert [f.tolist() for f in folds] == [f.tolist() for f in fold_positions(303, 5, 2, labels if stratified else None)]
    assert [f.tolist() for f in folds] != [f.tolist() for f in fold_positions(303, 5, 3, labels if stratified else None)]
