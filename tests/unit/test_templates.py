"""The rules-policy modules, rendered from a real profile, do what their contract says."""
from __future__ import annotations

import json
import math
import types

import numpy as np
import pandas as pd
import pytest
from helpers import binary_frames, write_task
from scipy import sparse

from iml_ray.codegen.render import render_prep, render_traditional
from iml_ray.plan.guideline_rules import make_blueprint, make_contract
from iml_ray.plan.knowledge import retrieve
from iml_ray.task.inference import analyze_task
from iml_ray.task.profiling import profile_task


def _load(code: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(code, f"{name}.py", "exec"), module.__dict__)
    return module


def _plan(root):
    summary = analyze_task(root)
    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("traditional",)), ("traditional",), 0, 0.2, 1)
    return summary, blueprint, make_contract(summary, blueprint.prep)


def _binary_model(tmp_path, **plan_changes):
    """A 400-row binary task scored on log loss: its rows, its fitted Preprocessor, the traditional plan (with
    `plan_changes`) and that plan's model module."""
    train, test, sample = binary_frames(400, 100)
    root = write_task(tmp_path / "b", train, test, sample, "## Evaluation\nlog loss")
    summary, blueprint, contract = _plan(root)
    plan = blueprint.tracks[0].replace(**plan_changes)
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    return train, test, prep, plan, _load(render_traditional(summary, plan, blueprint.train, contract), "model")


def test_prep_output_is_finite_with_text_block_last(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({
        "id": range(n),
        "num": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        "coerce": np.where(rng.random(n) < 0.1, "?", rng.integers(0, 9, n).astype(str)),
        "cat": rng.choice(["a", "b", None], n),
        "when": pd.date_range("2020-01-01", periods=n, freq="D").astype(str),
        "note": [" ".join(rng.choice(["red", "blue", "good", "bad", "very", "item"], 6)) for _ in range(n)],
        "y": rng.integers(0, 2, n),
    })
    train, test = frame.iloc[:90], frame.iloc[90:].drop(columns="y")
    root = write_task(tmp_path / "t", train, test, pd.DataFrame({"id": test["id"], "y": 0}))
    summary, blueprint, contract = _plan(root)
    assert blueprint.prep.numeric_coerce == ("coerce",) and blueprint.prep.datetime == ("when",)
    assert blueprint.prep.text == ("note",) and "id" not in blueprint.prep.used_columns
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    X_train, X_test = prep.transform(train), prep.transform(test)
    assert sparse.issparse(X_train) and X_train.shape[0] == 90 and X_test.shape == (30, X_train.shape[1])
    assert np.isfinite(X_train.toarray()).all() and np.isfinite(X_test.toarray()).all()
    assert X_train.dtype == np.float32
    assert prep.text_start is not None and prep.text_start < X_train.shape[1]
    assert all(i < prep.text_start for i in prep.categorical_indices)
    # missing values are flagged, not just imputed
    assert "num__missing" in prep.feature_names_


def test_regression_model_selects_on_the_real_metric_in_original_scale(tmp_path):
    rng = np.random.default_rng(1)
    n = 600
    x = rng.uniform(0, 3, size=(n, 3))
    price = np.exp(10 + x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.1, n))
    frame = pd.DataFrame({"Id": range(n), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "SalePrice": price})
    train, test = frame.iloc[:500], frame.iloc[500:].drop(columns="SalePrice")
    root = write_task(tmp_path / "h", train, test, pd.DataFrame({"Id": test["Id"], "SalePrice": 0.0}),
                      "## Evaluation\nRoot mean squared logarithmic error.")
    summary, blueprint, contract = _plan(root)
    assert blueprint.tracks[0].target_transform == "log1p"
    model_module = _load(render_traditional(summary, blueprint.tracks[0], blueprint.train, contract), "model")
    X = train[["a", "b", "c"]].to_numpy(np.float32)
    model = model_module.fit_model(X, train["SalePrice"].to_numpy(), {"n_features": 3, "categorical": []})
    scores = model["inner_scores"]
    # negated RMSLE in the original scale: small and negative, not the log-space nonsense of ~-9
    assert all(-0.5 < s < 0 for s in scores.values()), scores
    pred = model_module.predict_model(model, test[["a", "b", "c"]].to_numpy(np.float32))
    truth = frame["SalePrice"].iloc[500:].to_numpy()
    rmsle = math.sqrt(np.mean((np.log1p(pred) - np.log1p(truth)) ** 2))
    assert rmsle < 0.2 and (pred >= 0).all()


def test_classifier_returns_probabilities_in_class_order(tmp_path):
    train, test, sample = binary_frames(400, 100)
    root = write_task(tmp_path / "b", train, test, sample, "## Evaluation\nlog loss")
    summary, blueprint, contract = _plan(root)
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    model_module = _load(render_traditional(summary, blueprint.tracks[0], blueprint.train, contract), "model")
    model = model_module.fit_model(prep.transform(train), train["label"].to_numpy(), prep.layout_)
    proba = model_module.predict_model(model, prep.transform(test))
    assert proba.shape == (100, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert model["choice"] in ("lightgbm", "linear", "average")
    # informative: the positive-class probability tracks the signal x1
    assert np.corrcoef(proba[:, 1], test["x1"])[0, 1] > 0.5


def test_text_only_task_skips_trees(tmp_path):
    rng = np.random.default_rng(2)
    vocab = {"sport": ["match", "goal", "team", "win"], "tech": ["phone", "chip", "software", "data"]}
    rows = []
    for i in range(200):
        label = "sport" if i % 2 else "tech"
        words = list(rng.choice(vocab[label], 5)) + list(rng.choice(["the", "a", "new", "today"], 4))
        rows.append({"id": i, "text": " ".join(words), "topic": label})
    frame = pd.DataFrame(rows)
    train, test = frame.iloc[:150], frame.iloc[150:].drop(columns="topic")
    root = write_task(tmp_path / "x", train, test, pd.DataFrame({"id": test["id"], "topic": "tech"}))
    summary, blueprint, contract = _plan(root)
    assert blueprint.prep.text_tree_terms == 0          # text alone: no columns of it for trees
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    model_module = _load(render_traditional(summary, blueprint.tracks[0], blueprint.train, contract), "model")
    model = model_module.fit_model(prep.transform(train), (train["topic"] == "tech").astype(int).to_numpy(),
                                   prep.layout_)
    assert model["choice"] == "linear" and "lightgbm" not in model["members"]
    proba = model_module.predict_model(model, prep.transform(test))
    accuracy = np.mean(np.where(proba[:, 1] > 0.5, "tech", "sport") == frame["topic"].iloc[150:].to_numpy())
    assert accuracy > 0.95


@pytest.mark.parametrize("metric", ["auc", "logloss", "accuracy", "f1", "mcc", "balanced_accuracy"])
def test_inner_score_prefers_better_probabilities(tmp_path, metric):
    train, test, sample = binary_frames(60, 20)
    root = write_task(tmp_path / metric, train, test, sample, task_yaml=f"metric: {metric}\n")
    summary, blueprint, contract = _plan(root)
    module = _load(render_traditional(summary, blueprint.tracks[0], blueprint.train, contract), "model")
    y = np.array([0, 0, 1, 1, 1, 0])
    good = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9], [0.7, 0.3]])
    bad = good[:, ::-1]
    assert module._inner_score(y, good) > module._inner_score(y, bad)


