"""Anytime tracks (issue 18): after its first verified candidate a track improves it while time is left, keeps a
round only when it scores better on the holdout, and never loses what it had."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import binary_frames, review_frames, rules_agents, traditional_job, write_task

from iml_ray.blueprint import PrepPlan, TrackPlan, TrainPlan
from iml_ray.plan import improvements
from iml_ray.plan.improvements import RoundFacts, next_improvement
from iml_ray.plan.repairs import Plans
from iml_ray.task.inference import analyze_task
from iml_ray.track.loop import run_track

TRADITIONAL = TrackPlan("traditional", lightgbm={"learning_rate": 0.1, "max_rounds": 1000, "early_stopping_rounds": 50},
                        tune={"space": {"num_leaves": ["logint", 8, 128]}})
NETWORK = TrackPlan("custom_nn", models=("nn",), model_template="custom_nn", nn={"time_limit_s": 10.0},
                    tune={"space": {"lr": ["loguniform", 1e-4, 1e-2]}})


def _facts(seconds=10.0, n_train=10_000, can_search=False, stopped=None, tuned=None):
    info = {"validation": {"model": {"stopped": stopped, "epochs": 7}}, "tuned_params": tuned or {}}
    return RoundFacts(seconds, info, n_train, can_search)


def test_a_sampled_fit_grows_geometrically_by_the_measured_time_then_takes_every_row():
    plans = Plans(PrepPlan(), TRADITIONAL, TrainPlan(max_train_rows=2000))
    step = next_improvement(plans, _facts(seconds=10.0), seconds_left=100.0)
    assert step.step == "rows" and step.plans.train.max_train_rows == 8000       # x4 at most
    assert step.expected_s == pytest.approx(40.0)
    smaller = next_improvement(plans, _facts(seconds=30.0), seconds_left=100.0)
    assert smaller.plans.train.max_train_rows == int(2000 * 100 / 30)              # what the time left buys
    last = next_improvement(Plans(PrepPlan(), TRADITIONAL, TrainPlan(max_train_rows=8000)), _facts(seconds=10.0), 100.0)
    assert last.plans.train.max_train_rows is None and "every 10000 rows" in last.change
    # Too little time for 1.5x the rows: the next step that fits (finer boosting needs 2x: it does not either).
    assert next_improvement(plans, _facts(seconds=70.0), seconds_left=100.0) is None
    # A sample within 5% of every row is every row: no round for the few it left out.
    almost = Plans(PrepPlan(), TRADITIONAL, TrainPlan(max_train_rows=9600))
    assert next_improvement(almost, _facts(seconds=10.0), seconds_left=100.0).step != "rows"


def test_a_sampled_tracks_first_step_refits_its_submission_on_more_rows_sized_by_its_final_fit():
    """The final fit's own seconds (the process's fits after the validation's): a boosted family's grow with the
    square of the rows' growth (its rounds grow with them too), the others' linearly; the rest of the round stays.
    Every row when the time left allows, else the rows it buys. Only for a sampled traditional track, once, and not
    under k folds."""
    info = {"validation": {"model": {"fits": {"made_s": 6.0, "seconds": {"lightgbm": 5.0, "linear": 1.0}}}},
            "final": {"model": {"fits": {"made_s": 9.0, "seconds": {"lightgbm": 7.0, "linear": 2.0}}}}}
    facts = RoundFacts(27.0, info, 8000, False)
    assert facts.final_fit_s() == {"lightgbm": pytest.approx(2.0), "linear": pytest.approx(1.0)}
    sampled = Plans(PrepPlan(), TRADITIONAL, TrainPlan(max_train_rows=2000))
    step = next_improvement(sampled, facts, seconds_left=60.0)
    assert step.step == "final_rows" and step.plans.train.final_train_rows == 8000
    assert step.plans.train.max_train_rows == 2000 and "every one of the 8000 rows" in step.change
    assert step.expected_s == pytest.approx((27.0 - 9.0) + 2.0 * 4 ** 2 + 1.0 * 4)
    # Less time: the rows it buys (18 + 2 g^2 + g = 40: g = 3.076).
    fewer = next_improvement(sampled, facts, seconds_left=40.0)
    assert fewer.step == "final_rows" and fewer.plans.train.final_train_rows == int(2000 * 3.0760)
    assert fewer.expected_s == pytest.approx(40.0, abs=0.1)
    # Done once: then the validation's rows grow, the final fit keeping its rows.
    after = next_improvement(step.plans, facts, seconds_left=200.0)
    assert after.step == "rows" and after.plans.train.final_train_rows == 8000
    assert next_improvement(Plans(PrepPlan(), TRADITIONAL, TrainPlan()), facts, 60.0).step != "final_rows"
    folds = Plans(PrepPlan(), TRADITIONAL, TrainPlan(max_train_rows=2000, holdout_folds=5))
    assert next_improvement(folds, facts, 60.0).step != "final_rows"
    assert next_improvement(Plans(PrepPlan(), NETWORK, TrainPlan(max_train_rows=2000)), facts, 60.0).step != "final_rows"


def test_a_table_too_small_for_anything_but_one_linear_model_has_no_traditional_steps():
    plans = Plans(PrepPlan(numeric=("x",)), TRADITIONAL, TrainPlan())
    assert next_improvement(plans, _facts(seconds=5.0, n_train=30), seconds_left=100.0).step == "catboost"
    assert next_improvement(plans, _facts(seconds=5.0, n_train=29), seconds_left=100.0) is None
    # The template's own threshold: below it every fit is the linear model (or the prior).
    from iml_ray.plan.improvements import TRADITIONAL_MIN_ROWS

    template = (Path(__file__).resolve().parents[2] / "iml_ray" / "codegen" / "templates" / "traditional.py.tmpl").read_text()
    assert f"MIN_INNER_ROWS = {TRADITIONAL_MIN_ROWS}\n" in template


def test_catboost_or_xgboost_stopped_by_the_limit_its_round_gave_it_trains_longer():
    """adult and diamonds at 90 s: the round adding CatBoost sized its limit to the time then left (4 s), the limit
    stopped its fits while they still improved, and the blend weighed it as much as LightGBM. A later round lets the
    stopped family train longer, its fits at the new limit, the others read back."""
    limited = TRADITIONAL.replace(models=("lightgbm", "linear", "catboost"),
                                  families={"catboost": {"time_limit_s": 4.0}})
    plans = Plans(PrepPlan(numeric=("x",)), limited, TrainPlan())
    fits = {"seconds": {"lightgbm": 5.0, "linear": 1.0, "catboost": 16.0}, "counts": {"lightgbm": 4, "catboost": 4}}
    info = {"final": {"model": {"time_stopped": ["catboost"], "fits": fits}}, "tuned_params": {}}
    facts = RoundFacts(30.0, info, 10_000, False)
    exhausted = frozenset({"search", "bagging", "extra_trees", "xgboost", "knn", "finer_boosting"})

    def step(facts, seconds_left):
        return next_improvement(plans, facts, seconds_left, exhausted)

    longer = step(facts, 200.0)
    assert longer.step == "boosting_time_catboost" and longer.plans.track.families["catboost"]["time_limit_s"] == 16.0
    # Its fits at the new limit: the validation's fit and refit, the final fit's refit (1/0.8 the rounds and rows).
    assert longer.expected_s == pytest.approx(facts.without_fits_but() + (2.4 + 1.4 / 0.8 ** 2) * 16.0)
    assert longer.plans.track.lightgbm == limited.lightgbm and longer.plans.track.models == limited.models
    # As much longer as the time left allows, and not at all below 1.5x.
    assert 6.0 <= step(facts, 60.0).plans.track.families["catboost"]["time_limit_s"] < 16.0
    assert step(facts, 30.0) is None
    # Early stopping ended its fits: no longer round.
    assert step(RoundFacts(30.0, {"final": {"model": {"fits": fits}}, "tuned_params": {}}, 10_000, False), 200.0) is None


def test_a_network_stopped_by_its_time_limit_trains_longer_one_stopped_early_does_not():
    plans = Plans(PrepPlan(), NETWORK, TrainPlan())
    step = next_improvement(plans, _facts(seconds=25.0, stopped="time limit"), seconds_left=200.0)
    assert step.step == "network_time" and step.plans.track.nn["time_limit_s"] == 40.0       # x4 at most
    assert step.expected_s == pytest.approx(5.0 + 80.0)                                       # overhead + 2 fits
    assert next_improvement(plans, _facts(seconds=25.0, stopped="early stopping"), 200.0) is None


def test_lightgbm_stopped_by_its_time_limit_trains_longer_and_more_rows_get_more_time():
    limited = TRADITIONAL.replace(lightgbm={**TRADITIONAL.lightgbm, "time_limit_s": 4.0})
    plans = Plans(PrepPlan(numeric=("x",)), limited, TrainPlan())
    stopped = {"final": {"model": {"time_stopped": ["lightgbm"]}}, "tuned_params": {}}
    step = next_improvement(plans, RoundFacts(20.0, stopped, 10_000, False), seconds_left=200.0)
    assert step.step == "boosting_time" and step.plans.track.lightgbm["time_limit_s"] == 16.0     # x4 at most
    assert step.expected_s == pytest.approx(20.0 + (2.4 + 1.4 / 0.8 ** 2) * 16.0)    # the round, a fit and two refits
    assert step.plans.track.lightgbm["learning_rate"] == 0.1                     # only the time changes
    # Not stopped by its limit: early stopping ended it; CatBoost comes next.
    assert next_improvement(plans, _facts(seconds=20.0), 200.0).step == "catboost"
    # More rows: each boosting round costs more, so the limit grows with them.
    sampled = Plans(plans.prep, limited, TrainPlan(max_train_rows=2000))
    rows = next_improvement(sampled, RoundFacts(10.0, stopped, 10_000, False), seconds_left=100.0)
    assert rows.step == "rows" and rows.plans.track.lightgbm["time_limit_s"] == 16.0            # x4 the rows


def test_catboost_then_a_search_bagging_the_other_families_and_finer_boosting():
    plans = Plans(PrepPlan(numeric=("x",)), TRADITIONAL, TrainPlan())
    catboost = next_improvement(plans, _facts(seconds=10.0, can_search=True), seconds_left=300.0)
    assert catboost.step == "catboost" and catboost.plans.track.models == ("lightgbm", "linear", "catboost")
    assert catboost.expected_s == pytest.approx(30.0)
    done = frozenset({"catboost"})
    step = next_improvement(plans, _facts(seconds=10.0, can_search=True), 300.0, exhausted=done)
    assert step.step == "search" and step.search_s == 150.0 and step.plans == plans       # half of 300 s
    assert step.expected_s == pytest.approx(163.0)              # the fit, the search and what a search overruns
    short = next_improvement(plans, _facts(seconds=10.0, can_search=True), seconds_left=30.0, exhausted=done)
    assert short.step == "search" and short.search_s == 15.0                               # half of 30 s
    # 8 s of search is too short; of the rest only the neighbours (1.5x the round) fit 18 s.
    assert next_improvement(plans, _facts(seconds=10.0, can_search=True), 18.0, exhausted=done).step == "knn"
    done |= {"search"}
    bagging = next_improvement(plans, _facts(seconds=10.0, can_search=True), 300.0, exhausted=done)
    assert bagging.step == "bagging" and bagging.plans.track.bagging_folds == 5 and bagging.expected_s == 25.0
    assert next_improvement(plans, _facts(n_train=200_000), 300.0, exhausted=done).step == "extra_trees"   # not small
    done |= {"bagging"}
    names = []
    while (step := next_improvement(plans, _facts(seconds=10.0, can_search=True), 300.0, exhausted=done)) is not None:
        if step.step == "finer_boosting":
            break
        assert step.plans.track.models == ("lightgbm", "linear", step.step)
        names.append(step.step)
        done |= {step.step}
    assert names == ["extra_trees", "xgboost", "knn"]
    assert next_improvement(plans, _facts(n_train=30_000), 300.0, exhausted=done - {"knn"}).step == "finer_boosting"
    assert step.step == "finer_boosting" and step.plans.track.lightgbm["learning_rate"] == 0.05
    assert step.plans.track.lightgbm["max_rounds"] == 2000 and step.expected_s == pytest.approx(20.0)
    assert step.tuned_params is None                      # the plan's rate: no searched settings to change
    # A search that chose the learning rate: the step halves the searched rate, which the round's pipeline runs with
    # (its TUNED_PARAMS), keeping the search's other settings.
    tuned = {"learning_rate": 0.07, "num_leaves": 40}
    searched = next_improvement(plans, _facts(seconds=10.0, can_search=True, tuned=tuned), 300.0, exhausted=done)
    assert searched.step == "finer_boosting" and searched.tuned_params == {"learning_rate": 0.035, "num_leaves": 40}
    assert searched.plans.track.lightgbm["learning_rate"] == 0.1 and searched.plans.track.lightgbm["max_rounds"] == 2000
    assert "0.07 → 0.035 (the search chose it)" in searched.change
    assert next_improvement(plans, _facts(tuned={"learning_rate": 0.02}), 300.0, exhausted=done) is None   # fine already
    assert next_improvement(plans, _facts(), 300.0, exhausted=done | {"finer_boosting"}) is None


def test_a_family_the_blend_uses_is_searched_once_lightgbm_has_had_its_search():
    from iml_ray.plan.searches import FAMILY_SEARCH_SPACES

    plans = Plans(PrepPlan(numeric=("x",)), TRADITIONAL.replace(models=("lightgbm", "linear", "catboost", "xgboost")),
                  TrainPlan())
    done = frozenset({"catboost", "search", "bagging", "extra_trees", "xgboost", "knn", "finer_boosting"})

    def facts(weights, tuned=None):
        info = {"validation": {"model": {"weights": weights}},
                "tuned_params": {"num_leaves": 20} if tuned is None else tuned}
        return RoundFacts(10.0, info, 10_000, True)

    step = next_improvement(plans, facts({"lightgbm": 2, "catboost": 1}), 300.0, done)
    assert step.step == "search_catboost" and step.search_s == 150.0
    assert step.plans.track.tune["space"] == FAMILY_SEARCH_SPACES["catboost"]
    assert step.plans.track.models == plans.track.models and step.plans.prep == plans.prep
    # XGBoost is not in the blend: tuning it would change nothing the track predicts.
    assert next_improvement(plans, facts({"lightgbm": 2, "catboost": 1}), 300.0, done | {"search_catboost"}) is None
    assert next_improvement(plans, facts({"xgboost": 1}), 300.0, done).step == "search_xgboost"
    # CatBoost's settings were found already (a kept search): not searched again.
    assert next_improvement(plans, facts({"catboost": 1}, {"catboost:depth": 4}), 300.0, done) is None
    # LightGBM's own search goes first, over the plan's space.
    lightgbm = next_improvement(plans, facts({"catboost": 1}, {}), 300.0, done - {"search"})
    assert lightgbm.step == "search" and lightgbm.plans == plans
    # After a family's search the plan holds that family's space: LightGBM's search does not search it.
    searched = Plans(plans.prep, step.plans.track, plans.train)
    assert next_improvement(searched, facts({"catboost": 1}, {}), 300.0, done - {"search"} | {"search_catboost"}) is None


def test_a_search_shortens_its_familys_time_limit_to_what_the_search_leaves_of_the_round():
    """The settings a search chooses may fit far slower than the defaults the round measured: the searched family's
    early-stopped fits stop at what the search leaves of the round, shared by the round's fits of it (an
    early-stopped fit and a refit in the validation, the final refit on every row: 4.59 times the limit after one
    holdout). Never longer than the plan's own limit, never under the floor of a boosted fit's."""
    from iml_ray.plan.first_fit import MIN_BOOSTED_LIMIT_S, limited_fits

    limited = TRADITIONAL.replace(lightgbm={**TRADITIONAL.lightgbm, "time_limit_s": 3.6},
                                  models=("lightgbm", "linear", "catboost"), families={"catboost": {"time_limit_s": 5.0}})
    plans = Plans(PrepPlan(numeric=("x",)), limited, TrainPlan())
    assert limited_fits(plans) == pytest.approx(2.4 + 1.4 / 0.8 ** 2)
    # A round of 10 s, 5 s of it fitting (LightGBM 4 s): 5 s of the round is not fits.
    info = {"validation": {"model": {"weights": {"lightgbm": 1, "catboost": 1}}},
            "final": {"model": {"fits": {"made_s": 5.0, "seconds": {"lightgbm": 4.0, "linear": 1.0}}}}}
    facts = RoundFacts(10.0, info, 10_000, True)
    done = frozenset({"catboost"})
    step = next_improvement(plans, facts, 40.0, done)
    # 20 s of search, 3 s it may overrun, 5 s besides fits: 12 s for LightGBM's fits, 4.59 times the limit.
    assert step.step == "search" and step.search_s == 20.0
    assert step.plans.track.lightgbm["time_limit_s"] == pytest.approx(12.0 / limited_fits(plans), abs=0.05)
    assert step.plans.track.families == limited.families and step.plans.train == plans.train
    assert step.expected_s == pytest.approx(9.0 + 20.0 + 3.0)           # its estimate: the defaults' fits
    # Time enough: the plan's limit stays (a longer one is the boosting_time step's, for a fit it stopped).
    assert next_improvement(plans, facts, 300.0, done).plans == plans
    # The search leaves at least the limit's floor to the fits: at 30 s, 30 - 3 - (5 + 4.59 x 2) = 12.8 s of search.
    floor = next_improvement(plans, facts, 30.0, done)
    assert floor.search_s == pytest.approx(30.0 - 3.0 - 5.0 - limited_fits(plans) * MIN_BOOSTED_LIMIT_S, abs=0.05)
    assert floor.plans.track.lightgbm["time_limit_s"] == MIN_BOOSTED_LIMIT_S
    assert next_improvement(plans, facts, 26.0, done).step != "search"          # 8.8 s of search: too short
    # A family's search shortens that family's limit, not LightGBM's.
    family = next_improvement(plans, replace(facts, run_info={**info, "tuned_params": {"num_leaves": 20}}), 40.0,
                              done | {"search", "bagging", "extra_trees", "xgboost", "knn", "finer_boosting"})
    assert family.step == "search_catboost" and family.plans.track.lightgbm == limited.lightgbm
    assert family.plans.track.families["catboost"]["time_limit_s"] == pytest.approx(12.0 / limited_fits(plans),
                                                                                    abs=0.05)


def test_a_track_out_of_time_names_the_step_it_would_take_with_the_least_more_time():
    from iml_ray.track.improve import _first_step_with_more_time

    plans = Plans(PrepPlan(), TRADITIONAL, TrainPlan())
    done = frozenset({"bagging", "knn", "finer_boosting"})
    assert next_improvement(plans, _facts(seconds=10.0, can_search=True), 12.0, done) is None
    waiting = _first_step_with_more_time(plans, _facts(seconds=10.0, can_search=True), 12.0, done)
    # 24 s buys an 11 s search after the 10 s fit (and 3 s it may overrun); unlimited time would say 913 s.
    assert waiting.step == "search" and waiting.expected_s == pytest.approx(24.0)


def test_trees_are_not_added_where_they_would_see_no_column():
    """Text alone, as TF-IDF: the trees skip the sparse block, so only the neighbours are worth a round."""
    plans = Plans(PrepPlan(text=("review",)), TrackPlan("traditional", models=("linear",)), TrainPlan())
    done: set[str] = set()
    steps = []
    while (step := next_improvement(plans, _facts(seconds=5.0, n_train=5_000), 300.0, frozenset(done))) is not None:
        steps.append(step.step)
        done.add(step.step)
    assert "knn" in steps and not {"catboost", "extra_trees", "xgboost"} & set(steps)


def _job(tmp_path, task, deadline_s):
    """The traditional track fitting 100 of its rows at first."""
    return traditional_job(tmp_path, analyze_task(task), time.time() + deadline_s, max_train_rows=100)


AGENTS = rules_agents()


def test_the_track_keeps_only_better_rounds_and_says_why_it_stopped(tmp_path):
    """A fit on 100 of 480 rows, then improvement rounds: each is scored on the same holdout, kept only when better
    by more than the holdout's noise (or, growing the rows, better at all); the candidate's files are its best
    round's."""
    train, test, sample = binary_frames(600, 80)
    task = write_task(tmp_path / "toy", train, test, sample)
    result = run_track(_job(tmp_path, task, 240.0), AGENTS)
    assert result.status == "verified" and result.repair_rounds == 0
    first, *improvements = result.rounds
    assert first.step is None and first.score is not None
    assert improvements and improvements[0].step == "rows" and "fit on 400 of 600 rows" in improvements[0].change
    best, best_round = first.score, first.round
    for r in improvements:                 # higher is better (AUC): a round is kept exactly when it beats the best
        within_noise = r.diagnosis is not None and "within the validation rows' noise" in r.diagnosis
        assert r.kept == (r.score is not None and r.score > best and not within_noise), r
        assert not within_noise or (r.score > best and r.step != "rows"), r
        assert r.within_noise == within_noise, r      # what the stacker reads to offer the round to a blend
        if r.kept:
            best, best_round = r.score, r.round
    assert result.valid_score == best and result.details["best_round"] == best_round
    assert result.details["stopped"].startswith(("out of improvements: every step", "out of time for improvements"))
    assert result.submission_path.endswith(f"round_{best_round}/output/submission.csv")
    model = (tmp_path / "cand" / "model_traditional.py").read_text()
    assert model == (tmp_path / "cand" / f"round_{best_round}" / "model_traditional.py").read_text()


