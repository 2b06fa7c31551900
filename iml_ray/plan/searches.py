"""The rules' search steps: a Ray Tune search over LightGBM's settings (the plan's space) or over another family's,
in an improvement round that has the round to itself (plan/improvements.py orders the steps).

A round with a search runs the search first, then the fits the round before made, with what the search chose. The
search ends at its seconds; the searched family's early-stopped fits stop at a time limit sized to what the search
leaves of the round, since the settings a search chooses may fit far slower than the defaults the round measured.
"""
from __future__ import annotations

import math
from typing import Callable

from iml_ray.blueprint import TrackPlan
from iml_ray.plan.first_fit import MIN_BOOSTED_LIMIT_S, limited_fits, scaled_lightgbm_limit
from iml_ray.plan.repairs import Plans
from iml_ray.plan.resources import MAX_TUNE_S
from iml_ray.plan.round_facts import Improvement, RoundFacts

# A search in an improvement round has the round to itself: it may take half of the planned time, and a short one
# still pays off there (the alternative is the track stopping), unlike in a first round that must leave room.
SEARCH_SHARE = 0.5
MIN_SEARCH_S = 10.0
# What a search takes beyond its seconds: it ends at its deadline, Ray Tune's start-up included, and returns a
# second later whatever Tune still waits for (codegen/templates/search_run.py.tmpl); then Ray's shutdown. 0.1-2.0 s
# past 6 s searches on a 2-CPU cluster (benchmarks/search_deadline.py); when Tune counted its own budget from its
# first step, 2.4 s the median over eight rounds' searches at 90 s and 12.1 s the worst.
SEARCH_OVERRUN_S = 3.0
# The search refuses an inner validation split under this many rows (the tuning template's tune.min_valid_rows:
# dozens of trials scored on a hundred rows pick its noise). A round planned for a search it refuses only refits
# what the round before fitted: penguins and titanic at 90 s spent 8-10 s on one.
MIN_SEARCH_VALID_ROWS = 300
# Ray Tune spaces of the other families, by "family:setting" (the traditional template routes each to its family).
# LightGBM's is the plan's own space (guideline_rules.lightgbm_search); k-nearest neighbours choose k on the inner
# split already. A search starts from the family's defaults, so it can only add to them.
FAMILY_SEARCH_SPACES = {
    "catboost": {"catboost:learning_rate": ["loguniform", 0.02, 0.3], "catboost:depth": ["int", 4, 10],
                 "catboost:l2_leaf_reg": ["loguniform", 1.0, 30.0]},
    "xgboost": {"xgboost:learning_rate": ["loguniform", 0.02, 0.3], "xgboost:max_depth": ["int", 3, 10],
                "xgboost:min_child_weight": ["loguniform", 0.5, 20.0], "xgboost:subsample": ["uniform", 0.5, 1.0],
                "xgboost:colsample_bytree": ["uniform", 0.4, 1.0], "xgboost:lambda": ["loguniform", 0.01, 30.0]},
    "extra_trees": {"extra_trees:min_samples_leaf": ["logint", 1, 20],
                    "extra_trees:max_features": ["choice", ["sqrt", 0.3, 0.5, 0.7, 1.0]]},
}


def _family_of(setting: str) -> str:
    return setting.split(":", 1)[0] if ":" in setting else "lightgbm"


def _search_seconds(rest_s: float, budget: float) -> float | None:
    # The search runs before the fits, which then take what they take (rest_s), and ends a little after its time.
    search_s = min(MAX_TUNE_S, SEARCH_SHARE * budget, budget - rest_s - SEARCH_OVERRUN_S)
    return search_s if search_s >= MIN_SEARCH_S else None


def search_has_rows(plans: Plans, n_train: int) -> bool:
    """Whether the validation fit's inner split (what a search scores its trials on) has the rows a search needs:
    the fit's rows are the labelled rows less the holdout (a fold of k), at most the sample's."""
    train = plans.train
    held = n_train / train.holdout_folds if train.holdout_folds >= 2 else train.holdout_fraction * n_train
    rows = n_train - held if train.max_train_rows is None else min(n_train - held, train.max_train_rows)
    needed = int(plans.track.tune.get("min_valid_rows", MIN_SEARCH_VALID_ROWS))
    return math.ceil(train.inner_valid_fraction * rows) >= needed