def test_dates_as_competitions_spell_them_are_dates(tmp_path):
    """'April 10, 2013' (drug reviews) and '20120618192155Z' beside empty cells (the insults competition):
    profiled as dates, and the prep turns them into finite parts, a zone on some values or not."""
    rng = np.random.default_rng(1)
    n = 120
    stamps = pd.date_range("2012-01-01", periods=n, freq="37h")
    frame = pd.DataFrame({
        "id": range(n),
        "spoken": [d.strftime("%B %d, %Y") for d in stamps],
        "compact": [None if i % 9 == 0 else d.strftime("%Y%m%d%H%M%SZ") for i, d in enumerate(stamps)],
        "x": rng.normal(size=n), "y": rng.integers(0, 2, n),
    })
    train, test = frame.iloc[:90], frame.iloc[90:].drop(columns="y")
    root = write_task(tmp_path / "t", train, test, pd.DataFrame({"id": test["id"], "y": 0}))
    summary, blueprint, _ = _plan(root)
    assert set(blueprint.prep.datetime) == {"spoken", "compact"}
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    X_test = prep.transform(test)
    dense = X_test.toarray() if sparse.issparse(X_test) else X_test
    assert np.isfinite(dense).all()
    present = test["compact"].notna().to_numpy()
    for column, values in (("compact__year", stamps.year), ("compact__month", stamps.month),
                           ("spoken__day", stamps.day)):
        got = dense[:, prep.feature_names_.index(column)]
        rows = present if column.startswith("compact") else np.ones(len(test), bool)
        assert (got[rows] == np.asarray(values[90:])[rows]).all(), column


@pytest.mark.parametrize("family", ["extra_trees", "catboost", "xgboost", "knn"])
@pytest.mark.parametrize("beside", [("lightgbm", "linear"), ()])
def test_every_family_of_the_zoo_joins_the_inner_choice(tmp_path, family, beside):
    """The more_families improvements: a family beside (or instead of) the other models, in the inner choice and
    the blend; probabilities in class order; a regression in the original scale."""
    models = beside + (family,)
    train, test, prep, plan, model_module = _binary_model(tmp_path, models=models)
    model = model_module.fit_model(prep.transform(train), train["label"].to_numpy(), prep.layout_)
    assert family in model["inner_scores"] and isinstance(model["settings"][family], int)
    assert set(model["inner_scores"]) - {"selection"} == set(models) | ({"average"} if len(models) > 1 else set())
    assert set(model["weights"]) == set(model["members"]) and all(w >= 1 for w in model["weights"].values())
    proba = model_module.predict_model(model, prep.transform(test))
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.corrcoef(proba[:, 1], test["x1"])[0, 1] > 0.5

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 3, size=(300, 2))
    y = np.exp(2 + x[:, 0] + rng.normal(0, 0.1, 300))
    frame = pd.DataFrame({"Id": range(300), "a": x[:, 0], "b": x[:, 1], "v": y})
    root = write_task(tmp_path / "r", frame.iloc[:240], frame.iloc[240:].drop(columns="v"),
                      pd.DataFrame({"Id": frame["Id"].iloc[240:], "v": 0.0}), "## Evaluation\nRMSLE")
    summary, blueprint, contract = _plan(root)
    module = _load(render_traditional(summary, blueprint.tracks[0].replace(models=models), blueprint.train, contract), "m")
    fitted = module.fit_model(frame[["a", "b"]].iloc[:240].to_numpy(np.float32), y[:240], {"n_features": 2, "categorical": []})
    pred = module.predict_model(fitted, frame[["a", "b"]].iloc[240:].to_numpy(np.float32))
    assert math.sqrt(np.mean((np.log1p(pred) - np.log1p(y[240:])) ** 2)) < 0.3


@pytest.mark.parametrize("family", ["catboost", "xgboost", "extra_trees"])
def test_a_familys_search_trial_fits_that_family_with_the_trial_settings_and_reports_its_inner_score(tmp_path, family):
    """What Ray Tune runs per trial of a family's search, called as its trainable does; and the settings it finds,
    applied as pipeline.py applies TUNED_PARAMS, reach that family's fits and leave LightGBM's alone."""
    from iml_ray.plan.searches import FAMILY_SEARCH_SPACES

    train, test, sample = binary_frames(600, 100)
    root = write_task(tmp_path / "b", train, test, sample, "## Evaluation\nAUC")
    summary, blueprint, contract = _plan(root)
    plan = blueprint.tracks[0].replace(models=("lightgbm", family), tune={"space": FAMILY_SEARCH_SPACES[family]})
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    module = _load(render_traditional(summary, plan, blueprint.train, contract), "model")
    defaults = module._current_params(list(FAMILY_SEARCH_SPACES[family]))
    assert defaults and all(name.startswith(f"{family}:") for name in defaults)
    assert module._search_space().keys() == FAMILY_SEARCH_SPACES[family].keys()

    trial = {"catboost": {"catboost:depth": 2, "catboost:learning_rate": 0.3},
             "xgboost": {"xgboost:max_depth": 2, "xgboost:learning_rate": 0.3},
             "extra_trees": {"extra_trees:min_samples_leaf": 15, "extra_trees:max_features": 1.0}}[family]
    fits, reports = [], []
    real_fit = module._family_fit

    def record_fit(name, *args, **kwargs):
        fits.append((name, dict(module._family_config(name))))
        return real_fit(name, *args, **kwargs)

    module._family_fit = record_fit
    X, y = prep.transform(train), train["label"].to_numpy()
    module._tune_trial(trial, X, y, prep.layout_, lambda step, score: reports.append((step, score)), {"trial_threads": 1})
    assert [name for name, _ in fits] == [family]
    assert all(fits[0][1][name.split(":")[1]] == value for name, value in trial.items())
    assert len(reports) == 1 and 0.6 < reports[0][1] <= 1.0          # the inner split's AUC: x1 predicts the label

    lightgbm_before = dict(module.MODEL_CONFIG["lightgbm"])
    module.apply_params({**trial, "num_leaves": 7})
    assert module.MODEL_CONFIG["lightgbm"] == {**lightgbm_before, "num_leaves": 7}
    model = module.fit_model(X, y, prep.layout_)
    assert fits[-1][0] == family and all(fits[-1][1][name.split(":")[1]] == value for name, value in trial.items())
    assert model["inner_scores"][family] > 0.6


