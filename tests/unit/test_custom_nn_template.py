"""The custom_nn model module, rendered from a real blueprint, learns each block of the layout,
honours its time limit, and is deterministic."""
from __future__ import annotations

import time
import types

import numpy as np
import pandas as pd
import pytest
from helpers import bar_images, write_task

from iml_ray.codegen.render import render_model, render_prep
from iml_ray.plan.guideline_rules import make_blueprint, make_contract
from iml_ray.plan.knowledge import retrieve
from iml_ray.task.inference import analyze_task
from iml_ray.task.profiling import profile_task

pytest.importorskip("torch")


def _load(code: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(code, f"{name}.py", "exec"), module.__dict__)
    return module


def _modules(root, **nn):
    summary = analyze_task(root)
    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("custom_nn",)), ("custom_nn",), 0, 0.2, 1)
    track = blueprint.tracks[0]
    assert track.track == "custom_nn" and track.model_template == "custom_nn"
    track = track.replace(nn={**track.nn, **nn})
    prep_plan = blueprint.prep_for("custom_nn")
    contract = make_contract(summary, prep_plan)
    prep = _load(render_prep(summary, prep_plan), "prep")
    model = _load(render_model(summary, track, blueprint.train, contract), "model")
    return summary, prep, model


def _mixed_task(tmp_path, n=240):
    """Label = vertical bar in the image OR (the review says 'great' AND size > 0): every block matters."""
    root = tmp_path / "mixed"
    ids = [f"r{i:04d}" for i in range(n)]
    vertical = bar_images(n, 12, root / "images", [f"{i}.png" for i in ids])
    rng = np.random.default_rng(3)
    great = rng.random(n) < 0.5
    size = rng.normal(size=n)
    words = ["plain", "box", "item", "delivered", "colour", "paper", "shelf"]
    review = [" ".join(list(rng.choice(words, 8)) + (["great"] if g else ["poor"])) for g in great]
    shop = rng.choice(["north", "south", "east"], n)
    label = (vertical.astype(bool) | (great & (size > 0))).astype(int)
    frame = pd.DataFrame({"id": ids, "size": size, "shop": shop, "review": review, "label": label})
    train, test = frame.iloc[:200], frame.iloc[200:]
    write_task(root, train, test.drop(columns="label"), pd.DataFrame({"id": test["id"], "label": 0}),
               "# Mixed\nPredict the label from the review, the size, the shop and the picture. Evaluated on accuracy.")
    return root, train, test


def test_network_uses_numbers_categories_text_and_images(tmp_path):
    root, train, test = _mixed_task(tmp_path)
    summary, prep_module, model_module = _modules(root, max_epochs=60, patience=15)
    assert summary.images, "the id column names image files"
    image_column = summary.images[0].name
    train = train.assign(**{image_column: [str(root / "images" / f"{v}.png") for v in train["id"]]})
    test = test.assign(**{image_column: [str(root / "images" / f"{v}.png") for v in test["id"]]})
    prep = prep_module.Preprocessor().fit(train)
    layout = prep.layout_
    assert layout["image"] and layout["text"] and layout["categorical"], layout
    model = model_module.fit_model(prep.transform(train), train["label"].to_numpy(), layout)
    described = model_module.describe_model(model)
    assert "CNN" in described["architecture"] and "text bag" in described["architecture"]
    assert "category embeddings" in described["architecture"]
    proba = model_module.predict_model(model, prep.transform(test))
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1.0)
    accuracy = float((proba.argmax(axis=1) == test["label"].to_numpy()).mean())
    # Majority class alone scores about 0.75; the rule needs the image and the text together.
    assert accuracy >= 0.85, (accuracy, described)


def test_time_limit_stops_training_and_keeps_the_best_epoch(tmp_path):
    from helpers import binary_frames

    train, test, sample = binary_frames(n_train=3000, n_test=200)
    root = write_task(tmp_path / "b", train, test, sample, "Evaluated on AUC.")
    _, prep_module, model_module = _modules(root, time_limit_s=2.0, max_epochs=100000, patience=100000, batch_size=16)
    prep = prep_module.Preprocessor().fit(train)
    started = time.time()
    model = model_module.fit_model(prep.transform(train), train["label"].to_numpy(), prep.layout_)
    elapsed = time.time() - started
    described = model_module.describe_model(model)
    assert described["stopped"] == "time limit" and elapsed < 6.0, (elapsed, described)
    assert 1 <= described["best_epoch"] <= described["epochs"]
    assert described["inner_score"] > 0.7