def test_a_sampled_track_keeps_its_submission_refitted_on_every_row_at_the_same_validation_score(tmp_path,
                                                                                                 monkeypatch):
    """The final_rows round reads its validation's fits back and scores what the first round scored: kept (an
    equal score, no noise test), its final fit on all 2,400 rows, LightGBM's validated rounds grown 24x."""
    import iml_ray.plan.improvements as improvements
    from iml_ray.plan.final_rows import final_rows

    monkeypatch.setattr(improvements, "STEPS", (final_rows,))
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(2500, 2))
    label = ((x[:, 0] * x[:, 1] > 0) ^ (rng.random(2500) < 0.05)).astype(int)      # a crossing no line draws
    frame = pd.DataFrame({"id": range(2500), "x1": x[:, 0], "x2": x[:, 1], "label": label})
    train, test = frame.iloc[:2400], frame.iloc[2400:].drop(columns="label")
    task = write_task(tmp_path / "big", train, test, pd.DataFrame({"id": test["id"], "label": 0}))
    result = run_track(_job(tmp_path, task, 240.0), AGENTS)
    first, refitted = result.rounds
    assert refitted.step == "final_rows" and refitted.kept and refitted.diagnosis is None
    assert refitted.score == first.score and result.details["best_round"] == refitted.round
    infos = [json.loads((tmp_path / "cand" / f"round_{r.round}" / "output" / "run_info.json").read_text())
             for r in (first, refitted)]
    assert [info["validation"]["model"]["settings"] for info in infos][0] == infos[1]["validation"]["model"]["settings"]
    validated = infos[0]["validation"]["model"]["settings"]["lightgbm"]
    assert infos[0]["final"]["model"]["settings"]["lightgbm"] == validated                  # 100 rows, as validated
    assert infos[1]["final"]["model"]["settings"]["lightgbm"] == round(validated * 2400 / 100)
    assert infos[1]["validation"]["model"]["fits"]["reused"] >= 1        # the validation's fits were read back