@pytest.mark.parametrize("family", ["lightgbm", "catboost"])
def test_a_search_trial_is_scored_on_another_draw_of_the_inner_split_than_the_fits_blend(tmp_path, family):
    """The best of dozens of trials scores better on the rows that chose it than elsewhere: scored on the fits' own
    inner rows, the searched family then outweighed the others in the blend chosen on them."""
    from iml_ray.plan.searches import FAMILY_SEARCH_SPACES

    space = FAMILY_SEARCH_SPACES.get(family) or {"num_leaves": ["logint", 8, 128]}
    models = ("lightgbm", "linear") if family == "lightgbm" else ("lightgbm", "linear", family)
    train, _, prep, _, module = _binary_model(tmp_path, models=models, tune={"space": space})
    X, y = prep.transform(train), train["label"].to_numpy()
    scored = []
    real_score = module._inner_score

    def record(y_true, output):
        scored.append(np.asarray(y_true).copy())
        return real_score(y_true, output)

    module._inner_score = record
    trial = {"num_leaves": 7} if family == "lightgbm" else {"catboost:depth": 2}
    module._tune_trial(trial, X, y, prep.layout_, lambda step, score: None, {"trial_threads": 1})
    search_rows, fit_rows = module._search_split(y)[1], module._inner_split(y)[1]
    assert len(search_rows) == len(fit_rows) and set(search_rows) != set(fit_rows)
    assert scored and all(np.array_equal(rows, y[search_rows]) for rows in scored)
    scored.clear()
    module.fit_model(X, y, prep.layout_)
    assert scored and all(np.array_equal(rows, y[fit_rows]) for rows in scored)


def test_bagging_fits_one_model_per_fold_and_family_and_chooses_on_out_of_fold_outputs(tmp_path):
    train, test, prep, plan, module = _binary_model(tmp_path, bagging_folds=5)
    model = module.fit_model(prep.transform(train), train["label"].to_numpy(), prep.layout_)
    assert model["settings"]["bagging_folds"] == 5
    assert set(model["inner_scores"]) == {"lightgbm", "linear", "average"}
    assert all(len(fitted) == 5 for fitted in model["members"].values())
    # Out-of-fold log loss over all 400 rows, not one inner split's 60.
    assert all(-1.0 < score < 0 for score in model["inner_scores"].values())
    proba = module.predict_model(model, prep.transform(test))
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.corrcoef(proba[:, 1], test["x1"])[0, 1] > 0.5


def test_repeated_bagging_draws_its_folds_on_more_shuffles_and_averages_their_out_of_fold_outputs(tmp_path):
    """Two shuffles of 3 folds: 6 models per family, each row left out by two of them; the first shuffle's folds
    are a single bag's (the fits a track's earlier round made), the second's are others."""
    train, test, prep, plan, module = _binary_model(tmp_path, bagging_folds=3)
    X, y = prep.transform(train), train["label"].to_numpy()
    single = module.fit_model(X, y, prep.layout_)
    module.MODEL_CONFIG["bagging_repeats"] = 2
    drawn = []
    real = module._bag_folds

    def record(X_, y_fit, folds, *args):
        drawn.append([np.sort(valid) for _, valid in folds])
        return real(X_, y_fit, folds, *args)

    module._bag_folds = record
    repeated = module.fit_model(X, y, prep.layout_)
    assert repeated["settings"]["bagging_repeats"] == 2 and "bagging_repeats" not in single["settings"]
    assert all(len(fitted) == 6 for fitted in repeated["members"].values())
    folds = drawn[-1]
    assert len(folds) == 6
    counts = np.bincount(np.concatenate(folds), minlength=len(y))
    assert (counts == 2).all()                                      # every row left out once per shuffle
    assert not any(np.array_equal(folds[0], other) for other in folds[3:])   # the second shuffle draws other folds
    # Averaged over both shuffles: out-of-fold log loss stays a log loss of probabilities.
    assert all(-1.0 < score < 0 for score in repeated["inner_scores"].values())
    assert repeated["inner_scores"] != single["inner_scores"]
    proba = module.predict_model(repeated, prep.transform(test))
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.corrcoef(proba[:, 1], test["x1"])[0, 1] > 0.5


@pytest.mark.parametrize("bagging_folds", [0, 3])
def test_a_fixed_blend_fits_only_its_families_and_keeps_its_weights(tmp_path, bagging_folds):
    """The final fit reuses the blend its validation chose: only those families are fitted, with those weights.
    A blend naming a family the plan cannot fit is set aside, and the fit chooses its own."""
    train, test, prep, plan, module = _binary_model(tmp_path, bagging_folds=bagging_folds)
    X, y = prep.transform(train), train["label"].to_numpy()
    assert {"lightgbm", "linear"} <= set(plan.models) and "catboost" not in plan.models

    module.fix_blend({"linear": 1})
    fixed = module.fit_model(X, y, prep.layout_)
    assert fixed["choice"] == "validated: 1.00 linear" and fixed["weights"] == {"linear": 1.0}
    assert set(fixed["members"]) == {"linear"} and "lightgbm" not in fixed["settings"]
    assert module.model_blend(fixed) == {"linear": 1.0}
    proba = module.predict_model(fixed, prep.transform(test))
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)

    module.fix_blend({"linear": 0.5, "catboost": 0.5})
    unfit = module.fit_model(X, y, prep.layout_)
    assert not unfit["choice"].startswith("validated") and {"lightgbm", "linear", "average"} <= set(unfit["inner_scores"])

    module.fix_blend(None)
    free = module.fit_model(X, y, prep.layout_)
    assert not free["choice"].startswith("validated") and {"lightgbm", "linear", "average"} <= set(free["inner_scores"])


def test_the_final_fit_refits_the_validated_blend_with_the_settings_its_validation_chose(tmp_path, monkeypatch):
    """No inner split the second time: only the blend's families are fitted, once each, on every row, a boosted
    model's validated rounds growing with the rows; the validation's temperature is kept."""
    monkeypatch.setenv("IML_FIT_CACHE", str(tmp_path / "fits"))          # so FITS counts the fits made
    train, test, prep, plan, module = _binary_model(tmp_path)
    X, y = prep.transform(train), train["label"].to_numpy()
    validated = module.fit_model(X[:300], y[:300], prep.layout_)
    refit = module.model_refit(validated)
    assert refit["rows"] == 300 and set(refit["settings"]) == set(validated["weights"])
    assert module.model_refit(validated) == json.loads(json.dumps(refit))          # what run_info.json carries

    module.fix_blend({"lightgbm": 1})
    module.fix_refit({"settings": {"lightgbm": 40}, "rows": 300, "temperature": 1.25})
    made = module.FITS["made"]
    final = module.fit_model(X, y, prep.layout_)
    assert final["choice"] == "validated: 1.00 lightgbm (its settings refitted)" and set(final["members"]) == {"lightgbm"}
    assert final["settings"] == {"lightgbm": 53} and final["temperature"] == 1.25     # 40 rounds x 400/300 rows
    assert module.FITS["made"] == made + 1                  # the refit alone: no early-stopped fit on an inner split
    assert final["members"]["lightgbm"][0].current_iteration() == module._refit_rounds(53)
    assert module.model_blend(final) == {"lightgbm": 1.0} and module.model_refit(final) is None
    proba = module.predict_model(final, prep.transform(test))
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)

    # Settings for a blend they do not cover are set aside: the fit chooses its own on an inner split.
    module.fix_blend({"lightgbm": 1, "linear": 1})
    chosen = module.fit_model(X, y, prep.layout_)
    assert chosen["choice"] == "validated: 0.50 lightgbm + 0.50 linear" and chosen["inner_scores"]
    module.fix_blend(None)
    module.fix_refit(None)