def test_same_data_same_predictions(tmp_path):
    from helpers import binary_frames

    train, test, sample = binary_frames(n_train=400, n_test=100)
    root = write_task(tmp_path / "d", train, test, sample, "Evaluated on accuracy.")
    _, prep_module, model_module = _modules(root, max_epochs=15)
    prep = prep_module.Preprocessor().fit(train)
    X, X_test = prep.transform(train), prep.transform(test)
    first = model_module.predict_model(model_module.fit_model(X, train["label"].to_numpy(), prep.layout_), X_test)
    second = model_module.predict_model(model_module.fit_model(X, train["label"].to_numpy(), prep.layout_), X_test)
    assert np.array_equal(first, second)


def test_regression_on_a_log_scale_target_predicts_in_the_original_scale(tmp_path):
    rng = np.random.default_rng(1)
    n = 700
    x = rng.uniform(0, 3, size=(n, 2))
    price = np.exp(8 + x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.05, n))
    frame = pd.DataFrame({"Id": range(n), "a": x[:, 0], "b": x[:, 1], "SalePrice": price})
    train, test = frame.iloc[:600], frame.iloc[600:]
    root = write_task(tmp_path / "h", train, test.drop(columns="SalePrice"), pd.DataFrame({"Id": test["Id"], "SalePrice": 0.0}),
                      "## Evaluation\nRoot mean squared logarithmic error.")
    _, prep_module, model_module = _modules(root, max_epochs=200, patience=20)
    prep = prep_module.Preprocessor().fit(train)
    model = model_module.fit_model(prep.transform(train), train["SalePrice"].to_numpy(), prep.layout_)
    predicted = model_module.predict_model(model, prep.transform(test))
    assert predicted.min() > 0
    rmsle = float(np.sqrt(np.mean((np.log1p(predicted) - np.log1p(test["SalePrice"].to_numpy())) ** 2)))
    # Predicting the mean log price everywhere scores about 0.9.
    assert rmsle < 0.25, rmsle


def test_a_pinball_loss_trains_the_network_for_its_quantile(tmp_path):
    rng = np.random.default_rng(5)
    n = 2000
    x = rng.uniform(0, 2, size=(n, 2))
    y = 3 * x[:, 0] + rng.normal(0, 0.2 + x[:, 1], n)
    frame = pd.DataFrame({"Id": range(n), "a": x[:, 0], "b": x[:, 1], "v": y})
    train, test = frame.iloc[:1600], frame.iloc[1600:]
    root = write_task(tmp_path / "q", train, test.drop(columns="v"), pd.DataFrame({"Id": test["Id"], "v": 0.0}),
                      "## Evaluation\nQuantile loss with alpha = 0.1.")
    summary, prep_module, model_module = _modules(root, max_epochs=60, patience=10)
    assert summary.metric == "pinball_0.1"
    prep = prep_module.Preprocessor().fit(train)
    predicted = model_module.predict_model(model_module.fit_model(prep.transform(train), train["v"].to_numpy(),
                                                                  prep.layout_), prep.transform(test))
    coverage = float(np.mean(test["v"].to_numpy() <= predicted))
    assert 0.04 < coverage < 0.18, coverage        # the 10th percentile: a mean would cover about half


def test_unseen_categories_at_prediction_do_not_break_the_embeddings(tmp_path):
    from helpers import binary_frames

    train, test, sample = binary_frames(n_train=300, n_test=50)
    test = test.assign(colour="violet")
    root = write_task(tmp_path / "u", train, test, sample, "Evaluated on accuracy.")
    _, prep_module, model_module = _modules(root, max_epochs=5)
    prep = prep_module.Preprocessor().fit(train)
    model = model_module.fit_model(prep.transform(train), train["label"].to_numpy(), prep.layout_)
    proba = model_module.predict_model(model, prep.transform(test))
    assert proba.shape == (50, 2) and np.isfinite(proba).all()