def test_a_step_that_changes_the_searched_settings_runs_its_round_with_them(tmp_path, monkeypatch):
    """Finer boosting after a search halves the searched learning rate: the round's pipeline carries the step's
    TUNED_PARAMS (which the runner applies over the plan's LightGBM settings) and its run_info reports them."""
    import ast

    from iml_ray.plan import improvements
    from iml_ray.track import improve

    train, test, sample = binary_frames(600, 80)
    task = write_task(tmp_path / "toy", train, test, sample)
    steps = []

    def finer_once(plans, facts, seconds_left, exhausted=frozenset()):
        if steps:
            return None
        # As if the first round's search had chosen these settings.
        searched = replace(facts, run_info={**facts.run_info, "tuned_params": {"learning_rate": 0.2, "num_leaves": 9}})
        found = improvements._finer_boosting(plans, searched, 100.0)
        steps.append(found)
        return found

    monkeypatch.setattr(improve, "next_improvement", finer_once)
    result = run_track(traditional_job(tmp_path, analyze_task(task), time.time() + 240.0), AGENTS)
    assert result.status == "verified" and [r.step for r in result.rounds] == [None, "finer_boosting"]
    assert steps[0].tuned_params == {"learning_rate": 0.1, "num_leaves": 9}
    pipeline = (tmp_path / "cand" / "round_2" / "pipeline_traditional.py").read_text()
    tuned = next(ast.literal_eval(node.value) for node in ast.parse(pipeline).body
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "TUNED_PARAMS")
    assert tuned == {"learning_rate": 0.1, "num_leaves": 9}
    info = json.loads((tmp_path / "cand" / "round_2" / "output" / "run_info.json").read_text())
    assert info["tuned_params"] == tuned