def test_a_sampled_tracks_final_fit_learns_from_every_row_only_when_planned(tmp_path):
    """A row cap holds the validation fit (with its inner split) on its sample; with final_train_rows the final fit,
    which refits what the validation chose, takes up to that many rows, its boosted rounds growing with them.
    Without it, or when the final fit must choose anew, the cap holds there too."""
    train, test, prep, plan, module = _binary_model(tmp_path)
    X, y = prep.transform(train), train["label"].to_numpy()
    module.MODEL_CONFIG["max_train_rows"] = 200
    validated = module.fit_model(X, y, prep.layout_)
    assert validated["rows"] == 200 and module.model_refit(validated)["rows"] == 200

    module.fix_blend({"lightgbm": 1})
    module.fix_refit({"settings": {"lightgbm": 40}, "rows": 200, "temperature": 1.0})
    capped = module.fit_model(X, y, prep.layout_)
    assert capped["rows"] == 200 and capped["settings"] == {"lightgbm": 40}
    module.MODEL_CONFIG["final_train_rows"] = 300
    more = module.fit_model(X, y, prep.layout_)
    assert more["rows"] == 300 and more["settings"] == {"lightgbm": 60}                  # 40 rounds x 300/200 rows
    module.MODEL_CONFIG["final_train_rows"] = 10_000
    every = module.fit_model(X, y, prep.layout_)
    assert every["rows"] == len(y) == 400 and every["settings"] == {"lightgbm": 80}      # 40 rounds x 400/200 rows
    proba = module.predict_model(every, prep.transform(test))
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)
    # A validation fit (no refit to make) keeps the cap whatever final_train_rows says.
    module.fix_blend(None)
    module.fix_refit(None)
    assert module.fit_model(X, y, prep.layout_)["rows"] == 200
    module.MODEL_CONFIG["final_train_rows"] = 0
    module.MODEL_CONFIG["max_train_rows"] = None


def test_the_linear_model_chooses_whether_the_tfidf_block_is_scaled_like_the_other_columns(tmp_path, monkeypatch):
    """TF-IDF rows have unit length as the vectoriser writes them; scaling each term by its largest value weighs a
    rare term like a common one, and a column of unit variance beside them outweighs any term. With text beside
    other columns, each strength of the grid is tried three ways on the inner split: scaled, as written, and the
    text alone."""
    rng = np.random.default_rng(3)
    words = ["good", "great", "bad", "awful", "fine", "item", "very", "rare", "ok", "meh"]
    n = 300
    label = rng.integers(0, 2, n)
    notes = [" ".join(rng.choice(words[:2] if y else words[2:4], 2)) + " " + " ".join(rng.choice(words[4:], 5))
             for y in label]
    frame = pd.DataFrame({"id": range(n), "size": rng.normal(size=n), "note": notes, "label": label})
    train, test = frame.iloc[:240], frame.iloc[240:].drop(columns="label")
    root = write_task(tmp_path / "t", train, test, pd.DataFrame({"id": test["id"], "label": 0.5}),
                      "## Evaluation\nlog loss")
    summary, blueprint, contract = _plan(root)
    assert blueprint.prep.text == ("note",)
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    module = _load(render_traditional(summary, blueprint.tracks[0], blueprint.train, contract), "model")
    X, y = prep.transform(train), train["label"].to_numpy()
    start = prep.layout_["text"][0]

    unit = module._linear_fit(X, y, prep.categorical_indices, {"strength": 10.0, "text": "unit"}, start)
    design = module._linear_design(unit["state"], X)
    assert (design[:, -(X.shape[1] - start):] != X[:, start:]).nnz == 0          # the block as written
    assert design.shape[1] > X.shape[1] - start                                # beside the other columns
    scaled = module._linear_fit(X, y, prep.categorical_indices, 10.0, start)
    assert (module._linear_design(scaled["state"], X)[:, -(X.shape[1] - start):] != X[:, start:]).nnz > 0
    alone = module._linear_fit(X, y, prep.categorical_indices, {"strength": 10.0, "text": "alone"}, start)
    design = module._linear_design(alone["state"], X)
    assert design.shape == X[:, start:].shape and (design != X[:, start:]).nnz == 0
    assert alone["model"].coef_.shape[1] == X.shape[1] - start
    proba = module._linear_output(alone, prep.transform(test))
    assert proba.shape == (60, 2) and np.allclose(proba.sum(axis=1), 1.0)

    tried = []
    fit = module._linear_fit
    monkeypatch.setattr(module, "_linear_fit", lambda X, y, c, setting, t=None: tried.append(setting) or fit(X, y, c, setting, t))
    model = module.fit_model(X, y, prep.layout_)
    grid = module._linear_grid()
    ways = [{"strength": c, "text": "unit"} for c in grid], [{"strength": c, "text": "alone"} for c in grid]
    assert tried[:3 * len(grid)] == [s for triple in zip(grid, *ways) for s in triple]
    assert model["settings"]["linear"] in tried
    # Text with no other column beside it has nothing to leave out: two ways, not three.
    assert module._linear_settings(0) == [s for pair in zip(grid, ways[0]) for s in pair]
    proba = module.predict_model(model, prep.transform(test))
    assert proba.shape == (60, 2) and np.allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("separable", [True, False])
def test_the_linear_models_strength_goes_past_its_grids_end_while_that_end_keeps_winning(tmp_path, monkeypatch,
                                                                                         separable):
    """Classes a line separates want a weaker penalty than any of a grid of strong ones; a label that is noise wants
    a stronger one than a grid of weak ones. The search goes one grid step past the winning end at a time, while
    each step beats the last, and the strength chosen is the best it tried."""
    rng = np.random.default_rng(11)
    n = 400
    x = rng.normal(size=(n, 2 if separable else 30))
    label = (x[:, 0] > 0).astype(int) if separable else rng.integers(0, 2, n)
    frame = pd.DataFrame({"id": range(n), **{f"x{i}": x[:, i] for i in range(x.shape[1])}, "label": label})
    train, test = frame.iloc[:320], frame.iloc[320:].drop(columns="label")
    root = write_task(tmp_path / "s", train, test, pd.DataFrame({"id": test["id"], "label": 0.5}),
                      "## Evaluation\nlog loss")
    summary, blueprint, contract = _plan(root)
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    module = _load(render_traditional(summary, blueprint.tracks[0], blueprint.train, contract), "model")
    grid = [0.001, 0.01] if separable else [1.0, 10.0]
    module.MODEL_CONFIG["models"] = ["linear"]
    module.MODEL_CONFIG["linear"] = {**module.MODEL_CONFIG["linear"], "c_grid": grid}
    X, y = prep.transform(train), train["label"].to_numpy()
    inner_train, inner_valid = module._inner_split(y)
    scores, fit = {}, module._linear_fit

    def recorded(X_fit, y_fit, cats, setting, text_start=None):
        fitted = fit(X_fit, y_fit, cats, setting, text_start)
        if len(y_fit) == len(inner_train):
            scores[setting] = module._inner_score(y[inner_valid], module._linear_output(fitted, X[inner_valid]))
        return fitted

    monkeypatch.setattr(module, "_linear_fit", recorded)
    model = module.fit_model(X, y, prep.layout_)
    tried = list(scores)
    edge, step = (grid[-1], 10.0) if separable else (grid[0], 0.1)
    assert tried[:2] == grid and tried[2] == pytest.approx(edge * step)
    assert 3 <= len(tried) <= 2 + module.LINEAR_EDGE_STEPS
    chosen = model["settings"]["linear"]
    assert chosen not in grid and scores[chosen] == max(scores.values())
    # Past the grid's end, every strength but the last tried beat the one before it.
    past = [edge, *tried[2:]]
    assert all(scores[later] > scores[earlier] for earlier, later in zip(past[:-2], past[1:-1]))
    assert module._beyond_the_edge({"strength": edge, "text": "unit"})[0] == {"strength": pytest.approx(edge * step),
                                                                                "text": "unit"}
    module.MODEL_CONFIG["linear"]["c_grid"] = [0.1, 1.0, 10.0]
    assert module._beyond_the_edge(1.0) == []