def _review_task(tmp_path):
    from helpers import review_frames

    train, test, sample, answers = review_frames()
    root = write_task(tmp_path / "reviews", train, test, sample, "# Reviews\nPredict the label. Evaluated on accuracy.")
    return root, train, test.assign(label=answers)


def test_the_fine_tune_step_trains_the_pretrained_text_encoder_on_its_token_ids(tmp_path):
    """The pretrained track's fine-tuning round: the prep gives the encoder's token ids, the network reads them
    through the encoder and trains its weights (they move away from the pretrained ones) with a head."""
    import torch

    from iml_ray.plan.improvements import RoundFacts, next_improvement
    from iml_ray.plan.pretrained import find_pretrained
    from iml_ray.plan.repairs import Plans

    root, train, test = _review_task(tmp_path)
    summary = analyze_task(root)
    profile = profile_task(summary)
    encoder = find_pretrained("text")
    assert encoder is not None, "the packaged MiniLM (pyproject extra `models`) is part of the set-up"
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("pretrained",)), ("pretrained",), 0, 0.2, 1,
                               pretrained={"text": encoder.to_json()})
    plans = Plans(blueprint.prep_for("pretrained"), blueprint.tracks[0], blueprint.train.replace(holdout_folds=0))
    assert plans.prep.text_mode == "pretrained" and plans.track.model_template == "traditional"
    facts = RoundFacts(8.0, {}, len(train), can_search=False, prep_check_s=5.0, n_test=len(test))
    step = next_improvement(plans, facts, 120.0)
    assert step is not None and step.step == "fine_tune", step
    prep_plan, track = step.plans.prep, step.plans.track
    assert prep_plan.text_mode == "tokens" and track.model_template == "custom_nn"
    assert track.nn["backbone"]["ref"] == encoder.ref
    track = track.replace(nn={**track.nn, "max_epochs": 3, "patience": 3})
    prep = _load(render_prep(summary, prep_plan), "prep").Preprocessor().fit(train)
    tokens = prep.layout_["tokens"]
    assert tokens == {"start": 0, "columns": 1, "length": 128, "pad_id": 0}
    X, X_test = prep.transform(train), prep.transform(test)
    from transformers import AutoTokenizer

    expected = AutoTokenizer.from_pretrained(encoder.ref)(train["review"].iloc[0])["input_ids"]
    assert X[0, :len(expected)].tolist() == expected and not X[0, len(expected):].any()

    model_module = _load(render_model(summary, track, step.plans.train, make_contract(summary, prep_plan)), "model")
    model = model_module.fit_model(X, train["label"].to_numpy(), prep.layout_)
    described = model_module.describe_model(model)
    assert "all-MiniLM-L6-v2 fine-tuned on 1 text column(s)" in described["architecture"], described
    assert described["parameters"] > 20_000_000
    pretrained_weights = model_module._text_backbone().state_dict()
    tuned = model["network"].backbone.state_dict()
    name = "encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(tuned[name], pretrained_weights[name]), "the encoder's weights must be trained"
    proba = model_module.predict_model(model, X_test)
    accuracy = float((proba.argmax(axis=1) == test["label"].to_numpy()).mean())
    assert accuracy >= 0.85, (accuracy, described)