def test_an_improvement_that_fails_leaves_the_verified_candidate(tmp_path, monkeypatch):
    """The rows step's round is starved of time: it times out, and the first round's candidate is the track's."""
    from iml_ray.track import checks

    train, test, sample = binary_frames(600, 80)
    task = write_task(tmp_path / "toy", train, test, sample)
    real_limits = checks.limits

    def starve_improvements(job, last_chance=False, cpus=None):
        limits = real_limits(job, last_chance, cpus)
        return replace(limits, timeout_s=0.5) if last_chance else limits

    monkeypatch.setattr(checks, "limits", starve_improvements)
    result = run_track(_job(tmp_path, task, 240.0), AGENTS)
    assert result.status == "verified" and result.details["best_round"] == 1
    assert result.valid_score == result.rounds[0].score
    assert [r.status for r in result.rounds[1:]] == ["timeout"] * (len(result.rounds) - 1)
    assert not any(r.kept for r in result.rounds[1:])
    assert result.submission_path.endswith("round_1/output/submission.csv")


def test_a_track_takes_the_cpus_its_finished_peers_left_for_its_improvement_rounds(tmp_path, monkeypatch):
    """The Coordinator knows the competition's custom_nn track has finished: the traditional track's improvement rounds
    run on its CPU too (the rendered model and the sandbox both get two threads); its first round kept its own."""
    import re

    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.blueprint import Candidate
    from iml_ray.track import checks
    from iml_ray.track.job import TrackAgents

    coordinator = Coordinator("auc", True)
    coordinator.track_shares({"traditional": 1.0, "custom_nn": 1.0})
    coordinator.report(Candidate(track="custom_nn", code_dir="", status="failed", metric="auc", failure="out of time"))
    agents = TrackAgents(AGENTS.prep_coder, AGENTS.model_coder, AGENTS.assembler, AGENTS.error_analyzer,
                         AGENTS.debugger, AGENTS.evaluator, coordinator)
    sandbox_cpus = []
    real_limits = checks.limits

    def record_cpus(job, last_chance=False, cpus=None):
        limits = real_limits(job, last_chance, cpus)
        sandbox_cpus.append(limits.cpus)
        return limits

    monkeypatch.setattr(checks, "limits", record_cpus)
    train, test, sample = binary_frames(600, 80)
    task = write_task(tmp_path / "toy", train, test, sample)
    result = run_track(_job(tmp_path, task, 120.0), agents)
    first, *improvements = result.rounds
    assert first.threads is None and improvements, result.rounds
    assert all(r.threads == 2 for r in improvements)

    def rendered_threads(number):
        code = (tmp_path / "cand" / f"round_{number}" / "model_traditional.py").read_text()
        return int(re.search(r"'num_threads': (\d+)", code).group(1))

    assert rendered_threads(first.round) == 1
    assert {rendered_threads(r.round) for r in improvements} == {2}
    assert sandbox_cpus[0] == 1 and sandbox_cpus[-1] == 2


