"""Images named by an id or a path column are found, profiled, planned per track and read by the prep module."""
from __future__ import annotations

import dataclasses
import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import bar_images, write_task

from iml_ray.blueprint import PrepPlan
from iml_ray.codegen.render import render_prep
from iml_ray.config import RunConfig
from iml_ray.errors import TaskError
from iml_ray.plan.guideline_rules import make_blueprint, make_contract
from iml_ray.plan.knowledge import retrieve
from iml_ray.plan.resources import (
    TUNE_RESERVE_CPUS,
    WAITING_CPUS,
    most_at_once,
    plan_resources,
    trees_lead_on,
    waiting_tracks,
)
from iml_ray.safety.contract import check_layout
from iml_ray.task.files import TaskSummary
from iml_ray.task.inference import analyze_task, check_task
from iml_ray.task.profiling import profile_task

MINILM = {"modality": "text", "name": "all-MiniLM-L6-v2", "ref": "/models/minilm", "source": "local-dir",
          "loader": "transformers", "dim": 384}


def _id_task(tmp_path, n=120, side=12):
    root = tmp_path / "bars"
    ids = [f"img{i:04d}" for i in range(n)]
    labels = bar_images(n, side, root / "images", [f"{i}.png" for i in ids])
    frame = pd.DataFrame({"id": ids, "label": labels})
    train, test = frame.iloc[:90], frame.iloc[90:][["id"]]
    return write_task(root, train, test, pd.DataFrame({"id": test["id"], "label": 0}),
                      "# Bars\nIs the bar vertical? Evaluated on accuracy.")


def _load(code: str, name: str):
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(code, name, "exec"), module.__dict__)
    sys.modules.pop(name, None)
    return module


def test_images_named_by_the_id_are_found_profiled_and_planned(tmp_path):
    root = _id_task(tmp_path)
    check_task(root)          # no shared feature column, but the ids name images: a task
    summary = analyze_task(root)
    assert summary.feature_columns == ()
    [source] = summary.images
    assert (source.column, source.train_pattern, source.test_pattern) == ("id", "images/{}.png", "images/{}.png")
    assert (source.width, source.height, source.mode) == (12, 12, "L")
    assert TaskSummary.from_json(summary.to_json()) == summary
    profile = profile_task(summary)
    [image] = profile.images
    assert image.n_checked > 0 and image.n_unreadable == 0 and image.max_width == 12 and image.channels == 1

    tracks = ("traditional", "pretrained", "custom_nn")
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1, 120.0,
                               pretrained={"image": None})
    assert [t.track for t in blueprint.tracks] == ["traditional", "custom_nn"]
    assert any("pretrained skipped" in note for note in blueprint.notes)
    assert blueprint.prep.image == ("id__image",) and blueprint.prep.image_stats
    nn_prep = blueprint.prep_for("custom_nn")
    assert nn_prep.image_size == (12, 12) and not nn_prep.image_stats
    assert make_contract(summary, blueprint.prep).input_columns == ("id__image",)


def test_short_budget_gives_trees_fewer_pixels_and_the_network_more_updates(tmp_path):
    root = _id_task(tmp_path, side=24)
    summary = analyze_task(root)
    profile = profile_task(summary)
    tracks = ("traditional", "custom_nn")
    plans = {budget: make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1, budget)
             for budget in (90.0, 600.0)}
    assert plans[90.0].prep.image_size == (16, 16)
    assert plans[600.0].prep.image_size == (24, 24)
    # The CNN keeps the images' own side whatever the budget.
    assert plans[90.0].prep_for("custom_nn").image_size == (24, 24)
    # On a CPU the CNN's time limit buys as many images at any batch size: small batches make more updates of them.
    [nn_plan] = [t for t in plans[90.0].tracks if t.track == "custom_nn"]
    assert nn_plan.nn["batch_size"] == 32
    on_gpu = make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1, 90.0, gpus=1.0)
    assert next(t for t in on_gpu.tracks if t.track == "custom_nn").nn["batch_size"] == 64      # the rows' rule


def test_network_batch_size_follows_the_rows():
    from iml_ray.plan.guideline_rules import nn_batch_size

    assert nn_batch_size(100) == 64
    assert nn_batch_size(4000) == 64
    assert nn_batch_size(8000) == 128
    assert nn_batch_size(1_000_000) == 256