def test_greedy_ensemble_selection_weighs_families_by_how_often_they_are_picked(tmp_path):
    """Three families whose errors cancel at 2:1 of two of them: the selection finds the blend the plain average
    and every single family miss, and predict_model applies its weights."""
    frame = pd.DataFrame({"Id": range(40), "a": np.arange(40.0), "v": np.arange(40.0)})
    root = write_task(tmp_path / "r", frame.iloc[:30], frame.iloc[30:].drop(columns="v"),
                      pd.DataFrame({"Id": frame["Id"].iloc[30:], "v": 0.0}), "## Evaluation\nRMSE")
    summary, blueprint, contract = _plan(root)
    module = _load(render_traditional(summary, blueprint.tracks[0], blueprint.train, contract), "m")
    truth = np.linspace(0.0, 10.0, 50)
    outputs = {"up": truth + 1.0, "down": truth - 2.0, "far": truth + 5.0}
    choice, weights, scores = module._choose(truth, outputs)
    assert choice == "selection" and weights == {"up": 2, "down": 1}
    assert scores["selection"] == pytest.approx(0.0, abs=1e-9)
    assert scores["selection"] > max(scores["up"], scores["down"], scores["far"], scores["average"])
    assert np.allclose(module._blend(outputs, weights), truth)


def test_character_ngrams_join_the_word_terms_in_the_text_block(tmp_path):
    """tfidf_char_ngram_max: a second vocabulary of character n-grams per text column, inside the text block, so a
    misspelt or obfuscated word still shares terms with its spelt form."""
    train = pd.DataFrame({"id": range(8), "note": ["great film", "graet film", "awful plot", "awfull plot"] * 2,
                          "y": [1, 1, 0, 0] * 2})
    test = pd.DataFrame({"id": [8, 9], "note": ["greaat", "awfl"]})
    root = write_task(tmp_path / "t", train, test, pd.DataFrame({"id": test["id"], "y": 0}))
    summary, blueprint, _ = _plan(root)
    # Eight short notes profile as a category: take the column as text, as a longer corpus would be.
    plan = blueprint.prep.replace(categorical=(), text=("note",), tfidf_char_ngram_max=4, tfidf_min_df=1)
    prep = _load(render_prep(summary, plan), "prep").Preprocessor().fit(train)
    start, end = prep.layout_["text"]
    names = prep.feature_names_[start:end]
    assert any(n.startswith("note__tfidf_") for n in names) and any(n.startswith("note__char_") for n in names)
    assert end == len(prep.feature_names_) == prep.transform(test).shape[1]
    X = prep.transform(test).toarray()
    chars = [i for i, n in enumerate(prep.feature_names_) if n.startswith("note__char_")]
    words = [i for i, n in enumerate(prep.feature_names_) if n.startswith("note__tfidf_")]
    # Neither test word is in the word vocabulary; both share character n-grams with the train words.
    assert not X[:, words].any() and (X[:, chars] > 0).sum(axis=1).min() >= 2
    without = _load(render_prep(summary, plan.replace(tfidf_char_ngram_max=0)), "prep").Preprocessor().fit(train)
    assert not any("__char_" in n for n in without.feature_names_)


def test_trees_see_a_text_columns_length_and_most_frequent_words_beside_other_columns(tmp_path):
    """text_tree_terms (the text_words improvement): a text's length and its most frequent words (not stop words)
    are dense columns before the TF-IDF block, so trees fit on them; a label carried by a title in a name is learnt
    by LightGBM alone."""
    rng = np.random.default_rng(3)
    n = 400
    titles = rng.choice(["mr", "master", "miss"], n)
    given = rng.choice(["john", "james", "mary", "anna", "george", "william", "elsa", "paul"], n)
    frame = pd.DataFrame({"id": range(n), "fare": rng.normal(30, 10, n).round(2),
                          "name": [f"{g.title()} of the {t.title()} {s}" for g, t, s in
                                   zip(given, titles, rng.choice(["smith", "brown", "jones", "clark"], n))],
                          "y": (titles == "master").astype(int)})
    train, test = frame.iloc[:300], frame.iloc[300:].drop(columns="y")
    root = write_task(tmp_path / "t", train, test, pd.DataFrame({"id": test["id"], "y": 0}), "## Evaluation\nAUC")
    summary, blueprint, contract = _plan(root)
    assert blueprint.prep.text == ("name",) and blueprint.prep.text_tree_terms == 0
    words = blueprint.prep.replace(text_tree_terms=30)
    prep = _load(render_prep(summary, words), "prep").Preprocessor().fit(train)
    start = prep.layout_["text"][0]
    dense = prep.feature_names_[:start]
    assert {"name__characters", "name__words", "name__word_master", "name__word_mr"} <= set(dense)
    assert "name__word_the" not in dense and "name__word_of" not in dense          # stop words
    X = prep.transform(test).toarray()
    column = prep.feature_names_.index("name__word_master")
    in_block = prep.feature_names_.index("name__tfidf_master", start)
    assert np.array_equal(X[:, column], X[:, in_block]) and (X[:, column] > 0).any()
    assert np.array_equal(X[:, prep.feature_names_.index("name__words")], test["name"].str.split().str.len())

    def lightgbm_auc(prep_plan):
        prep = _load(render_prep(summary, prep_plan), "prep").Preprocessor().fit(train)
        plan = blueprint.tracks[0].replace(models=("lightgbm",))
        module = _load(render_traditional(summary, plan, blueprint.train, contract), "model")
        model = module.fit_model(prep.transform(train), train["y"].to_numpy(), prep.layout_)
        truth = frame["y"].iloc[300:].to_numpy()
        score = module.predict_model(model, prep.transform(test))[:, 1]
        return np.mean([s_pos > s_neg for s_pos in score[truth == 1] for s_neg in score[truth == 0]])

    assert lightgbm_auc(words) > 0.95
    assert lightgbm_auc(blueprint.prep) < 0.7      # the fare alone says nothing


