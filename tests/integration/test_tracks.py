"""All tracks of one competition at once on a real local Ray cluster, with fake GPUs.

`ray.init(num_gpus=2)` on a CPU machine makes Ray account for two GPUs it cannot
see; that is enough to prove the GPU tracks are scheduled on distinct devices and
that their sandboxed children see only their own.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import local_ray, write_task
from PIL import Image

from iml_ray.config import RunConfig
from iml_ray.run.engine import run_competition

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    yield from local_ray(num_cpus=2, num_gpus=2)


def _reviews_with_images(root, n=240):
    """A mixed task: a short review, a number and a picture per row, linked by the id."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, n)
    good = ["great", "lovely", "superb", "works", "happy"]
    bad = ["broken", "awful", "refund", "poor", "sad"]
    filler = ["the", "item", "arrived", "on", "time", "box", "colour", "size"]
    reviews = [" ".join(rng.choice(filler, 5).tolist() + rng.choice(good if y else bad, 2).tolist()) for y in label]
    ids = [f"r{i:04d}" for i in rng.permutation(n)]
    (root / "images").mkdir(parents=True)
    for name, y in zip(ids, label):
        pixels = rng.integers(0, 60, (16, 16)).astype(np.uint8)
        pixels[4:12, 4:12] += np.uint8(150 if y else 0)
        Image.fromarray(pixels, "L").save(root / "images" / f"{name}.png")
    frame = pd.DataFrame({"id": ids, "review": reviews, "price": rng.normal(20, 5, n).round(2), "label": label})
    train, test = frame.iloc[:190], frame.iloc[190:].drop(columns="label")
    return write_task(root, train, test, pd.DataFrame({"id": test["id"], "label": 0.5}),
                      "# Reviews\nPredict whether the customer liked the product. Scored on area under the ROC curve.\n")


def test_three_tracks_run_at_once_and_gpu_tracks_get_distinct_devices(tmp_path):
    task = _reviews_with_images(tmp_path / "reviews")
    out = tmp_path / "out"
    result = run_competition(task, out, RunConfig(time_budget_s=240))
    assert result.status == "ok"
    report = json.loads((out / "report.json").read_text())
    board = {row["track"]: row for row in report["leaderboard"]}
    assert set(board) == {"traditional", "pretrained", "custom_nn"}
    assert all(row["status"] == "verified" and row["valid_score"] > 0.8 for row in board.values()), board

    # Ran at once: every track started before any other finished.
    assert max(r["started_s"] for r in board.values()) < min(r["finished_s"] for r in board.values())

    # Fractional CPUs so that three tracks fit two CPUs; a GPU each for the two GPU tracks, none for trees.
    assert sum(r["resources"]["num_cpus"] for r in board.values()) <= 2.0
    assert board["traditional"]["resources"]["num_gpus"] == 0
    assert board["pretrained"]["resources"]["num_gpus"] == 1 and board["custom_nn"]["resources"]["num_gpus"] == 1
    seen = {}
    for track in board:
        info = json.loads((out / "candidates" / track / "round_1" / "output" / "run_info.json").read_text())
        seen[track] = info["devices"]["CUDA_VISIBLE_DEVICES"]
    assert seen["traditional"] == ""
    assert {seen["pretrained"], seen["custom_nn"]} == {"0", "1"}

    # The pretrained track read the reviews through the sentence encoder, not TF-IDF.
    plans = json.loads((out / "plan" / "blueprint.json").read_text())
    pretrained = next(t for t in plans["tracks"] if t["track"] == "pretrained")
    assert pretrained["prep_changes"]["text_mode"] == "pretrained"
    assert pretrained["prep_changes"]["image_mode"] == "pretrained"
    pipeline = (out / "candidates" / "pretrained" / "pipeline_pretrained.py").read_text()
    assert "def encode_text" in pipeline and "def encode_images" in pipeline
