"""Image tasks laid out as train/<class>/<image> and test/<image>, with no tables, are ordinary image tasks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest
from helpers import run_with_holdout
from PIL import Image

from iml_ray.agents.assembler import Assembler
from iml_ray.codegen.render import render_model, render_prep, render_prep_probe
from iml_ray.errors import TaskError
from iml_ray.plan.guideline_rules import make_blueprint, make_contract
from iml_ray.plan.knowledge import retrieve
from iml_ray.safety.contract import check_prep_report, check_submission, prep_probe_spec
from iml_ray.scoring.evaluate import read_target, score_valid_predictions
from iml_ray.task.files import TaskSummary
from iml_ray.task.inference import analyze_task, check_task
from iml_ray.task.profiling import profile_task

CLASSES = ("diagonal", "horizontal", "vertical")


def _bar(kind: str, rng) -> Image.Image:
    pixels = np.zeros((12, 12), dtype=np.uint8)
    where = int(rng.integers(3, 9))
    if kind == "horizontal":
        pixels[where - 1:where + 1, :] = 255
    elif kind == "vertical":
        pixels[:, where - 1:where + 1] = 255
    else:
        pixels[np.arange(12), np.arange(12)] = 255
        pixels[np.arange(11), np.arange(1, 12)] = 255
    return Image.fromarray(pixels, "L")


def _folder_task(root, per_class=20, n_test=15, ids="name", description="# Bars\nWhich way does the bar run? "
                 "Submissions are evaluated on accuracy.\n"):
    """train/<class>/*.png, test/*.png, sample_submission.csv [file, species] (ids: file names or stems)."""
    rng = np.random.default_rng(0)
    for kind in CLASSES:
        (root / "train" / kind).mkdir(parents=True)
        for i in range(per_class):
            _bar(kind, rng).save(root / "train" / kind / f"{kind[0]}{i:03d}.png")
    (root / "test").mkdir()
    names, truth = [], []
    for i in range(n_test):
        kind = CLASSES[i % 3]
        _bar(kind, rng).save(root / "test" / f"t{i:03d}.png")
        names.append(f"t{i:03d}.png")
        truth.append(kind)
    if ids is not None:
        values = names if ids == "name" else [n[:-4] for n in names]
        # The sample lists the ids in an order of its own: the submission must follow it.
        pd.DataFrame({"file": values[::-1], "species": "vertical"}).to_csv(root / "sample_submission.csv", index=False)
    if description:
        (root / "description.md").write_text(description)
    return root, dict(zip(names, truth))


def _load(code: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(code, f"{name}.py", "exec"), module.__dict__)
    return module


def _pipeline(summary: TaskSummary, track: str = "traditional"):
    """prep + model + runner of a track, rendered and assembled as the engine's agents do it."""
    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, (track,)), (track,), 0, 0.2, 1)
    prep_plan = blueprint.prep_for(track)
    contract = make_contract(summary, prep_plan)
    prep_code = render_prep(summary, prep_plan)
    model_code = render_model(summary, blueprint.track(track), blueprint.train, contract)
    script, _ = Assembler().assemble(summary, contract, track, prep_code, model_code)
    return script, prep_code, contract


def test_a_folder_per_class_task_is_an_ordinary_image_task(tmp_path):
    root, _ = _folder_task(tmp_path / "bars")
    check_task(root)
    summary = analyze_task(root)
    assert (summary.target, summary.id_column) == ("species", "file")
    assert (summary.problem_type, summary.metric) == ("multiclass", "accuracy")
    assert summary.submission.kind == "label" and summary.submission.classes == CLASSES
    assert (summary.n_train, summary.n_test) == (60, 15)
    assert summary.layout.id_style == "name" and summary.feature_columns == (summary.layout.path_column,)
    [source] = summary.images
    assert (source.column, source.train_pattern, source.test_pattern) == ("path", "{}", "{}")
    assert (source.width, source.height, source.mode) == (12, 12, "L")
    assert TaskSummary.from_json(json.loads(json.dumps(summary.to_json()))) == summary

    train = summary.read("train")
    assert list(train.columns) == ["file", "path", "species"]
    assert train.iloc[0].tolist() == ["d000.png", "train/diagonal/d000.png", "diagonal"]
    assert train["path"].tolist() == sorted(train["path"])          # sorted paths: stable row positions
    assert read_target(summary).tolist() == train["species"].tolist()
    assert summary.read("test")["file"].tolist() == [f"t{i:03d}.png" for i in range(15)]


def test_ids_follow_the_sample_submission_and_default_without_one(tmp_path):
    stems = analyze_task(_folder_task(tmp_path / "stems", ids="stem")[0])
    assert stems.layout.id_style == "stem" and stems.read("test")["file"].iloc[0] == "t000"
    bare = analyze_task(_folder_task(tmp_path / "bare", ids=None, description=None)[0])
    assert (bare.id_column, bare.target, bare.layout.id_style) == ("id", "label", "stem")
    assert bare.problem_type == "multiclass" and bare.submission.target_columns == ("label",)


def test_runner_probe_and_framework_read_the_same_tables(tmp_path):
    root, _ = _folder_task(tmp_path / "bars")
    summary = analyze_task(root)
    script, prep_code, contract = _pipeline(summary)
    assert "import iml_ray" not in script and "from iml_ray" not in script
    runner = _load(script, "pipeline_under_test")
    for split in ("train", "test"):
        pd.testing.assert_frame_equal(runner.read_split(str(root), split), summary.read(split))

    # The framework's probe reads the same rows and runs the prep on them.
    (tmp_path / "probe.py").write_text(render_prep_probe())
    (tmp_path / "prep.py").write_text(prep_code)
    (tmp_path / "spec.json").write_text(json.dumps(prep_probe_spec(summary, contract)))
    subprocess.run([sys.executable, "probe.py", "spec.json", "prep.py", "report.json"], cwd=tmp_path, timeout=60,
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    report = json.loads((tmp_path / "report.json").read_text())
    assert check_prep_report(report, contract) == [], report.get("error")
    assert (report["n_train_input"], report["n_test_input"]) == (60, 15)


def test_generated_traditional_pipeline_runs_on_the_folders(tmp_path):
    root, truth = _folder_task(tmp_path / "bars")
    summary = analyze_task(root)
    script, _, _ = _pipeline(summary)
    out, rows = run_with_holdout(tmp_path, summary, script, root)

    assert check_submission(out / "submission.csv", summary) == []
    submission = pd.read_csv(out / "submission.csv")
    sample = pd.read_csv(root / "sample_submission.csv")
    assert list(submission.columns) == ["file", "species"]
    assert submission["file"].tolist() == sample["file"].tolist()
    assert set(submission["species"]) <= set(CLASSES)
    valid = pd.read_csv(out / "valid_predictions.csv")
    assert sorted(valid["__row__"]) == rows.tolist()
    assert score_valid_predictions(valid, summary) >= 0.5          # the bars are easy to tell apart
    assert np.mean([truth[f] == s for f, s in zip(submission["file"], submission["species"])]) >= 0.5


@pytest.mark.parametrize("breakage, message", [
    ("one_class", "1 class folder"),
    ("empty_class", "class folder.* with no image files: train/vertical/"),
    ("empty_test", "test/ holds no image files"),
    ("foreign_ids", "ids of sample_submission.csv match no file in test/"),
    ("some_foreign_ids", r"1 id\(s\) of sample_submission.csv are not in test/"),
])
def test_broken_folders_are_one_clear_error(tmp_path, breakage, message):
    root, _ = _folder_task(tmp_path / "bars", per_class=3, n_test=3)
    sample = pd.read_csv(root / "sample_submission.csv")
    if breakage == "one_class":
        for kind in CLASSES[1:]:
            for image in (root / "train" / kind).iterdir():
                image.unlink()
            (root / "train" / kind).rmdir()
    elif breakage == "empty_class":
        for image in (root / "train" / "vertical").iterdir():
            image.unlink()
        (root / "train" / "vertical" / "notes.txt").write_text("no images here")
    elif breakage == "empty_test":
        for image in (root / "test").iterdir():
            image.unlink()
    elif breakage == "foreign_ids":
        sample.assign(file=[f"x{i}.jpg" for i in range(len(sample))]).to_csv(root / "sample_submission.csv", index=False)
    else:
        sample.assign(file=["zz.png"] + sample["file"].tolist()[1:]).to_csv(root / "sample_submission.csv", index=False)
    with pytest.raises(TaskError, match=message) as caught:
        analyze_task(root) if breakage == "some_foreign_ids" else check_task(root)
    assert "\n" not in caught.value.problem and caught.value.fix


def _labels_task(root, labels_name, per_class=12, n_test=9):
    """Dog breeds' layout: train/<id>.png and test/<id>.png named by ids, the labels in `labels_name` (id, kind),
    the sample submission one probability column per class."""
    rng = np.random.default_rng(1)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = []
    for n in range(per_class * 3):
        kind = CLASSES[n % 3]
        _bar(kind, rng).save(root / "train" / f"img{n:04d}.png")
        rows.append({"id": f"img{n:04d}", "kind": kind})
    pd.DataFrame(rows).to_csv(root / labels_name, index=False)
    test_ids = [f"tst{n:04d}" for n in range(n_test)]
    for n, name in enumerate(test_ids):
        _bar(CLASSES[n % 3], rng).save(root / "test" / f"{name}.png")
    pd.DataFrame({"id": test_ids, **{c: 1 / 3 for c in CLASSES}}).to_csv(root / "sample_submission.csv", index=False)
    (root / "description.md").write_text("# Bars\nSubmissions are evaluated on multi-class log loss.\n")
    return root


@pytest.mark.parametrize("labels_name", ["labels.csv", "train_labels.csv", "trainLabels.csv"])
def test_the_labels_of_files_named_by_their_ids_are_the_train_table(tmp_path, labels_name):
    root = _labels_task(tmp_path / "dogs", labels_name)
    summary = analyze_task(root)
    assert (summary.train_file, summary.target, summary.id_column) == (labels_name, "kind", "id")
    assert [source.column for source in summary.images] == ["id"]
    assert (summary.submission.kind, summary.submission.classes) == ("class_probabilities", CLASSES)
    assert summary.n_train == 36 and summary.n_test == 9


def test_class_folders_are_the_labels_even_beside_a_labels_table(tmp_path):
    root, _ = _folder_task(tmp_path / "bars")
    pd.DataFrame({"file": ["x"], "species": ["vertical"]}).to_csv(root / "labels.csv", index=False)
    summary = analyze_task(root)
    assert summary.layout is not None and summary.train_file != "labels.csv"


def test_a_test_images_folder_with_no_test_table_takes_the_samples_ids(tmp_path):
    """Cassava's layout: train.csv (image_id = file name, label), train_images/, test_images/ and no test table."""
    import time

    from helpers import verified_candidate

    rng = np.random.default_rng(2)
    root = tmp_path / "cassava"
    (root / "train_images").mkdir(parents=True)
    (root / "test_images").mkdir()
    rows = []
    for n in range(60):
        kind = CLASSES[n % 3]
        _bar(kind, rng).save(root / "train_images" / f"{7000 + n}.png")
        rows.append({"image_id": f"{7000 + n}.png", "label": CLASSES.index(kind)})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test_ids = [f"{9000 + n}.png" for n in range(12)]
    for n, name in enumerate(test_ids):
        _bar(CLASSES[n % 3], rng).save(root / "test_images" / name)
    pd.DataFrame({"image_id": test_ids[::-1], "label": 4}).to_csv(root / "sample_submission.csv", index=False)
    (root / "description.md").write_text("Submissions are evaluated on categorization accuracy.\n")
    summary = analyze_task(root)
    assert (summary.test_file, summary.test_columns, summary.n_test) == ("sample_submission.csv", ("image_id",), 12)
    assert [(s.train_pattern, s.test_pattern) for s in summary.images] == [("train_images/{}", "test_images/{}")]
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    written = pd.read_csv(result.submission_path)
    assert written["image_id"].tolist() == test_ids[::-1] and set(written["label"]) <= {0, 1, 2}


def test_train_images_in_class_folders_named_by_the_train_table_are_found_by_name(tmp_path):
    """Paddy's layout: train.csv (image_id, label, variety), train_images/<label>/<image_id>, test_images/<image_id>,
    no test table."""
    import time

    from helpers import verified_candidate

    rng = np.random.default_rng(4)
    root = tmp_path / "paddy"
    rows = []
    for n in range(60):
        kind = CLASSES[n % 3]
        (root / "train_images" / kind).mkdir(parents=True, exist_ok=True)
        _bar(kind, rng).save(root / "train_images" / kind / f"{1000 + n}.png")
        rows.append({"image_id": f"{1000 + n}.png", "label": kind, "variety": "ADT45"})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    (root / "test_images").mkdir()
    test_ids = [f"{2000 + n}.png" for n in range(12)]
    for n, name in enumerate(test_ids):
        _bar(CLASSES[n % 3], rng).save(root / "test_images" / name)
    pd.DataFrame({"image_id": test_ids, "label": ""}).to_csv(root / "sample_submission.csv", index=False)
    (root / "description.md").write_text("Submissions are evaluated on categorization accuracy.\n")
    summary = analyze_task(root)
    assert [(s.train_pattern, s.test_pattern) for s in summary.images] == [("train_images/**/{}", "test_images/{}")]
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    written = pd.read_csv(result.submission_path)
    truth = [CLASSES[n % 3] for n in range(12)]
    assert written["image_id"].tolist() == test_ids
    assert np.mean(written["label"].to_numpy() == np.asarray(truth)) >= 0.5     # the bars are easy to tell apart


def test_files_found_below_a_folder_tolerate_a_few_missing(tmp_path):
    from iml_ray.task.media import find_image_sources, media_paths

    rng = np.random.default_rng(6)
    for n in range(1, 12):
        folder = tmp_path / "train_images" / CLASSES[n % 3]
        folder.mkdir(parents=True, exist_ok=True)
        _bar(CLASSES[n % 3], rng).save(folder / f"{n}.png")
    (tmp_path / "test_images").mkdir()
    for n in range(3):
        _bar(CLASSES[n], rng).save(tmp_path / "test_images" / f"t{n}.png")
    train = pd.DataFrame({"image_id": [f"{n}.png" for n in range(12)]})      # 0.png is missing: 11 of 12 found
    test = pd.DataFrame({"image_id": [f"t{n}.png" for n in range(3)]})
    [source] = find_image_sources(train, test, tmp_path, ["image_id"])
    assert (source.train_pattern, source.width, source.height) == ("train_images/**/{}", 12, 12)
    paths = media_paths(str(tmp_path), source.train_pattern, ["0.png", "4.png", None, float("nan")])
    assert paths[0] is None and paths[2] is None and paths[3] is None
    assert paths[1] == str(tmp_path / "train_images" / CLASSES[1] / "4.png")