def test_mape_is_fitted_with_the_objective_that_weighs_rows_as_the_metric_does(tmp_path):
    """Targets over three orders of magnitude, scored by MAPE: the card sets LightGBM's (and CatBoost's) MAPE objective,
    and that beats the plain L2 fit on the metric."""
    rng = np.random.default_rng(3)
    n = 1500
    x = rng.uniform(0, 7, size=(n, 2))
    y = np.exp(x[:, 0]) * rng.lognormal(0, 0.3, n) + 1.0
    frame = pd.DataFrame({"Id": range(n), "a": x[:, 0], "b": x[:, 1], "v": y})
    root = write_task(tmp_path / "m", frame.iloc[:1200], frame.iloc[1200:].drop(columns="v"),
                      pd.DataFrame({"Id": frame["Id"].iloc[1200:], "v": 0.0}), "## Evaluation\nMean absolute percentage error.")
    summary, blueprint, contract = _plan(root)
    plan = blueprint.tracks[0]
    assert summary.metric == "mape" and plan.lightgbm["objective"] == "mape"
    X_train, X_test = frame[["a", "b"]].iloc[:1200].to_numpy(np.float32), frame[["a", "b"]].iloc[1200:].to_numpy(np.float32)

    def test_mape(track):
        module = _load(render_traditional(summary, track.replace(models=("lightgbm",)), blueprint.train, contract), "m")
        pred = module.predict_model(module.fit_model(X_train, y[:1200], {"n_features": 2, "categorical": []}), X_test)
        return float(np.mean(np.abs(pred - y[1200:]) / np.abs(y[1200:])))

    plain = plan.replace(lightgbm={k: v for k, v in plan.lightgbm.items() if k != "objective"})
    assert test_mape(plan) < 0.9 * test_mape(plain)


def test_a_log1p_column_transform_keeps_the_sign_and_leaves_the_other_columns(tmp_path):
    train, test, sample = binary_frames(200, 50)
    train = train.assign(x1=train["x1"] * 1000)
    root = write_task(tmp_path / "b", train, test, sample, "## Evaluation\nAUC")
    summary, blueprint, _ = _plan(root)
    plain = _load(render_prep(summary, blueprint.prep), "plain").Preprocessor().fit(train)
    logged_plan = blueprint.prep.replace(column_transforms={"x1": {"transform": "log1p", "why": "skewed"}})
    logged = _load(render_prep(summary, logged_plan), "logged").Preprocessor().fit(train)
    before, after = (np.asarray(p.transform(train).todense() if sparse.issparse(p.transform(train)) else p.transform(train))
                     for p in (plain, logged))
    x1 = plain.feature_names_.index("x1")
    assert np.allclose(after[:, x1], np.sign(before[:, x1]) * np.log1p(np.abs(before[:, x1])), atol=1e-3)
    others = [i for i in range(before.shape[1]) if i != x1]
    assert np.allclose(after[:, others], before[:, others])


def test_text_clean_decodes_escapes_and_entities_and_drops_tags_and_links(tmp_path):
    """Scraped comments (the insults task writes "\\xa0" and "\\u2026" literally): cleaned, the terms are words."""
    rng = np.random.default_rng(0)
    raw = ["you are\\xa0great\\u2026 see http://x.example/a?b=1", "<b>bad</b> &amp; rude\\nreally",
           "fine words here", "great great &quot;fine&quot;"]
    rows = 80
    train = pd.DataFrame({"id": range(rows), "comment": [raw[i % 4] + f" w{i % 7}" for i in range(rows)],
                          "label": rng.integers(0, 2, rows)})
    test = train.drop(columns="label").head(10)
    root = write_task(tmp_path / "t", train, test, pd.DataFrame({"id": test["id"], "label": 0}), "## Evaluation\nAUC")
    summary, blueprint, _ = _plan(root)
    assert blueprint.prep.text == ("comment",)
    terms = {}
    for clean in (False, True):
        prep = _load(render_prep(summary, blueprint.prep.replace(text_clean=clean)), "p").Preprocessor().fit(train)
        terms[clean] = {t for _, v in prep.vectorizers_.values() for t in v.get_feature_names_out() if " " not in t}
    assert {"xa0great", "u2026", "http", "amp"} <= terms[False]
    assert {"great", "url", "bad", "rude", "really"} <= terms[True]
    assert not {"xa0great", "u2026", "http", "amp", "quot"} & terms[True]


def _quantile_task(tmp_path, n=2000, seed=5):
    """y = 3a + noise whose spread grows with b; evaluated by the pinball loss at the 90th percentile."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2, size=(n, 2))
    y = 3 * x[:, 0] + rng.normal(0, 0.2 + x[:, 1], n)
    frame = pd.DataFrame({"Id": range(n), "a": x[:, 0], "b": x[:, 1], "v": y})
    cut = int(0.8 * n)
    root = write_task(tmp_path / "q", frame.iloc[:cut], frame.iloc[cut:].drop(columns="v"),
                      pd.DataFrame({"Id": frame["Id"].iloc[cut:], "v": 0.0}),
                      "## Evaluation\nSubmissions are scored by the pinball loss at the 90th percentile.")
    return root, frame[["a", "b"]].to_numpy(np.float32), y, cut


@pytest.mark.parametrize("family", ["lightgbm", "linear", "catboost", "xgboost"])
def test_a_pinball_loss_is_fitted_for_its_quantile_by_every_family(tmp_path, family):
    """The 90th percentile, not the mean: about 90% of the test targets fall below the predictions, and the pinball
    loss beats the mean's shifted by nothing."""
    root, X, y, cut = _quantile_task(tmp_path)
    summary, blueprint, contract = _plan(root)
    assert summary.metric == "pinball_0.9"
    assert any("pinball loss at 0.9" in reason for reason in blueprint.tracks[0].reasons)
    module = _load(render_traditional(summary, blueprint.tracks[0].replace(models=(family,)), blueprint.train,
                                      contract), "m")
    pred = module.predict_model(module.fit_model(X[:cut], y[:cut], {"n_features": 2, "categorical": []}), X[cut:])
    coverage = float(np.mean(y[cut:] <= pred))
    assert 0.83 < coverage < 0.96, coverage
    from iml_ray.metrics.registry import get_metric

    pinball = get_metric("pinball_0.9")
    mean_fit = np.polyval(np.polyfit(X[:cut, 0], y[:cut], 1), X[cut:, 0])
    assert pinball.score(y[cut:], pred) < 0.75 * pinball.score(y[cut:], mean_fit)