def test_no_features_and_no_images_is_a_clear_error(tmp_path):
    frame = pd.DataFrame({"id": [f"x{i}" for i in range(40)], "label": [0, 1] * 20})
    root = write_task(tmp_path / "t", frame.iloc[:30], frame.iloc[30:][["id"]],
                      pd.DataFrame({"id": frame.iloc[30:]["id"], "label": 0}))
    with pytest.raises(TaskError, match="no column names image or audio files"):
        check_task(root)


def test_a_path_column_outside_the_task_directory_is_not_an_image_source(tmp_path):
    outside = tmp_path / "elsewhere"
    bar_images(30, 8, outside, [f"{i}.png" for i in range(30)])
    frame = pd.DataFrame({"pic": [str(outside / f"{i}.png") for i in range(30)], "x": range(30), "y": [0, 1] * 15})
    root = write_task(tmp_path / "t", frame.iloc[:20], frame.iloc[20:].drop(columns="y"))
    assert analyze_task(root).images == ()


def test_prep_reads_pixels_and_statistics_in_the_layout_it_reports(tmp_path):
    root = tmp_path / "rgb"
    names = [f"p{i}.jpg" for i in range(40)]
    labels = bar_images(40, 20, root / "pics", names, mode="RGB")
    frame = pd.DataFrame({"path": [f"pics/{n}" for n in names], "size": np.arange(40.0), "y": labels})
    root = write_task(root, frame.iloc[:30], frame.iloc[30:].drop(columns="y"))
    summary = analyze_task(root)
    [source] = summary.images
    assert source.train_pattern == "{}" and source.mode == "RGB"
    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("traditional",)), ("traditional",), 0, 0.2, 1)
    prep_plan = blueprint.prep
    assert prep_plan.image_channels == 3 and prep_plan.image_size == (20, 20)
    assert "path" in prep_plan.dropped and "size" in prep_plan.numeric

    module = _load(render_prep(summary, prep_plan), "prep_rgb")
    train = frame.iloc[:30].copy()
    train["path__image"] = [str(root / p) for p in train["path"]]
    train.loc[0, "path__image"] = str(root / "pics" / "missing.jpg")
    prep = module.Preprocessor().fit(train[list(prep_plan.used_columns)])
    X = prep.transform(train[list(prep_plan.used_columns)])
    layout = prep.layout_
    assert check_layout(layout, X.shape[1]) == []
    start, shape = layout["image"]["start"], layout["image"]["shape"]
    assert shape == [3, 20, 20] and X.shape[1] == start + 3 * 20 * 20
    pixels = X[:, start:].reshape(-1, 3, 20, 20)
    assert pixels.max() == pytest.approx(1.0) and pixels.min() == 0.0
    # a vertical bar lights whole columns: the column means' spread is larger than the rows'
    vertical = np.asarray(train["y"]) == 1
    column_spread = pixels[1:, 0].mean(axis=1).std(axis=1)
    row_spread = pixels[1:, 0].mean(axis=2).std(axis=1)
    assert (column_spread > row_spread)[vertical[1:]].all() and (column_spread < row_spread)[~vertical[1:]].all()
    names = prep.feature_names_
    unreadable = names.index("path__image__unreadable")
    assert X[0, unreadable] == 1.0 and X[1:, unreadable].sum() == 0 and not X[0, start:].any()


def test_layout_check_catches_blocks_outside_the_matrix():
    good = {"n_features": 10, "categorical": [1], "embedding": None, "image": {"start": 2, "shape": [1, 2, 4]},
            "text": None}
    assert check_layout(good, 10) == []
    assert check_layout({**good, "n_features": 9}, 10)
    assert check_layout({**good, "image": {"start": 4, "shape": [1, 2, 4]}}, 10)
    assert check_layout({**good, "text": [5, 11]}, 10)
    assert check_layout({**good, "categorical": [12]}, 10)
    assert check_layout(None, 10)


def test_pretrained_track_swaps_text_for_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "slow", "fast", "great", "awful"]
    frame = pd.DataFrame({"review": [" ".join(rng.choice(words, 8)) for _ in range(80)], "stars": rng.integers(1, 6, 80),
                          "label": rng.integers(0, 2, 80)})
    root = write_task(tmp_path / "t", frame.iloc[:60], frame.iloc[60:].drop(columns="label"))
    summary = analyze_task(root)
    profile = profile_task(summary)
    tracks = ("traditional", "pretrained")
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1, 60.0,
                               pretrained={"text": MINILM})
    assert blueprint.prep.text_mode == "tfidf"
    prep = blueprint.prep_for("pretrained")
    assert prep.text_mode == "pretrained" and prep.text_encoder["ref"] == "/models/minilm"
    assert any("sentence embeddings" in r for r in blueprint.track("pretrained").reasons)
    # Trees on 384 dense embedding columns: fewer bins and half the columns per tree; the TF-IDF track keeps its own.
    on_embeddings, on_tfidf = blueprint.track("pretrained").lightgbm, blueprint.track("traditional").lightgbm
    assert (on_embeddings["max_bin"], on_embeddings["feature_fraction"]) == (63, 0.5)
    assert on_tfidf.get("max_bin", 255) > 63 and on_tfidf.get("feature_fraction", 1.0) > 0.5