def test_the_coordinator_hands_on_only_what_finished_tracks_held_and_the_cluster_has_free():
    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.blueprint import Candidate

    coordinator = Coordinator("auc", True)
    coordinator.track_shares({"traditional": 0.65, "pretrained": 0.65, "custom_nn": 0.65})
    assert coordinator.cpus_for("traditional") == 0.65           # nobody has finished: each its own share
    coordinator.report(Candidate(track="custom_nn", code_dir="", status="verified", metric="auc", valid_score=0.8))
    assert coordinator.cpus_for("traditional") == pytest.approx(0.975)     # half of custom_nn's share each
    assert coordinator.cpus_for("custom_nn") == 0.65               # a finished track takes nothing more
    coordinator.report(Candidate(track="pretrained", code_dir="", status="failed", metric="auc", failure="x"))
    assert coordinator.cpus_for("traditional") == pytest.approx(1.95)
    coordinator._free_cpus = lambda: 0.5                          # another competition took the rest
    assert coordinator.cpus_for("traditional") == pytest.approx(1.15)
    assert coordinator.cpus_for("traditional", as_free=False) == pytest.approx(1.95)   # had the cluster freed it all


def test_a_track_still_waiting_takes_no_part_of_what_finished_tracks_freed():
    """The network waits for the trees, the deferred pretrained track for both: when the trees stop, the network
    takes all they held; when it stops too, the pretrained track takes what both held."""
    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.blueprint import Candidate

    coordinator = Coordinator("auc", True)
    coordinator.track_shares({"traditional": 1.85, "custom_nn": 0.05, "pretrained": 0.05},
                             {"custom_nn": ("traditional",), "pretrained": ("traditional", "custom_nn")})
    coordinator.report(Candidate(track="traditional", code_dir="", status="verified", metric="auc", valid_score=0.8))
    assert coordinator.cpus_for("custom_nn") == pytest.approx(1.9)
    coordinator.report(Candidate(track="custom_nn", code_dir="", status="verified", metric="auc", valid_score=0.7))
    assert coordinator.cpus_for("pretrained") == pytest.approx(1.95)


def test_a_round_is_sized_without_its_search_and_expected_faster_but_not_proportionally_on_more_threads():
    from iml_ray.track.improve import fit_seconds, scaled_seconds

    # A round's search is not repeated by the rounds after it: they are sized by the round without it.
    assert fit_seconds(28.7, {"validation": {"tuning": {"seconds": 22.9, "trials": 41}}}) == pytest.approx(5.8)
    assert fit_seconds(28.7, {"validation": {"model": {}}}) == 28.7

    assert scaled_seconds(20.0, 1, 1) == 20.0
    assert scaled_seconds(20.0, 1, 2) == pytest.approx(15.0)
    assert 10.0 < scaled_seconds(20.0, 1, 4) < 15.0
    assert scaled_seconds(15.0, 2, 1) == pytest.approx(22.5)


def test_text_gets_character_ngrams_before_anything_else_that_fits():
    plans = Plans(PrepPlan(text=("review",), numeric=("stars",)), TrackPlan("traditional"), TrainPlan())
    step = next_improvement(plans, _facts(seconds=8.0), 300.0)
    assert step.step == "char_ngrams" and step.plans.prep.tfidf_char_ngram_max == 5 and step.expected_s == pytest.approx(28.0)
    assert step.plans.prep.replace(tfidf_char_ngram_max=0) == plans.prep and step.plans.track == plans.track
    assert next_improvement(step.plans, _facts(seconds=8.0), 300.0).step == "catboost"
    pretrained = Plans(plans.prep.replace(text_mode="pretrained"), plans.track, plans.train)
    assert next_improvement(pretrained, _facts(seconds=8.0), 300.0).step == "catboost"


def test_trees_are_shown_a_texts_words_only_where_they_fit_on_other_columns():
    from iml_ray.plan.improvements import STEPS
    from iml_ray.plan.text_improvements import text_words

    beside = Plans(PrepPlan(text=("name",), numeric=("fare",)), TrackPlan("traditional"), TrainPlan())
    step = text_words(beside, _facts(seconds=10.0), 300.0)
    assert step.step == "text_words" and step.plans.prep.text_tree_terms == 30 and step.expected_s == pytest.approx(12.0)
    assert step.plans.prep.replace(text_tree_terms=0) == beside.prep
    assert text_words(step.plans, _facts(seconds=10.0), 300.0) is None                   # once
    alone = Plans(PrepPlan(text=("review",)), TrackPlan("traditional"), TrainPlan())
    assert text_words(alone, _facts(seconds=10.0), 300.0) is None                        # no trees fit there
    linear = Plans(beside.prep, TrackPlan("traditional", models=("linear",)), TrainPlan())
    assert text_words(linear, _facts(seconds=10.0), 300.0) is None
    assert text_words in STEPS


def test_rounds_are_sized_by_what_they_fit_again_when_the_others_fits_are_read_back():
    """The round it improves on took 28 s, 20 of them fitting CatBoost afresh (LightGBM 4 s and the linear model 1 s
    were read back from earlier rounds). Adding XGBoost refits only XGBoost: 8 s of the rest plus one round of the
    first families (13 s) fits the 25 s left, where the whole-round estimate (2 x 28 s) did not. Bagging and more rows
    fit every family again: sized from the round without reuse (33 s)."""
    fits = {"made": 6, "reused": 8, "made_s": 20.0, "seconds": {"lightgbm": 4.0, "linear": 1.0, "catboost": 20.0}}
    info = {"validation": {"model": {}}, "final": {"model": {"fits": fits}}, "tuned_params": {}}
    plans = Plans(PrepPlan(numeric=("x",)), replace(TRADITIONAL, models=("lightgbm", "linear", "catboost")), TrainPlan())
    facts = RoundFacts(28.0, info, 10_000, False)
    assert facts.overhead_s == pytest.approx(8.0) and facts.fresh_s == pytest.approx(33.0)
    step = next_improvement(plans, facts, seconds_left=25.0, exhausted=frozenset({"bagging", "extra_trees"}))
    assert step.step == "xgboost" and step.expected_s <= 25.0
    assert "time_limit_s" in step.plans.track.families["xgboost"]
    whole = RoundFacts(28.0, {**info, "final": {"model": {}}}, 10_000, False)
    assert next_improvement(plans, whole, seconds_left=25.0, exhausted=frozenset({"bagging", "extra_trees"})) is None
    bagging = next_improvement(plans, facts, seconds_left=100.0, exhausted=frozenset())
    assert bagging.step == "bagging" and bagging.expected_s == pytest.approx(33.0 * 5 / 2)
    # Twice the threads now: the fits' seconds scale with the round's (scale), the estimate falls.
    faster = RoundFacts(20.0, info, 10_000, False, scale=20.0 / 28.0)
    assert faster.fresh_s < facts.fresh_s and faster.without_fits_but("lightgbm") < facts.without_fits_but("lightgbm")