@pytest.mark.parametrize("family", ["catboost", "xgboost"])
def test_a_boosted_familys_early_stopped_fit_stops_at_its_time_limit(tmp_path, family):
    """diamonds at 90 s: the CatBoost round ran past the time left and timed out. The round is sized to the time
    left and the family's early-stopped fit stops at its limit; the refit takes the rounds it reached, and the model
    says the limit stopped it (a later round lets it train longer)."""
    train, test, sample = binary_frames(3000, 100)
    root = write_task(tmp_path / "b", train, test, sample, "## Evaluation\nlog loss")
    summary, blueprint, contract = _plan(root)
    slow = {"learning_rate": 0.001, "early_stopping_rounds": 5000}        # would run all 3,000 rounds
    plan = blueprint.tracks[0].replace(models=(family,), families={family: {**slow, "time_limit_s": 0.5}})
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    module = _load(render_traditional(summary, plan, blueprint.train, contract), "model")
    model = module.fit_model(prep.transform(train), train["label"].to_numpy(), prep.layout_)
    reached = model["settings"][family]
    assert 1 <= reached < 3000
    assert module.describe_model(model)["time_stopped"] == [family]
    proba = module.predict_model(model, prep.transform(test))
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_lightgbms_early_stopped_fit_stops_at_its_time_limit_and_says_so(tmp_path):
    """digits_6k at 90 s: the final fit's LightGBM went on for 735 rounds of ten trees (25.5 s, the validation fit's
    stopped at 97) and the first round ran out of its time. The early-stopped fit stops at its limit, the refit
    takes the rounds it reached, and the model says the limit stopped it (a later round lets it train longer)."""
    train, test, sample = binary_frames(3000, 100)
    root = write_task(tmp_path / "b", train, test, sample, "## Evaluation\nlog loss")
    summary, blueprint, contract = _plan(root)
    slow = {"learning_rate": 0.001, "early_stopping_rounds": 5000, "max_rounds": 3000}     # would run all 3,000
    prep = _load(render_prep(summary, blueprint.prep), "prep").Preprocessor().fit(train)
    X, y = prep.transform(train), train["label"].to_numpy()

    def fit(lightgbm):
        plan = blueprint.tracks[0].replace(models=("lightgbm",), lightgbm=lightgbm)
        module = _load(render_traditional(summary, plan, blueprint.train, contract), "model")
        return module, module.fit_model(X, y, prep.layout_)

    module, limited = fit({**slow, "time_limit_s": 0.5})
    assert 1 <= limited["settings"]["lightgbm"] < 3000
    assert module.describe_model(limited)["time_stopped"] == ["lightgbm"]
    proba = module.predict_model(limited, prep.transform(test))
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)
    module, free = fit({**slow, "max_rounds": 40})
    assert free["settings"]["lightgbm"] == 40 and "time_stopped" not in module.describe_model(free)


def test_the_round_that_adds_a_boosted_family_gives_it_a_time_limit_from_the_time_left():
    from iml_ray.blueprint import PrepPlan, TrackPlan, TrainPlan
    from iml_ray.plan.improvements import RoundFacts, next_improvement
    from iml_ray.plan.repairs import Plans

    plans = Plans(PrepPlan(numeric=("x",)), TrackPlan("traditional"), TrainPlan())
    facts = RoundFacts(12.0, {"validation": {"model": {}}, "tuned_params": {}}, 40_000, False)
    # Its estimate is 3x the round (36 s); with 300 s left its fits may go on to a third of them (100 s): a family
    # still improving when its estimate is spent keeps improving (diamonds' CatBoost at 300 s).
    roomy = next_improvement(plans, facts, seconds_left=300.0)
    assert roomy.step == "catboost" and roomy.expected_s == pytest.approx(36.0)
    # The round's fits in limits: the validation's early-stopped fit and its refit (2.4), and the final fit's refit
    # alone: 1/0.8 the rounds on 1/0.8 the rows (1.4 / 0.8 ** 2).
    limits = 2.4 + 1.4 / 0.8 ** 2
    assert roomy.plans.track.families["catboost"]["time_limit_s"] == round((100.0 - 12.0) / limits, 1)
    # With 60 s left a third (20 s) is below the estimate: the estimate sets the limit.
    fair = next_improvement(plans, facts, seconds_left=60.0)
    assert fair.expected_s == pytest.approx(36.0)
    assert fair.plans.track.families["catboost"]["time_limit_s"] == round((36.0 - 12.0) / limits, 1)
    tight = next_improvement(plans, facts, seconds_left=32.0)                        # 32 s where 36 s were wanted
    assert tight.step == "catboost" and tight.expected_s == pytest.approx(32.0)
    assert tight.plans.track.families["catboost"]["time_limit_s"] == round(20.0 / limits, 1)
    # Six pipeline fits under 5 folds: the limit would be 1.7 s; it is never below 2 s. The limit only bounds the
    # fits (6 x 2.4 x 2 s = 28.8 s): the round is expected to take what the family's fits are estimated at, 24 s.
    folds = next_improvement(Plans(plans.prep, plans.track, TrainPlan(holdout_folds=5)), facts, 60.0)
    assert folds.plans.track.families["catboost"]["time_limit_s"] == 2.0 and folds.expected_s == pytest.approx(12 + 24)
    # A slower round (30 s): its estimate (60 s) sets a limit above 2 s, which the fits may use to the end.
    short = next_improvement(Plans(plans.prep, plans.track, TrainPlan(holdout_folds=5)),
                             RoundFacts(30.0, facts.run_info, 40_000, False), 100.0)
    assert short.plans.track.families["catboost"]["time_limit_s"] > 2.0 and short.expected_s == pytest.approx(90.0)


@pytest.mark.parametrize("metric", ["logloss", "accuracy"])
def test_log_loss_probabilities_are_tempered_on_held_out_rows_and_other_metrics_are_not(tmp_path, metric):
    """Under-confident but well-ordered probabilities (early-stopped trees on a small table): for log loss the
    fitted temperature sharpens them (below 1, shrunk towards 1 on few rows) and lowers the loss; accuracy keeps 1.
    predict_model applies the model's temperature."""
    train, test, sample = binary_frames(60, 20)
    root = write_task(tmp_path / metric, train, test, sample, task_yaml=f"metric: {metric}\n")
    summary, blueprint, contract = _plan(root)
    module = _load(render_traditional(summary, blueprint.tracks[0], blueprint.train, contract), "model")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p1 = np.where(y == 1, 0.7, 0.3)
    p1[:20] = 1.0 - p1[:20]                     # a few wrong, so the best temperature is finite
    proba = np.column_stack([1.0 - p1, p1])
    temperature = module._fit_temperature(y, proba)
    if metric == "accuracy":
        assert temperature == 1.0
        return
    assert 0.25 < temperature < 0.8
    tempered = module._tempered(proba, temperature)
    assert np.allclose(tempered.sum(axis=1), 1.0)
    assert (tempered.argmax(axis=1) == proba.argmax(axis=1)).all()
    assert module._inner_score(y, tempered) > module._inner_score(y, proba)
    # Few rows pull it towards 1.
    assert temperature < module._fit_temperature(y[18:58], proba[18:58]) <= 1.0     # the same 5% wrong
    X = np.column_stack([np.linspace(0, 1, 200), np.random.default_rng(1).normal(size=200)])
    labels = (X[:, 0] > 0.5).astype(int)
    model = module.fit_model(X, labels, {"numeric": [0, 1]})
    plain = module.predict_model({**model, "temperature": 1.0}, X)
    sharper = module.predict_model({**model, "temperature": 0.5}, X)
    assert np.allclose(sharper, module._tempered(plain, 0.5))