def test_tracks_share_cpus_and_gpus_go_only_where_they_exist():
    config = RunConfig(tracks=("traditional", "pretrained", "custom_nn"))
    on_cpus = plan_resources(config.tracks, config, {"CPU": 2.0})
    assert {r.num_cpus for r in on_cpus.values()} == {0.65}
    # A sliver stays free for the Ray Tune trials the tracks start, or they would wait forever.
    assert sum(r.num_cpus for r in on_cpus.values()) <= 2.0 - TUNE_RESERVE_CPUS + 1e-9
    untuned = plan_resources(config.tracks, config.replace(tune="off"), {"CPU": 2.0})
    assert {r.num_cpus for r in untuned.values()} == {0.66}
    assert all(r.num_gpus == 0 and r.threads == 1 for r in on_cpus.values())
    with_gpus = plan_resources(config.tracks, config, {"CPU": 8.0, "GPU": 2.0})
    assert with_gpus["traditional"].num_gpus == 0
    assert with_gpus["pretrained"].num_gpus == 1.0 and with_gpus["custom_nn"].num_gpus == 1.0
    one_gpu = plan_resources(config.tracks, config, {"CPU": 8.0, "GPU": 1.0})
    assert one_gpu["pretrained"].num_gpus == 0.5
    fixed = plan_resources(config.tracks, config.replace(gpus_per_track=0.25), {"CPU": 8.0, "GPU": 1.0})
    assert fixed["custom_nn"].num_gpus == 0.25


def test_the_trees_lead_on_columns_and_tfidf_text_not_on_an_encoders_text_images_or_audio():
    assert trees_lead_on(PrepPlan(numeric=("a",), categorical=("b",)))
    assert trees_lead_on(PrepPlan(numeric=("a",), text=("review",), text_mode="tfidf"))
    assert not trees_lead_on(PrepPlan(text=("review",), text_mode="pretrained"))
    assert not trees_lead_on(PrepPlan(text=("review",), text_mode="tokens"))
    assert not trees_lead_on(PrepPlan(numeric=("a",), image=("image",)))
    assert not trees_lead_on(PrepPlan(audio=("clip",)))


def test_on_a_table_with_few_cpus_the_network_waits_for_the_trees_which_take_the_cpus():
    config = RunConfig(tracks=("traditional", "custom_nn"))
    two_cpus = {"CPU": 2.0}
    waiting = waiting_tracks(config.tracks, config, two_cpus, trees_lead=True)
    assert waiting == {"custom_nn": ("traditional",)}
    shares = plan_resources(config.tracks, config, two_cpus, waiting=waiting)
    assert shares["custom_nn"].waits_for == ("traditional",) and shares["custom_nn"].num_cpus == WAITING_CPUS
    assert shares["custom_nn"].to_json()["waits_for"] == ["traditional"]
    assert not shares["traditional"].waits_for and shares["traditional"].threads == 2
    assert shares["traditional"].num_cpus + WAITING_CPUS <= 2.0 - TUNE_RESERVE_CPUS + 1e-9
    # An encoder's text, images or audio; enough CPUs for both; a GPU for the network; CPUs fixed by the configuration; or no
    # trees to wait for: every track starts at once, as before.
    assert waiting_tracks(config.tracks, config, two_cpus, trees_lead=False) == {}
    assert waiting_tracks(config.tracks, config, {"CPU": 4.0}, trees_lead=True) == {}
    assert waiting_tracks(config.tracks, config, {"CPU": 2.0, "GPU": 1.0}, trees_lead=True) == {}
    assert waiting_tracks(config.tracks, config.replace(cpus_per_track=1.0), two_cpus, trees_lead=True) == {}
    assert waiting_tracks(("custom_nn",), config, {"CPU": 1.0}, trees_lead=True) == {}
    three = ("traditional", "pretrained", "custom_nn")
    assert waiting_tracks(three, config, {"CPU": 4.0}, trees_lead=True) == {"custom_nn": ("traditional",)}
    at_once = plan_resources(config.tracks, config, two_cpus)
    assert not any(r.waits_for for r in at_once.values()) and at_once["traditional"].threads == 1


