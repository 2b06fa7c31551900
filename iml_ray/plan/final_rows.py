"""The final fit on more rows: a sampled track's validation keeps its sample, its submission learns from more rows.

A track whose first fit had to take a sample (plan/first_fit.py) validates on it, and until now its submission's fit
took the same sample. The final fit only refits what the validation chose (no inner split, no early-stopped fits, no
choices), so on a large table it is a small part of a round: the validation's fits are read back from the round that
made them and only the refit grows with the rows. On New York's 2013 flights (261,876 rows, late arrival, AUC) the
first round's LightGBM fitted 78,308 rows; refitted on all of them in-process its test AUC went 0.788 -> 0.806:
more flights of the same day and hour carry that hour's delays.
"""
from __future__ import annotations

import math

from iml_ray.plan.repairs import Plans
from iml_ray.plan.round_facts import EVERY_ROW_SHARE, MIN_GROWTH, Improvement, RoundFacts

# Their refit's rounds grow with the rows (the template's _refit_validated) and each round costs more rows: a
# boosted family's final fit grows with the square of the rows' growth (digits_6k's LightGBM on pixels, 1,012 ->
# 6,117 rows, planned as linear at 32 s, ran out of its round at 52 s); the other families' about linearly. The
# traditional template's BOOSTED_FAMILIES, whose refits it scales.
BOOSTED = ("lightgbm", "catboost", "xgboost", "lightgbm_log")


def final_rows(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    cap = plans.train.max_train_rows
    if (plans.track.model_template != "traditional" or plans.train.final_train_rows or plans.train.holdout_folds
            or cap is None or cap >= EVERY_ROW_SHARE * facts.n_train):
        return None
    final = facts.final_fit_s()
    if not final:
        return None
    squared = sum(s for name, s in final.items() if name in BOOSTED)
    linear = sum(s for name, s in final.items() if name not in BOOSTED)
    # The rest of the round (the sandbox, the prep of every row, predicting, the validation's fits read back) stays;
    # the growth the time left buys: overhead + squared * g^2 + linear * g = budget.
    room = budget - facts.overhead_s
    if room <= 0:
        return None
    if squared > 0:
        growth = (-linear + math.sqrt(linear * linear + 4 * squared * room)) / (2 * squared)
    else:
        growth = room / max(linear, 1e-3)
    growth = min(growth, facts.n_train / cap)
    if growth < MIN_GROWTH:
        return None
    rows = facts.n_train if growth * cap >= EVERY_ROW_SHARE * facts.n_train else int(cap * growth)
    growth = rows / cap
    said = f"every one of the {facts.n_train}" if rows >= facts.n_train else f"{rows} of the {facts.n_train}"
    return Improvement(Plans(plans.prep, plans.track, plans.train.replace(final_train_rows=rows)), "final_rows",
                       f"the final fit on {said} rows (the validation's fits keep their sample of {cap})",
                       facts.overhead_s + squared * growth ** 2 + linear * growth)