def test_a_tracks_rounds_reuse_each_familys_fit_and_fit_only_what_changed(tmp_path, monkeypatch):
    """With IML_FIT_CACHE, fitting again on the same rows reads every family back (LightGBM is not fitted: its fit
    would raise), a round that adds a family fits that family alone, and a changed LightGBM setting fits LightGBM
    again. Without the folder (pipeline.py run alone) nothing is stored."""
    train, test, sample = binary_frames(200, 20)
    root = write_task(tmp_path / "t", train, test, sample, task_yaml="metric: logloss\n")
    summary, blueprint, contract = _plan(root)
    code = render_traditional(summary, blueprint.tracks[0], blueprint.train, contract)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)

    alone = _load(code, "alone")
    alone.MODEL_CONFIG["models"] = ["lightgbm", "linear"]
    alone.fit_model(X, y, {"numeric": [0, 1, 2, 3]})

    cache = tmp_path / "fit_cache"
    assert not cache.exists() and alone._data_digest(X) is None
    monkeypatch.setenv("IML_FIT_CACHE", str(cache))
    first = _load(code, "first")
    first.MODEL_CONFIG["models"] = ["lightgbm", "linear"]
    model = first.fit_model(X, y, {"numeric": [0, 1, 2, 3]})
    stored = set(cache.iterdir())
    assert len(stored) == 2 + len(model["weights"])         # each family's inner fit, the chosen ones' refits
    # Each family's fits are counted, so the next round can be sized by a family's seconds per fit.
    counts = {name: 1 + (name in model["weights"]) for name in ("lightgbm", "linear")}
    assert first.describe_model(model)["fits"]["counts"] == counts

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted again")

    same = _load(code, "same")
    same.MODEL_CONFIG["models"] = ["lightgbm", "linear"]
    same._lgbm_fit = same._linear_fit = no_fit
    read_back = same.fit_model(X, y, {"numeric": [0, 1, 2, 3]})
    assert np.allclose(same.predict_model(read_back, X), first.predict_model(model, X))
    assert same.describe_model(read_back)["fits"]["counts"] == counts and same.FITS["made"] == 0
    assert set(cache.iterdir()) == stored

    grown = _load(code, "grown")
    grown.MODEL_CONFIG["models"] = ["lightgbm", "linear", "extra_trees"]
    grown._lgbm_fit = grown._linear_fit = no_fit
    bigger = grown.fit_model(X, y, {"numeric": [0, 1, 2, 3]})
    assert set(bigger["settings"]) == {"lightgbm", "linear", "extra_trees"}
    assert set(cache.iterdir()) > stored                     # the new family's fits were made and stored

    changed = _load(code, "changed")
    changed.MODEL_CONFIG["models"] = ["lightgbm", "linear"]
    changed.MODEL_CONFIG["lightgbm"] = {**changed.MODEL_CONFIG["lightgbm"], "num_leaves": 7}
    changed._lgbm_fit = no_fit
    with pytest.raises(AssertionError, match="fitted again"):
        changed.fit_model(X, y, {"numeric": [0, 1, 2, 3]})
    # Another thread count: LightGBM is fitted again (pipeline.py must rebuild the same model), the linear model is not.
    threads = _load(code, "threads")
    threads.MODEL_CONFIG["models"] = ["lightgbm", "linear"]
    threads.MODEL_CONFIG["num_threads"] = int(threads.MODEL_CONFIG.get("num_threads") or 1) + 1
    threads._linear_fit = no_fit
    threads.fit_model(X, y, {"numeric": [0, 1, 2, 3]})
    assert threads.FITS["reused"] >= 1 and threads.FITS["made"] >= 1
    threads._lgbm_fit = no_fit
    threads.MODEL_CONFIG["num_threads"] += 1
    with pytest.raises(AssertionError, match="fitted again"):
        threads.fit_model(X, y, {"numeric": [0, 1, 2, 3]})


def test_encoded_vectors_are_saved_as_they_come_and_a_later_process_resumes_from_them(tmp_path, monkeypatch):
    """A prep check stopped by its time limit mid-encoding leaves its vectors; the next one encodes only the rest."""
    train, test, sample = binary_frames(40, 10)
    summary, blueprint, _ = _plan(write_task(tmp_path / "t", train, test, sample))
    monkeypatch.setenv("IML_ENCODER_CACHE", str(tmp_path / "cache"))
    values = [f"text {i}" for i in range(10)]
    first = _load(render_prep(summary, blueprint.prep), "first")
    first._ENCODE_CHUNK, first._ENCODE_SAVE_EVERY_S = 3, 0.0
    encoded = []

    def stopped_after_two_chunks(todo):
        if len(encoded) == 6:
            raise TimeoutError("the sandbox's time limit")
        encoded.extend(todo)
        return [np.full(4, float(v.split()[1])) for v in todo]

    with pytest.raises(TimeoutError):
        first._encode_cached(("text", "t"), values, stopped_after_two_chunks)
    saved = list((tmp_path / "cache").glob("*.pkl.json"))
    assert len(saved) == 1 and '"vectors": 6' in saved[0].read_text()
    again = _load(render_prep(summary, blueprint.prep), "again")       # a new process: nothing in memory
    rest = []
    vectors = again._encode_cached(("text", "t"), values,
                                   lambda todo: rest.extend(todo) or [np.full(4, float(v.split()[1])) for v in todo])
    assert sorted(rest) == sorted(set(values) - set(encoded)) and len(rest) == 4
    assert vectors.shape == (10, 4) and vectors[:, 0].tolist() == [float(i) for i in range(10)]


def test_lightgbm_on_the_log_of_the_target_joins_the_blend_and_predicts_in_the_targets_scale(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 3, size=(400, 2))
    y = np.exp(2 + 1.5 * x[:, 0] + rng.normal(0, 0.2, 400))
    frame = pd.DataFrame({"Id": range(400), "a": x[:, 0], "b": x[:, 1], "v": y})
    root = write_task(tmp_path / "r", frame.iloc[:320], frame.iloc[320:].drop(columns="v"),
                      pd.DataFrame({"Id": frame["Id"].iloc[320:], "v": 0.0}), "## Evaluation\nRMSE")
    summary, blueprint, contract = _plan(root)
    track = blueprint.tracks[0]
    assert track.families == {"lightgbm_log": {}} and track.target_transform is None
    layout = {"n_features": 2, "categorical": []}
    X = frame[["a", "b"]].to_numpy(np.float32)
    for models in [("lightgbm", "linear", "lightgbm_log"), ("lightgbm_log",)]:
        module = _load(render_traditional(summary, track.replace(models=models), blueprint.train, contract), "m")
        fitted = module.fit_model(X[:320], y[:320], layout)
        assert "lightgbm_log" in fitted["inner_scores"] and isinstance(fitted["settings"]["lightgbm_log"], int)
        pred = module.predict_model(fitted, X[320:])
        assert math.sqrt(np.mean((pred - y[320:]) ** 2)) < 0.5 * np.std(y[320:])
    assert set(fitted["weights"]) == {"lightgbm_log"}
    assert math.sqrt(np.mean((np.log1p(pred) - np.log1p(y[320:])) ** 2)) < 0.35
    # The member alone: fitted on log1p(y), its output back in y's scale.
    member = fitted["members"]["lightgbm_log"][0]
    own = module._family_output("lightgbm_log", member, X[320:])
    assert np.allclose(own, np.expm1(member.predict(X[320:], num_iteration=member.best_iteration or None)))
    assert 0.5 < np.median(own / y[320:]) < 2.0


def test_lightgbm_on_the_log_of_the_target_refuses_a_classification(tmp_path):
    train, test, prep, plan, model_module = _binary_model(tmp_path, models=("lightgbm_log",))
    with pytest.raises(ValueError, match="regression target"):
        model_module._family_fit("lightgbm_log", prep.transform(train), train["label"].to_numpy(), [])