def test_a_track_deferred_for_its_cost_waits_for_every_other_track_and_leaves_them_its_cpus():
    three = ("traditional", "pretrained", "custom_nn")
    config = RunConfig(tracks=three)
    two_cpus = {"CPU": 2.0}
    waiting = waiting_tracks(three, config, two_cpus, trees_lead=True, deferred=("pretrained",))
    assert waiting == {"custom_nn": ("traditional",), "pretrained": ("traditional", "custom_nn")}
    shares = plan_resources(three, config, two_cpus, waiting=waiting)
    assert shares["pretrained"].waits_for == ("traditional", "custom_nn")
    assert shares["pretrained"].num_cpus == shares["custom_nn"].num_cpus == WAITING_CPUS
    assert shares["traditional"].threads == 2
    assert shares["traditional"].num_cpus == pytest.approx(2.0 - TUNE_RESERVE_CPUS - 2 * WAITING_CPUS)
    # Where the others run side by side (an encoder's images), it waits for both; alone, it waits for nobody.
    assert waiting_tracks(three, config, two_cpus, trees_lead=False, deferred=("pretrained",)) == {
        "pretrained": ("traditional", "custom_nn")}
    assert waiting_tracks(("pretrained",), config, two_cpus, trees_lead=False, deferred=("pretrained",)) == {}


def test_memory_is_split_over_the_tracks_that_run_at_once_not_over_those_that_wait():
    three = ("traditional", "pretrained", "custom_nn")
    config = RunConfig(tracks=three)
    assert most_at_once(three, {}) == 3
    assert most_at_once(three, {"custom_nn": ("traditional",)}) == 2
    assert most_at_once(three, {"custom_nn": ("traditional",), "pretrained": ("traditional", "custom_nn")}) == 1
    # Two tracks waiting for the same one run beside each other once it has finished.
    assert most_at_once(three, {"custom_nn": ("traditional",), "pretrained": ("traditional",)}) == 2
    # A wait that runs through another track counts: pretrained after custom_nn after traditional.
    assert most_at_once(three, {"custom_nn": ("traditional",), "pretrained": ("custom_nn",)}) == 1
    at_once = plan_resources(three, config, {"CPU": 2.0})
    one_waits = plan_resources(three, config, {"CPU": 2.0}, waiting={"custom_nn": ("traditional",)})
    all_wait = plan_resources(three, config, {"CPU": 2.0},
                              waiting={"custom_nn": ("traditional",), "pretrained": ("traditional", "custom_nn")})
    each = at_once["traditional"].memory_mb
    assert one_waits["traditional"].memory_mb == one_waits["custom_nn"].memory_mb == pytest.approx(each * 3 / 2, abs=2)
    assert all_wait["pretrained"].memory_mb == pytest.approx(each * 3, abs=3)
    # A limit the configuration fixes stays as given.
    fixed = plan_resources(three, config.replace(memory_mb=1000), {"CPU": 2.0}, waiting={"custom_nn": ("traditional",)})
    assert {r.memory_mb for r in fixed.values()} == {1000}


def test_encoding_cost_shrinks_the_image_encoder_or_skips_the_track_on_a_short_budget(tmp_path):
    from iml_ray.plan.encoding_cost import ENCODE_BUDGET_SHARE, encoding_seconds

    root = _id_task(tmp_path, n=120, side=28)
    summary = analyze_task(root)
    profile = profile_task(summary)
    # As many rows as MNIST's 5,000: the cost model scales with rows, the files need not exist.
    profile = dataclasses.replace(profile, n_train=4000, n_test=1000)
    image = {"modality": "image", "name": "efficientnet-lite0", "ref": "/m", "source": "package",
             "loader": "efficientnet", "dim": 1280, "input": {"size": 224}}
    tracks = ("pretrained",)

    def plan(budget, cpus=None, gpus=0.0):
        return make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1, budget,
                              pretrained={"image": image}, cpus=cpus, gpus=gpus)

    sides = {budget: plan(budget).prep_for("pretrained").image_encoder["input"]["size"] for budget in (90.0, 600.0)}
    assert sides == {90.0: 64, 600.0: 128}
    short = plan(90.0).prep_for("pretrained")
    assert encoding_seconds({"image_encoder": short.image_encoder}, profile, short, 1) <= ENCODE_BUDGET_SHARE * 90.0
    skipped = plan(10.0)
    assert skipped.tracks == ()
    assert any("track pretrained skipped: encoding 5000 rows" in note for note in skipped.notes)
    # A track holding 0.65 of a CPU (three tracks on two cores) encodes at about that share of a core: at 64 px
    # the 5,000 images no longer fit 30% of 90 s. A GPU of its own runs the network's part and keeps 128 px.
    assert plan(90.0, cpus=0.65).tracks == ()
    on_gpu = plan(90.0, cpus=0.65, gpus=1.0).prep_for("pretrained")
    assert on_gpu.image_encoder["input"]["size"] == 128
    assert (encoding_seconds({"image_encoder": on_gpu.image_encoder}, profile, on_gpu, 1, cpus=0.65, gpus=1.0)
            < encoding_seconds({"image_encoder": on_gpu.image_encoder}, profile, on_gpu, 1, cpus=0.65))