def test_bagging_is_sized_by_each_familys_seconds_per_fit_times_the_fits_it_makes():
    """penguins under 5-fold validation (6 pipeline fits then, 5 now that the fold fits make the submission): the
    round before bagging made CatBoost's 7 fits in 7.95 s (an inner fit per pipeline fit, one refit: the blends kept
    it once). Bagged, each pipeline fit makes 5 fits per family: 25 CatBoost fits. Sized as two fits per family
    and pipeline fit (the round x 5 / 2), bagging looked like 37 s and took 55 s, timing out in a 45 s round."""
    fits = {"made": 31, "reused": 0, "made_s": 12.0,
            "seconds": {"lightgbm": 3.0, "linear": 1.05, "catboost": 7.95},
            "counts": {"lightgbm": 12, "linear": 12, "catboost": 7}}
    info = {"validation": {"model": {}}, "final": {"model": {"fits": fits}}, "tuned_params": {}}
    track = replace(TRADITIONAL, models=("lightgbm", "linear", "catboost"))
    plans = Plans(PrepPlan(numeric=("x",)), track, TrainPlan(holdout_folds=5))
    facts = RoundFacts(15.0, info, 275, False)
    done = frozenset({"catboost", "search"})
    bagging = next_improvement(plans, facts, seconds_left=100.0, exhausted=done)
    per_fit = 3.0 / 12 + 1.05 / 12 + 7.95 / 7
    assert bagging.step == "bagging" and bagging.plans.track.bagging_folds == 5
    assert bagging.expected_s == pytest.approx(facts.overhead_s + 1.3 * 25 * per_fit)
    assert facts.fresh_s * 5 / 2 < 45.0 < bagging.expected_s
    assert next_improvement(plans, facts, seconds_left=45.0, exhausted=done).step != "bagging"
    # Bagged, a time-limited family's limit is shared by 5 early-stopped fits per pipeline fit, and no refit.
    bagged = Plans(plans.prep, track.replace(models=("lightgbm", "linear"), bagging_folds=5), plans.train)
    catboost = next_improvement(bagged, facts, seconds_left=300.0, exhausted=frozenset({"search"}))
    assert catboost.step == "catboost"
    limit = catboost.plans.track.families["catboost"]["time_limit_s"]
    assert limit == pytest.approx((300.0 / 3 - facts.overhead_s) / 25, abs=0.05)        # not / (5 x 2.4)


def test_a_bagged_track_with_every_other_step_tried_doubles_its_shuffles_sized_by_the_new_ones_fits():
    """What a small table's track does with the time left at a long budget (credit, default, loans at 300 s ended
    "out of improvements" at 50-79% of it): more shuffles of its folds, the ones drawn before read back."""
    fits = {"made": 20, "reused": 0, "made_s": 12.0, "seconds": {"lightgbm": 6.0, "linear": 2.0},
            "counts": {"lightgbm": 10, "linear": 10}}
    info = {"validation": {"model": {}}, "final": {"model": {"fits": fits}}, "tuned_params": {}}
    track = replace(TRADITIONAL, models=("lightgbm", "linear"), bagging_folds=5)
    plans = Plans(PrepPlan(numeric=("x",)), track, TrainPlan())
    facts = RoundFacts(16.0, info, 2000, False)
    done = frozenset({"catboost", "search", "bagging", "extra_trees", "xgboost", "knn", "finer_boosting"})
    step = next_improvement(plans, facts, 300.0, exhausted=done)
    assert step.step == "bagging_repeats" and step.plans.track.bagging_repeats == 2
    assert step.plans.track.bagging_folds == 5 and step.plans.train == plans.train
    # One new shuffle: 5 fits per family in each of the 2 pipeline fits, at the round's seconds per fit.
    assert step.expected_s == pytest.approx(facts.overhead_s + 10 * (6.0 / 10 + 2.0 / 10))
    assert step.expected_s < 2 * facts.seconds
    # It may follow itself while it pays off, doubling, up to MAX_BAGGING_REPEATS shuffles.
    assert "bagging_repeats" in improvements.REPEATABLE
    shuffles = []
    while step is not None:
        shuffles.append(step.plans.track.bagging_repeats)
        plans = step.plans
        step = next_improvement(plans, facts, 300.0, exhausted=done)
    assert shuffles == [2, 4, 8] and shuffles[-1] == improvements.MAX_BAGGING_REPEATS
    # Sized by the new shuffles alone: 4 -> 8 fits 4 shuffles' fits.
    four = Plans(plans.prep, track.replace(bagging_repeats=4), plans.train)
    assert next_improvement(four, facts, 300.0, exhausted=done).expected_s == \
        pytest.approx(facts.overhead_s + 40 * (6.0 / 10 + 2.0 / 10))
    # Not for a track that is not bagged, nor when the new shuffles do not fit the time left.
    assert next_improvement(Plans(plans.prep, track.replace(bagging_folds=0), plans.train), facts, 300.0,
                            exhausted=done) is None
    assert next_improvement(Plans(plans.prep, track, plans.train), facts, 10.0, exhausted=done) is None
    # A time-limited family's limit, once bagged on more shuffles, is shared by all their fits.
    from iml_ray.plan.first_fit import limited_fits
    assert limited_fits(four) == 2 * 5 * 4


