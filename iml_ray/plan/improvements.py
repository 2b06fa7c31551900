"""The rules' improvement steps: what a track tries once it has a verified candidate and time is left.

A verified candidate is where a track starts, not where it stops (issue 18: runs ended at a quarter to a half
of their budget). Each step re-plans the verified candidate to buy a better score with more compute, sized by
the measured wall time of the round it improves on, never by a constant cost model:

- rows:           a fit on a row sample grows geometrically towards every row (FLAML's sample growth);
- network_time:   a network that its time limit stopped trains longer;
- boosting_time:  LightGBM that the first round's time limit stopped trains longer (boosting_time_catboost,
                  boosting_time_xgboost: CatBoost or XGBoost that the round adding it stopped so);
- fine_tune:      a track on a frozen encoder's features fine-tunes the encoder instead (plan/fine_tuning.py);
- char_ngrams:    character n-grams (2 to 5, within words) beside the word terms of a TF-IDF text;
- text_words:     trees see a TF-IDF text's length and its most frequent words as columns (where they fit on
                  other columns and saw none of the text);
- search:         a Ray Tune search where the verified round had none (plan/searches.py, as a family's search);
- bagging:        on a small table, k models per family on k folds, each early-stopped on its own fold,
                  chosen on out-of-fold outputs and averaged;
- a family:       CatBoost, LightGBM on log1p of a skewed target, extremely randomised trees, XGBoost,
                  k-nearest neighbours, one per round, beside the families the track has (each kept, blended or
                  dropped by the inner split's ensemble selection; a family whose library is not installed is not
                  proposed);
- finer_boosting: LightGBM with half the learning rate and twice the rounds;
- a family's search: a Ray Tune search over CatBoost's, XGBoost's or the randomised trees' settings, for a
                  family the track's blend uses;
- bagging_repeats: a bagged track draws its k folds on twice as many shuffles of the rows (AutoGluon's bag
                  sets), reading the fits of the shuffles it had back: what a small table's track does with
                  the time every other step left.

The track keeps a round's candidate only when it scores better on the framework's holdout; a step that does
not pay off is not tried again, and a round that fails or runs out of time leaves the verified candidate as
it was (track/improve.py).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from typing import Callable

from iml_ray.plan.final_rows import final_rows
from iml_ray.plan.fine_tuning import fine_tune
from iml_ray.plan.first_fit import MIN_BOOSTED_LIMIT_S, limited_fits, scaled_lightgbm_limit
from iml_ray.plan.repairs import Plans
from iml_ray.plan.round_facts import EVERY_ROW_SHARE, MIN_GROWTH, PLANNED_SHARE, Improvement, RoundFacts
from iml_ray.plan.searches import FAMILY_SEARCH_SPACES, family_search, search
from iml_ray.plan.text_improvements import char_ngrams, text_words, trees_have_columns

MAX_GROWTH = 4.0
MIN_LEARNING_RATE = 0.02
MAX_BOOSTING_ROUNDS = 20000
# Steps that may follow themselves while they pay off (each time with more rows, or a longer training).
REPEATABLE = ("rows", "network_time", "boosting_time", "boosting_time_catboost", "boosting_time_xgboost",
              "bagging_repeats")
# Steps that leave the validation as it was (its score is the best round's): kept when they verify, scoring no worse.
SAME_VALIDATION = ("final_rows",)
BAGGING_FOLDS = 5
BAGGING_MAX_ROWS = 50_000       # "small": where averaging k fits still pays for its k-fold cost
# A bag's fit against the mean fit of the round before (its inner fits and its cheaper refits): penguins' CatBoost,
# 1.52 s per bag fit against 1.14 s per fit the round before (by hand, 5 folds, one thread).
BAG_FIT_COST = 1.3
# Shuffles a bagged track may draw its folds on (AutoGluon's num_bag_sets), doubled by each round that pays off: a
# cap so that a long budget's track ends, at 40 models per family under 5 folds.
MAX_BAGGING_REPEATS = 8
# The families a traditional track may add, each with its library and what a round with it costs against the
# round it improves on (the family is fitted twice, inner split and refit, beside what the round fitted).
# CatBoost's ordered boosting is the slowest per round; a forest of 300 trees and XGBoost's hist about LightGBM's.
FAMILY_COSTS = {"catboost": 3.0, "extra_trees": 2.0, "xgboost": 2.0, "knn": 1.5, "lightgbm_log": 2.0}
FAMILY_LIBRARIES = {"catboost": "catboost", "extra_trees": "sklearn", "xgboost": "xgboost", "knn": "sklearn",
                    "lightgbm_log": "lightgbm"}
FAMILY_NAMES = {"catboost": "CatBoost", "extra_trees": "extremely randomised trees", "xgboost": "XGBoost",
                "knn": "k-nearest neighbours", "lightgbm_log": "LightGBM on log1p of the target"}
# Families an improvement round adds only where the plan prepared them (their settings in the track's families):
# LightGBM on log1p of the target needs a skewed, non-negative regression target (the skewed-target card).
PLANNED_FAMILIES = ("lightgbm_log",)
KNN_MAX_ROWS = 20_000           # neighbours are searched by brute force: prediction grows with train rows x rows
# The traditional template's MIN_INNER_ROWS: a table with fewer rows is fitted as one regularised linear model
# whatever the plan says, so no step of its traditional track can change the candidate (a 4-row table's track
# spent a 60 s budget on rounds that all fitted the same model, and the network waiting for it never ran).
TRADITIONAL_MIN_ROWS = 30
# The boosted families stop their early-stopped fit at a time limit, so their round fits the time it is given:
# per pipeline fit, the early-stopped fit (up to the limit) and the refit on 1/0.85 the rows for 1/0.85 the
# rounds (about 1.4 times the limit).
TIME_LIMITED_FAMILIES = ("catboost", "xgboost")
# A boosted family whose early-stopped fit is still improving may take up to this share of the time left, whatever
# its estimate (a multiple of LightGBM's fit) says: diamonds at 300 s, CatBoost stopped at 5 s per fit reached 478
# rounds (-552 RMSE on the inner split), at 25 s 942 rounds (-540; the test RMSE 535.5 -> 530.2). Early stopping
# ends a fit that has converged long before its limit, so a small table's round still takes its estimate.
FAMILY_SHARE_OF_TIME_LEFT = 1 / 3


def next_improvement(plans: Plans, facts: RoundFacts, seconds_left: float,
                     exhausted: frozenset[str] = frozenset()) -> Improvement | None:
    """The first step that fits the time left and has not been exhausted (tried without paying off, or
    not repeatable); None when the track has run out of improvements."""
    if plans.track.model_template == "traditional" and facts.n_train < TRADITIONAL_MIN_ROWS:
        return None
    budget = PLANNED_SHARE * seconds_left
    for step in STEPS:
        found = step(plans, facts, budget)
        if found is not None and found.step not in exhausted and found.expected_s <= budget:
            return found
    return None


def _more_rows(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    cap = plans.train.max_train_rows
    # A sample within a few rows of all of them is all of them (bbc_news: 1,689 of 1,701 rows; the round that took the
    # other 12 cost 15 s of a 90 s budget and changed nothing).
    if cap is None or cap >= EVERY_ROW_SHARE * facts.n_train:
        return None
    # Fitting grows about linearly with the rows (trees, linear models, a network's epochs).
    growth = min(MAX_GROWTH, budget / max(facts.fresh_s, 1.0))
    if growth < MIN_GROWTH:
        return None
    rows = min(facts.n_train, int(cap * growth))
    new_cap = None if rows >= EVERY_ROW_SHARE * facts.n_train else rows
    train = plans.train.replace(max_train_rows=new_cap)
    said = "every" if new_cap is None else f"{new_cap} of"
    # A boosting round costs about as many times more as there are rows: the limit grows with them.
    track = scaled_lightgbm_limit(plans.track, rows / cap)
    return Improvement(Plans(plans.prep, track, train), "rows",
                       f"fit on {said} {facts.n_train} rows (was {cap})", facts.fresh_s * (rows / cap))


def _longer_boosting(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    """LightGBM that its first round's time limit stopped while it still improved trains up to MAX_GROWTH times
    longer; the other families' fits are read back."""
    track = plans.track
    limit = track.lightgbm.get("time_limit_s")
    if track.model_template != "traditional" or "lightgbm" not in _time_stopped(facts) or not limit:
        return None
    new_limit = _longer_limit(plans, facts, budget, float(limit))
    if new_limit is None:
        return None
    return Improvement(Plans(plans.prep, scaled_lightgbm_limit(track, new_limit / float(limit)), plans.train),
                       "boosting_time", f"LightGBM's early-stopped fits may take {new_limit:.0f} s (was {float(limit):g} "
                       "s, which stopped them while they still improved)",
                       facts.without_fits_but() + limited_fits(plans) * new_limit)