def _long_reviews(tmp_path):
    """A task of reviews of about 400 characters, profiled as if it had 5,000 rows (the cost model scales with rows)."""
    rng = np.random.default_rng(0)
    words = ["tea", "great", "bad", "smell", "taste", "price", "box", "fresh"]
    texts = [" ".join(rng.choice(words, size=80)) for _ in range(200)]
    frame = pd.DataFrame({"id": range(200), "review": texts, "y": rng.integers(0, 2, 200)})
    summary = analyze_task(write_task(tmp_path / "reviews", frame.iloc[:150], frame.iloc[150:].drop(columns="y")))
    return summary, dataclasses.replace(profile_task(summary), n_train=4000, n_test=1000)


def test_long_texts_skip_the_pretrained_track_only_when_the_budget_is_short(tmp_path):
    summary, profile = _long_reviews(tmp_path)
    knowledge = retrieve(summary, profile, ("pretrained",))
    blueprint = make_blueprint(summary, profile, knowledge, ("pretrained",), 0, 0.2, 1, 90.0, pretrained={"text": MINILM})
    assert blueprint.tracks == ()
    assert any("track pretrained skipped: encoding" in note for note in blueprint.notes)
    long = make_blueprint(summary, profile, knowledge, ("pretrained",), 0, 0.2, 1, 900.0, pretrained={"text": MINILM})
    assert [t.track for t in long.tracks] == ["pretrained"]
    assert long.tracks[0].deferred_encode_s == 0.0


def test_a_pretrained_track_too_costly_beside_the_others_waits_for_them_when_it_would_fit_on_their_cpus(tmp_path):
    """Three tracks on two cores hold 0.65 of a CPU each: 5,000 reviews of about 400 characters take some 380 s at that
    share, more than 30% of 600 s, and some 127 s on the 1.95 CPUs the others free when they stop, which fits. At
    90 s neither fits: the track is skipped, as it is when nothing is freed (alone_cpus unknown)."""
    from iml_ray.plan.encoding_cost import ENCODE_BUDGET_SHARE, encoding_seconds

    summary, profile = _long_reviews(tmp_path)
    tracks = ("traditional", "pretrained", "custom_nn")
    knowledge = retrieve(summary, profile, tracks)

    def plan(budget, alone_cpus):
        return make_blueprint(summary, profile, knowledge, tracks, 0, 0.2, 1, budget, pretrained={"text": MINILM},
                              cpus=0.65, alone_cpus=alone_cpus)

    waits = plan(600.0, 1.95)
    pretrained = waits.track("pretrained")
    prep = waits.prep_for("pretrained")
    changes = {"text_encoder": prep.text_encoder}
    assert pretrained.deferred_encode_s == pytest.approx(encoding_seconds(changes, profile, prep, 1, 1.0), abs=0.1)
    assert encoding_seconds(changes, profile, prep, 1, cpus=0.65) > ENCODE_BUDGET_SHARE * 600.0
    assert pretrained.deferred_encode_s / 2 <= ENCODE_BUDGET_SHARE * 600.0
    assert any("track pretrained waits for the other tracks" in note for note in waits.notes)
    assert any("waits for the other tracks" in reason for reason in pretrained.reasons)
    assert not waits.track("traditional").deferred_encode_s and not waits.track("custom_nn").deferred_encode_s
    # The others' first fit is sized as it would be without the waiting track.
    assert waits.train.max_train_rows == plan(600.0, None).train.max_train_rows
    for skipped in (plan(600.0, None), plan(90.0, 1.95)):
        assert [t.track for t in skipped.tracks] == ["traditional", "custom_nn"]
        assert any("track pretrained skipped: encoding" in note for note in skipped.notes)
    assert any("s even on 1.95 CPUs, more than 30% of the 90 s budget" in note for note in plan(90.0, 1.95).notes)