def test_no_search_is_planned_where_the_inner_split_is_too_small_for_one():
    """The tuning template refuses a search scored on fewer than 300 inner rows; a round planned for one refits
    what the round before fitted. penguins (275 rows, 5 folds): 220 fit rows, 44 inner ones."""
    from iml_ray.plan.searches import MIN_SEARCH_VALID_ROWS, search_has_rows

    plans = Plans(PrepPlan(numeric=("x",)), TRADITIONAL, TrainPlan(holdout_folds=5, inner_valid_fraction=0.2))
    done = frozenset({"catboost"})
    assert next_improvement(plans, _facts(seconds=5.0, n_train=275, can_search=True), 300.0, done).step != "search"
    assert next_improvement(plans, _facts(seconds=5.0, n_train=1900, can_search=True), 300.0, done).step == "search"
    assert not search_has_rows(plans, 1860)            # 1,488 fit rows, 298 inner ones
    holdout = Plans(plans.prep, TRADITIONAL, TrainPlan(inner_valid_fraction=0.15))
    assert search_has_rows(holdout, 2600) and not search_has_rows(holdout, 2400)      # 312 and 288 inner rows
    assert not search_has_rows(Plans(plans.prep, TRADITIONAL, TrainPlan(max_train_rows=1000)), 100_000)
    template = (Path(__file__).resolve().parents[2] / "iml_ray" / "codegen" / "templates" / "tuning.py.tmpl").read_text()
    assert f'.get("min_valid_rows", {MIN_SEARCH_VALID_ROWS})' in template


MINILM = {"name": "all-MiniLM-L6-v2", "ref": "/models/minilm", "loader": "transformers", "dim": 384,
          "input": {"max_length": 256, "pooling": "mean"}}
FROZEN_TEXT = Plans(PrepPlan(text=("review",), text_mode="pretrained", text_encoder=MINILM),
                    TrackPlan("pretrained", models=("lightgbm", "linear")), TrainPlan())


def _text_facts(gpus=0):
    """A frozen round of 10 s whose prep check encoded 8,000 + 2,000 texts in 23 s (2 ms a text, 3 s to start)."""
    return RoundFacts(10.0, {}, 8_000, can_search=False, prep_check_s=23.0, n_test=2_000, gpus=gpus)


def test_a_frozen_text_encoder_is_fine_tuned_when_an_epoch_per_fit_fits_the_time_left():
    # An epoch over 8,000 texts: 8,000 x 2 ms x (0.85 x 3.5 training + 0.15 scoring) = 50 s; around it 10 s of the
    # round, 7.2 s predicting 3,600 texts and 3 s loading the weights per fit.
    step = next_improvement(FROZEN_TEXT, _text_facts(), 300.0)
    assert step is not None and step.step == "fine_tune"
    assert step.plans.prep.text_mode == "tokens" and step.plans.prep.token_length == 128
    track = step.plans.track
    assert track.model_template == "custom_nn" and track.models == ("nn",) and not track.tune
    assert track.nn["backbone"] == {"modality": "text", **{k: MINILM[k] for k in ("name", "ref", "loader", "dim", "input")}}
    assert track.nn["time_limit_s"] == pytest.approx((300.0 - 23.2) / 2, abs=0.1)     # two fits share the rest
    assert step.expected_s == pytest.approx(300.0, abs=0.2)
    roomy = next_improvement(FROZEN_TEXT, _text_facts(), 1000.0)
    assert roomy.plans.track.nn["time_limit_s"] == pytest.approx(3 * 50.0)          # three epochs are enough
    # 100 s: one epoch per fit (2 x 50 s) does not fit; the track does something else with its time.
    short = next_improvement(FROZEN_TEXT, _text_facts(), 100.0)
    assert short is None or short.step != "fine_tune"
    # On a GPU an epoch takes a tenth: it fits.
    gpu = next_improvement(FROZEN_TEXT, _text_facts(gpus=1), 100.0)
    assert gpu.step == "fine_tune" and "on the GPU" in gpu.change and gpu.plans.track.nn["batch_size"] == 32


def test_the_stop_message_says_why_a_text_encoder_stayed_frozen():
    from iml_ray.track.improve import Verified, _stop_message

    best = Verified(1, None, 0.9, 10.0, FROZEN_TEXT, None, None, None, {})
    done = frozenset({"catboost", "search", "bagging", "extra_trees", "xgboost", "knn", "finer_boosting"})
    said = _stop_message(best, _text_facts(), 60.0, done)
    assert said.startswith("out of time for improvements: the next step (fine_tune, about ")
    said = _stop_message(best, _text_facts(), 60.0, frozenset())
    assert "the text encoder stayed frozen: fine-tuning it needs about 123 s" in said and "60 s were left" in said
    # Tried and not kept: the rounds say so; the stop message does not claim it was never tried.
    assert "stayed frozen" not in _stop_message(best, _text_facts(), 60.0, frozenset({"fine_tune"}))
    # A track on TF-IDF has no encoder to speak of.
    tfidf = Verified(1, None, 0.9, 10.0, Plans(PrepPlan(text=("review",)), TRADITIONAL, TrainPlan()), None, None, None, {})
    assert "frozen" not in _stop_message(tfidf, _text_facts(), 60.0, frozenset())


def test_a_pretrained_track_runs_its_fine_tuning_round_in_the_sandbox(tmp_path, monkeypatch):
    """The frozen round's prep check sizes the step; the round re-renders the prep (token ids) and the model (a
    network on the encoder), runs in the sandbox like any round and is scored on the same holdout."""
    from iml_ray.plan import fine_tuning
    from iml_ray.plan.pretrained import find_pretrained
    from iml_ray.track import improve

    train, test, sample, _ = review_frames(n=240)
    task = write_task(tmp_path / "reviews", train, test, sample, "# Reviews\nPredict the label. Evaluated on accuracy.")
    encoder = find_pretrained("text")
    assert encoder is not None
    sized = []

    def only_fine_tuning(plans, facts, seconds_left, exhausted=frozenset()):
        step = None if "fine_tune" in exhausted else fine_tuning.fine_tune(plans, facts, seconds_left)
        if step is not None:
            sized.append(facts)
            step = replace(step, plans=replace(step.plans, track=step.plans.track.replace(
                nn={**step.plans.track.nn, "max_epochs": 2})))
        return step if step is not None and step.expected_s <= seconds_left else None

    monkeypatch.setattr(improve, "next_improvement", only_fine_tuning)
    job = traditional_job(tmp_path, analyze_task(task), time.time() + 300.0, track="pretrained",
                          pretrained={"text": encoder.to_json()}, cpus=2)
    result = run_track(job, AGENTS)
    assert result.status == "verified", result.failure
    assert [r.step for r in result.rounds] == [None, "fine_tune"], result.rounds
    assert sized[0].prep_check_s > 0 and sized[0].n_test == 60 and sized[0].n_train == 180
    tuned_round = result.rounds[1]
    assert tuned_round.status == "ok" and tuned_round.score is not None, tuned_round
    info = json.loads((tmp_path / "cand" / "round_2" / "output" / "run_info.json").read_text())
    assert "all-MiniLM-L6-v2 fine-tuned" in info["final"]["model"]["architecture"]
    assert "tokenize_text" in (tmp_path / "cand" / "round_2" / "prep.py").read_text()