def search(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    """A search over the plan's own space (LightGBM's, or the network's)."""
    space = plans.track.tune.get("space") or {}
    tuned = facts.run_info.get("tuned_params") or {}
    if not facts.can_search or not space or any(_family_of(k) != "lightgbm" for k in space) \
            or any(_family_of(k) == "lightgbm" for k in tuned) or not search_has_rows(plans, facts.n_train):
        return None
    rest = facts.without_fits_but("lightgbm")
    search_s = _search_seconds(_fits_after(plans, "lightgbm", facts, rest), budget)
    if search_s is None:
        return None
    return Improvement(Plans(plans.prep, _searched_limit(plans, "lightgbm", facts, budget, search_s), plans.train),
                       "search", f"a Ray Tune search over the model's settings (about {search_s:.0f} s)",
                       rest + search_s + SEARCH_OVERRUN_S, search_s=round(search_s, 1))


def _time_limit(track: TrackPlan, family: str) -> float | None:
    settings = track.lightgbm if family == "lightgbm" else track.families.get(family) or {}
    return settings.get("time_limit_s")


def _fits_after(plans: Plans, family: str, facts: RoundFacts, rest: float) -> float:
    """What the round's fits after its search may take: as the round before measured them, and at least the
    searched family's fits stopped at the floor of a boosted fit's limit (the search may choose slower settings)."""
    if not _time_limit(plans.track, family):
        return rest
    return max(rest, facts.without_fits_but() + limited_fits(plans) * MIN_BOOSTED_LIMIT_S)


def _searched_limit(plans: Plans, family: str, facts: RoundFacts, budget: float, search_s: float) -> TrackPlan:
    """The searched family's time limit, shortened to share what the search leaves of the round between its fits.
    The settings a search chooses may fit far slower than the defaults the round measured (house_prices at 90 s:
    LightGBM's fits 4.2 s at its defaults, 16.7 s at the searched ones, each early-stopped fit stopped at the first
    round's 3.6 s limit, and the round ran out of its time after the search)."""
    track = plans.track
    limit = _time_limit(track, family)
    if not limit:
        return track
    allowed = (budget - search_s - SEARCH_OVERRUN_S - facts.without_fits_but()) / limited_fits(plans)
    new_limit = round(max(MIN_BOOSTED_LIMIT_S, min(float(limit), allowed)), 1)
    if new_limit >= float(limit):
        return track
    if family == "lightgbm":
        return scaled_lightgbm_limit(track, new_limit / float(limit))
    return track.replace(families={**track.families, family: {**track.families[family], "time_limit_s": new_limit}})


def family_search(name: str, display_name: str) -> Callable[[Plans, RoundFacts, float], Improvement | None]:
    """A search over another family's settings, once that family is part of the track's blend."""
    def search_family(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
        track = plans.track
        model = (facts.run_info.get("validation") or {}).get("model") or {}
        tuned = facts.run_info.get("tuned_params") or {}
        if (not facts.can_search or track.model_template != "traditional" or name not in track.models
                or not (model.get("weights") or {}).get(name) or any(_family_of(k) == name for k in tuned)
                or not search_has_rows(plans, facts.n_train)):
            return None
        rest = facts.without_fits_but(name)
        search_s = _search_seconds(_fits_after(plans, name, facts, rest), budget)
        if search_s is None:
            return None
        tune = {**track.tune, "space": FAMILY_SEARCH_SPACES[name]}
        limited = _searched_limit(plans, name, facts, budget, search_s)
        return Improvement(Plans(plans.prep, limited.replace(tune=tune), plans.train), f"search_{name}",
                           f"a Ray Tune search over {display_name}'s settings (about {search_s:.0f} s)",
                           rest + search_s + SEARCH_OVERRUN_S, search_s=round(search_s, 1))

    search_family.__name__ = f"search_{name}"
    return search_family
