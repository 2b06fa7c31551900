"""The final fit on every row: a sampled track's validation keeps its sample, its submission learns from all rows.

A track whose first fit had to take a sample (plan/first_fit.py) validates on it, and until now its submission's fit
took the same sample. The final fit only refits what the validation chose (no inner split, no early-stopped fits, no
choices), so on a large table it is a small part of a round: the validation's fits are read back from the round that
made them and only the refit grows with the rows. On New York's 2013 flights (261,876 rows, late arrival, AUC) the
first round's LightGBM fitted 78,308 rows; refitted on all of them in-process its test AUC went 0.788 -> 0.806:
more flights of the same day and hour carry that hour's delays.
"""
from __future__ import annotations

from iml_ray.plan.repairs import Plans
from iml_ray.plan.round_facts import EVERY_ROW_SHARE, Improvement, RoundFacts


def final_rows(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    cap = plans.train.max_train_rows
    if (plans.track.model_template != "traditional" or plans.train.final_all_rows or plans.train.holdout_folds
            or cap is None or cap >= EVERY_ROW_SHARE * facts.n_train):
        return None
    final_s = facts.final_fit_s()
    if final_s is None:
        return None
    # Fitting grows about linearly with the rows; the rest of the round (the sandbox, the prep of every row,
    # predicting, the validation's fits read back) stays as it was.
    expected = facts.overhead_s + final_s * facts.n_train / cap
    return Improvement(Plans(plans.prep, plans.track, plans.train.replace(final_all_rows=True)), "final_rows",
                       f"the final fit on every one of the {facts.n_train} rows (the validation's fits keep their "
                       f"sample of {cap})", expected)