def test_the_fine_tune_step_trains_the_image_backbone_on_the_pixels(tmp_path):
    """A task of pictures alone: the step reads RGB pixels at the backbone's input side and trains EfficientNet-Lite
    with the head (its weights move away from the pretrained ones)."""
    import torch

    from iml_ray.plan.improvements import RoundFacts, next_improvement
    from iml_ray.plan.pretrained import find_pretrained
    from iml_ray.plan.repairs import Plans

    root = tmp_path / "bars"
    n = 160
    ids = [f"p{i:03d}" for i in range(n)]
    label = bar_images(n, 24, root / "images", [f"{i}.png" for i in ids], mode="RGB")
    frame = pd.DataFrame({"id": ids, "label": label})
    train, test = frame.iloc[:120], frame.iloc[120:]
    write_task(root, train, test.drop(columns="label"), pd.DataFrame({"id": test["id"], "label": 0}),
               "# Bars\nIs the bar in images/<id>.png vertical? Evaluated on accuracy.")
    summary = analyze_task(root)
    profile = profile_task(summary)
    encoder = find_pretrained("image")
    assert encoder is not None and encoder.loader == "efficientnet_lite"
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("pretrained",)), ("pretrained",), 0, 0.2, 1,
                               pretrained={"image": encoder.to_json()})
    plans = Plans(blueprint.prep_for("pretrained"), blueprint.tracks[0], blueprint.train.replace(holdout_folds=0))
    assert plans.prep.image_mode == "pretrained"
    step = next_improvement(plans, RoundFacts(8.0, {}, len(train), can_search=False, prep_check_s=4.0, n_test=len(test)),
                            120.0)
    assert step is not None and step.step == "fine_tune", step
    prep_plan, track = step.plans.prep, step.plans.track
    side = int(plans.prep.image_encoder["input"]["size"])
    assert prep_plan.image_mode == "pixels" and prep_plan.image_channels == 3 and prep_plan.image_size == (side, side)
    assert track.nn["backbone"]["modality"] == "image" and track.nn["backbone"]["ref"] == encoder.ref
    track = track.replace(nn={**track.nn, "max_epochs": 6, "patience": 6, "time_limit_s": 120.0})
    column = summary.images[0].name
    paths = {column: lambda f: [str(root / "images" / f"{v}.png") for v in f["id"]]}
    train, test = train.assign(**paths), test.assign(**paths)
    prep = _load(render_prep(summary, prep_plan), "prep").Preprocessor().fit(train)
    assert prep.layout_["image"]["shape"] == [3, side, side]
    model_module = _load(render_model(summary, track, step.plans.train, make_contract(summary, prep_plan)), "model")
    model = model_module.fit_model(prep.transform(train), train["label"].to_numpy(), prep.layout_)
    described = model_module.describe_model(model)
    assert "efficientnet-lite0 fine-tuned on 1 image column(s)" in described["architecture"], described
    assert "CNN" not in described["architecture"]
    before = model_module._image_backbone().state_dict()
    after = model["network"].backbone.state_dict()
    name = next(k for k in before if k.endswith("weight") and before[k].dim() == 4)
    assert not torch.allclose(after[name], before[name]), "the backbone's weights must be trained"
    proba = model_module.predict_model(model, prep.transform(test))
    accuracy = float((proba.argmax(axis=1) == test["label"].to_numpy()).mean())
    assert accuracy >= 0.85, (accuracy, described)


def test_the_cnn_sees_where_in_the_image_a_shape_is(tmp_path):
    """The same square on the left or the right half: the class is only where it is. The CNN's maps are averaged
    to a grid, not to one cell, whose features the same square anywhere would make the same (0.45 accuracy so)."""
    from PIL import Image

    root = tmp_path / "sides"
    rng = np.random.default_rng(1)
    n = 240
    ids = [f"s{i:04d}" for i in range(n)]
    right = rng.integers(0, 2, n)
    (root / "images").mkdir(parents=True)
    for name, side in zip(ids, right):
        pixels = np.zeros((32, 32), dtype=np.uint8)
        x, y = (20 if side else 8) + int(rng.integers(0, 4)), int(rng.integers(8, 21))
        pixels[y:y + 4, x:x + 4] = 255
        Image.fromarray(pixels, "L").save(root / "images" / f"{name}.png")
    frame = pd.DataFrame({"id": ids, "label": right})
    train, test = frame.iloc[:200], frame.iloc[200:]
    write_task(root, train, test.drop(columns="label"), pd.DataFrame({"id": test["id"], "label": 0}),
               "# Sides\nIs the square on the right? Evaluated on accuracy.")
    summary, prep_module, model_module = _modules(root, max_epochs=40, patience=10, batch_size=32)
    column = summary.images[0].name
    train = train.assign(**{column: [str(root / "images" / f"{v}.png") for v in train["id"]]})
    test = test.assign(**{column: [str(root / "images" / f"{v}.png") for v in test["id"]]})
    prep = prep_module.Preprocessor().fit(train)
    model = model_module.fit_model(prep.transform(train), train["label"].to_numpy(), prep.layout_)
    described = model_module.describe_model(model)
    assert "pooled to 4x4" in described["architecture"], described
    accuracy = float((model_module.predict_model(model, prep.transform(test)).argmax(axis=1)
                      == test["label"].to_numpy()).mean())
    assert accuracy >= 0.9, (accuracy, described)