def test_a_waiting_track_starts_when_the_track_it_waits_for_has_finished_on_the_cpus_it_freed(tmp_path):
    """The network of a table on two CPUs waits for the trees (plan/resources.py): it blocks until the Coordinator has
    the traditional track's candidate, then runs on the CPUs that track held, its models with as many threads."""
    import dataclasses
    import threading

    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.blueprint import Candidate
    from iml_ray.plan.resources import TuneSettings
    from iml_ray.track.waiting import wait_for_peers

    train, test, sample = binary_frames(200, 40)
    task = write_task(tmp_path / "toy", train, test, sample)
    job = traditional_job(tmp_path, analyze_task(task), time.time() + 60, track="custom_nn")
    job = dataclasses.replace(job, waits_for=("traditional",), tune=TuneSettings(address="x", concurrency=1))
    coordinator = Coordinator("auc", True)
    coordinator.track_shares({"traditional": 1.9, "custom_nn": 0.05})
    trees_done = threading.Timer(1.0, coordinator.report, [Candidate(track="traditional", code_dir="", status="verified",
                                                                     metric="auc", valid_score=0.9)])
    trees_done.start()
    started = time.time()
    waited, not_run = wait_for_peers(job, coordinator, poll_s=0.05)
    assert not_run is None and time.time() - started >= 0.9       # it did wait for the trees
    assert waited.cpus == 2 and waited.plans.track.num_threads == 2 and waited.tune.concurrency == 2
    # A track that waits for nothing starts at once, as it was planned.
    assert wait_for_peers(dataclasses.replace(job, waits_for=()), coordinator) == (dataclasses.replace(job, waits_for=()),
                                                                                  None)


def test_a_waiting_track_gives_the_cluster_a_moment_to_show_the_cpus_its_peer_freed(tmp_path, monkeypatch):
    """Ray's count of free CPUs lags a finished track's return: read at once, it said nothing was free and the
    network ran on one thread beside an idle CPU (CI). The waiting track reads it again until the freed CPUs show,
    and takes what shows after a grace when another competition took them."""
    import dataclasses

    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.blueprint import Candidate
    from iml_ray.track import waiting

    train, test, sample = binary_frames(200, 40)
    task = write_task(tmp_path / "toy", train, test, sample)
    job = traditional_job(tmp_path, analyze_task(task), time.time() + 60, track="custom_nn")
    job = dataclasses.replace(job, waits_for=("traditional",))
    coordinator = Coordinator("auc", True)
    coordinator.track_shares({"traditional": 1.9, "custom_nn": 0.05})
    coordinator.report(Candidate(track="traditional", code_dir="", status="verified", metric="auc", valid_score=0.9))
    shown = iter([0.0, 0.0, 0.0])                                   # the first three reads lag, then all is free
    coordinator._free_cpus = lambda: next(shown, 1.95)
    started = time.time()
    waited, _ = waiting.wait_for_peers(job, coordinator, poll_s=0.05)
    assert waited.cpus == 2 and waited.plans.track.num_threads == 2
    assert time.time() - started < waiting.FREED_GRACE_S
    # Another competition holds the freed CPUs: after the grace the track starts on what it has.
    coordinator._free_cpus = lambda: 0.0
    monkeypatch.setattr(waiting, "FREED_GRACE_S", 0.3)
    started = time.time()
    waited, _ = waiting.wait_for_peers(job, coordinator, poll_s=0.05)
    assert waited.cpus == 1 and 0.3 <= time.time() - started < 2.0


def test_a_waiting_track_whose_peers_use_the_budget_ends_unrun_and_says_why(tmp_path):
    import dataclasses

    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.track.waiting import wait_for_peers

    train, test, sample = binary_frames(200, 40)
    task = write_task(tmp_path / "toy", train, test, sample)
    job = traditional_job(tmp_path, analyze_task(task), time.time() + 16.0, track="custom_nn")
    job = dataclasses.replace(job, waits_for=("traditional",), min_round_s=15.0)
    coordinator = Coordinator("auc", True)
    coordinator.track_shares({"traditional": 1.9, "custom_nn": 0.05})
    started = time.time()
    _, not_run = wait_for_peers(job, coordinator, poll_s=0.05)
    assert 0.5 <= time.time() - started < 5.0          # until less than a round's time was left, not to the deadline
    assert not_run.status == "not_run" and not_run.track == "custom_nn"
    assert not_run.failure == "not run: waited for traditional, which used the time budget"


def test_a_track_deferred_for_its_encoding_starts_only_when_the_encoding_fits_the_time_left_on_the_freed_threads(
        tmp_path):
    import dataclasses

    from iml_ray.agents.coordinator import Coordinator
    from iml_ray.blueprint import Candidate
    from iml_ray.track.waiting import wait_for_peers

    train, test, sample = binary_frames(200, 40)
    task = write_task(tmp_path / "toy", train, test, sample)
    job = traditional_job(tmp_path, analyze_task(task), time.time() + 60.0, track="traditional")
    job = dataclasses.replace(job, waits_for=("custom_nn",))
    coordinator = Coordinator("auc", True)
    coordinator.track_shares({"custom_nn": 1.9, "traditional": 0.05}, {"traditional": ("custom_nn",)})
    coordinator.report(Candidate(track="custom_nn", code_dir="", status="verified", metric="auc", valid_score=0.9))

    def deferred(seconds):
        return dataclasses.replace(job, plans=dataclasses.replace(job.plans, track=job.plans.track.replace(
            deferred_encode_s=seconds)))

    # 30 s on one thread is 15 s on the two freed: within 30% of the minute left.
    waited, not_run = wait_for_peers(deferred(30.0), coordinator, poll_s=0.05)
    assert not_run is None and waited.cpus == 2
    # 60 s is 30 s on two threads: more than 30% of the minute left.
    _, not_run = wait_for_peers(deferred(60.0), coordinator, poll_s=0.05)
    assert not_run.status == "not_run" and not_run.track == "traditional"
    assert not_run.failure.startswith("not run: waited for custom_nn; encoding would then take about 30 s on 2 threads, "
                                      "more than 30% of the ")


def test_lightgbm_on_the_log_of_the_target_follows_the_search_only_where_the_plan_prepared_it():
    plain = Plans(PrepPlan(numeric=("x",)), TRADITIONAL, TrainPlan())
    skewed = Plans(plain.prep, TRADITIONAL.replace(families={"lightgbm_log": {}}), TrainPlan())
    assert next_improvement(skewed, _facts(seconds=10.0, can_search=True), 300.0,
                            exhausted=frozenset({"catboost"})).step == "search"
    done = frozenset({"catboost", "search"})
    step = next_improvement(skewed, _facts(seconds=10.0), 300.0, exhausted=done)
    assert step.step == "lightgbm_log" and step.plans.track.models == ("lightgbm", "linear", "lightgbm_log")
    assert "log1p" in step.change and step.expected_s == pytest.approx(20.0)
    assert next_improvement(skewed, _facts(seconds=10.0), 300.0, exhausted=done | {"lightgbm_log"}).step == "bagging"
    assert next_improvement(plain, _facts(seconds=10.0), 300.0, exhausted=done).step == "bagging"