def _longer_family_boosting(name: str) -> Callable[[Plans, RoundFacts, float], Improvement | None]:
    """CatBoost or XGBoost, added by a round that sized its time limit to the time then left, trains up to
    MAX_GROWTH times longer when that limit stopped it while early stopping would have gone on (adult and diamonds
    at 90 s: CatBoost stopped at 4 s in a blend that weighs it as much as LightGBM)."""
    def longer(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
        track = plans.track
        limit = (track.families.get(name) or {}).get("time_limit_s")
        if (track.model_template != "traditional" or name not in track.models or name not in _time_stopped(facts)
                or not limit):
            return None
        new_limit = _longer_limit(plans, facts, budget, float(limit))
        if new_limit is None:
            return None
        families = {**track.families, name: {**track.families[name], "time_limit_s": round(new_limit, 1)}}
        return Improvement(Plans(plans.prep, track.replace(families=families), plans.train), f"boosting_time_{name}",
                           f"{FAMILY_NAMES[name]}'s early-stopped fits may take {new_limit:.0f} s (was "
                           f"{float(limit):g} s, which stopped them while they still improved)",
                           facts.without_fits_but() + limited_fits(plans) * new_limit)

    longer.__name__ = f"_longer_{name}"
    return longer


def _time_stopped(facts: RoundFacts) -> tuple[str, ...]:
    """The families whose early-stopped fits a time limit ended in the round (the model's describe_model)."""
    model = (facts.run_info.get("final") or {}).get("model") or {}
    return tuple(model.get("time_stopped") or ())


def _longer_limit(plans: Plans, facts: RoundFacts, budget: float, limit: float) -> float | None:
    """A time-stopped family's longer limit: up to MAX_GROWTH times the old, as the time left allows the round
    (its fits at the new limit, the other families read back); None below MIN_GROWTH times."""
    new_limit = min(MAX_GROWTH * limit, (budget - facts.without_fits_but()) / limited_fits(plans))
    return new_limit if new_limit >= MIN_GROWTH * limit else None


def _longer_network(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    track = plans.track
    model = (facts.run_info.get("validation") or {}).get("model") or {}
    limit = track.nn.get("time_limit_s")
    if track.model_template != "custom_nn" or model.get("stopped") != "time limit" or not limit:
        return None
    # The pipeline trains twice (validation fit, final fit), or k times under k-fold validation, each up to the
    # limit; the rest is overhead.
    fits = plans.train.pipeline_fits
    overhead = max(0.0, facts.seconds - fits * float(limit))
    new_limit = min(MAX_GROWTH * float(limit), (budget - overhead) / fits)
    if new_limit < MIN_GROWTH * float(limit):
        return None
    nn = {**track.nn, "time_limit_s": round(new_limit, 1)}
    return Improvement(Plans(plans.prep, track.replace(nn=nn), plans.train), "network_time",
                       f"the network trains up to {new_limit:.0f} s (was {float(limit):.0f} s, stopped by its time "
                       f"limit at epoch {model.get('epochs', '?')})", overhead + fits * new_limit)


def _bagging(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    track = plans.track
    if track.model_template != "traditional" or track.bagging_folds or facts.n_train > BAGGING_MAX_ROWS:
        return None
    return Improvement(Plans(plans.prep, track.replace(bagging_folds=BAGGING_FOLDS), plans.train), "bagging",
                       f"{BAGGING_FOLDS}-fold bagging: {BAGGING_FOLDS} models per family, averaged",
                       _bagged_round_s(plans.train.pipeline_fits * BAGGING_FOLDS, facts))


def _more_bags(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    track = plans.track
    repeats = track.bagging_repeats
    if track.model_template != "traditional" or not track.bagging_folds or repeats >= MAX_BAGGING_REPEATS:
        return None
    more = min(MAX_BAGGING_REPEATS, 2 * repeats)
    k = track.bagging_folds
    # The shuffles the round before drew are read back; the new ones cost what its bag fits cost each.
    expected = _bagged_round_s(plans.train.pipeline_fits * k * (more - repeats), facts, fit_cost=1.0,
                               uncounted_s=facts.seconds * (more - repeats) / repeats)
    return Improvement(Plans(plans.prep, track.replace(bagging_repeats=more), plans.train), "bagging_repeats",
                       f"{k}-fold bagging on {more} shuffles of the rows (was {repeats}): {k * more} models per family, "
                       "averaged", expected)


def _bagged_round_s(fits: int, facts: RoundFacts, fit_cost: float = BAG_FIT_COST,
                    uncounted_s: float | None = None) -> float:
    """Every family fitted `fits` times (k in each pipeline fit), at the seconds per fit the round measured times
    fit_cost (1 when that round was bagged already). The round's own fits were fewer than "an inner fit and a refit"
    per family: only the families a fit's blend keeps are refitted (penguins under 5 folds: CatBoost made 7 fits in
    the round before bagging, 30 under it). uncounted_s: the estimate when the round did not count its fits."""
    families = facts.fitted_families()
    per_fit = {name: facts.family_fit_s(name) for name in families}
    if not families or None in per_fit.values():
        return facts.fresh_s * BAGGING_FOLDS / 2 if uncounted_s is None else uncounted_s
    return facts.overhead_s + sum(fit_cost * fits * seconds for seconds in per_fit.values())


@lru_cache(maxsize=None)
def family_installed(name: str) -> bool:
    return importlib.util.find_spec(FAMILY_LIBRARIES[name]) is not None


def _family(name: str) -> Callable[[Plans, RoundFacts, float], Improvement | None]:
    def add(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
        track = plans.track
        if track.model_template != "traditional" or name in track.models or not family_installed(name):
            return None
        if name == "knn" and facts.n_train > KNN_MAX_ROWS:
            return None
        if name in PLANNED_FAMILIES and name not in track.families:
            return None
        if name != "knn" and not trees_have_columns(plans):
            return None
        change = f"{FAMILY_NAMES[name]} beside " + " and ".join(track.models)
        # The family's own fits cost FAMILY_COSTS - 1 rounds of the plan's first families; the others are read back.
        rest = facts.without_fits_but()
        own = (FAMILY_COSTS[name] - 1.0) * facts.without_fits_but("lightgbm", "linear")
        families = dict(track.families)
        if name in TIME_LIMITED_FAMILIES:
            # What the round may add, shared by the family's fits (two pipeline fits, or k under k folds). The
            # limit bounds them; a small table's fits end before it.
            fits = limited_fits(plans)
            allowed = min(max(rest + own, FAMILY_SHARE_OF_TIME_LEFT * budget), budget)
            limit = max(MIN_BOOSTED_LIMIT_S, (allowed - rest) / fits)
            own = min(own, fits * limit)
            families[name] = {**families.get(name, {}), "time_limit_s": round(limit, 1)}
            change += f" (its early-stopped fits stop at {limit:.0f} s)"
        expected = rest + own
        return Improvement(Plans(plans.prep, track.replace(models=track.models + (name,), families=families),
                                 plans.train), name, change, expected)

    add.__name__ = f"_add_{name}"
    return add


def _finer_boosting(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    track = plans.track
    if "lightgbm" not in track.models or track.model_template != "traditional":
        return None
    # A search that chose the learning rate chose it with its trials' few rounds in mind: halving it (and doubling
    # the rounds early stopping may take) is the same step on the searched settings, which later rounds keep
    # (adult at 300 s: every other step tried, 115 s of the budget left unused).
    tuned = dict(facts.run_info.get("tuned_params") or {})
    searched = "learning_rate" in tuned
    lgb = dict(track.lightgbm)
    rate = float(tuned["learning_rate"] if searched else lgb.get("learning_rate", 0.05))
    if rate <= MIN_LEARNING_RATE:
        return None
    finer = round(max(MIN_LEARNING_RATE, rate / 2), 4)
    lgb.update(max_rounds=min(MAX_BOOSTING_ROUNDS, 2 * int(lgb.get("max_rounds", 3000))),
               early_stopping_rounds=int(1.5 * int(lgb.get("early_stopping_rounds", 100))))
    if lgb.get("time_limit_s"):
        lgb["time_limit_s"] = round(2 * float(lgb["time_limit_s"]), 1)     # twice the rounds
    if searched:
        tuned["learning_rate"] = finer
    else:
        lgb["learning_rate"] = finer
    return Improvement(Plans(plans.prep, track.replace(lightgbm=lgb), plans.train), "finer_boosting",
                       f"LightGBM learning rate {rate:g} → {finer:g}{' (the search chose it)' if searched else ''}, "
                       f"up to {lgb['max_rounds']} rounds",
                       facts.without_fits_but() + 2 * facts.family_s("lightgbm")
                       if facts.family_s("lightgbm") else 2 * facts.seconds,
                       tuned_params=tuned if searched else None)


# A sampled track's submission learns from every row first: the cheapest round of a large table and its largest gain.
# A boosted family its time limit stopped while it still improved trains longer before anything else is added: it
# is in the blend already (adult at 90 s: CatBoost stopped at 4 s with half the blend's weight; at 9 s the holdout
# AUC went 0.92487 -> 0.92518). Fine-tuning a frozen encoder first when an epoch of it fits (a pretrained encoder
# adapted to the task is where text and image tasks are won when the hardware allows it); characters first where
# there is TF-IDF text (the linear model on TF-IDF is where text tasks are won on a CPU); CatBoost before the search
# and the bagging: a second strong, different family buys more than tuning the first (AutoGluon's experience), and
# the bagging then averages both. LightGBM on a skewed target's log after the search: a fit as cheap as the first
# LightGBM that errs differently (relative errors), for the blend and the bagging to weigh; before the search it took
# the search's time at 90 s (nls wages, IMDB votes: its holdout gain under the noise bar, the search's above it).
STEPS: tuple[Callable[[Plans, RoundFacts, float], Improvement | None], ...] = (
    final_rows, _more_rows, _longer_network, _longer_boosting, *(_longer_family_boosting(name) for name in TIME_LIMITED_FAMILIES),
    fine_tune, char_ngrams, _family("catboost"), search, _family("lightgbm_log"), _bagging, _family("extra_trees"),
    _family("xgboost"), _family("knn"), text_words, _finer_boosting,
    *(family_search(name, FAMILY_NAMES[name]) for name in FAMILY_SEARCH_SPACES), _more_bags)
