"""Zipped image folders (dogs-vs-cats: train.zip of cat.12.jpg / dog.7.jpg, test.zip of 1.jpg ...): unpacked once
into the run directory with every member checked, never into the task directory; hostile archives are one line."""
from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
from helpers import bar_images, verified_candidate
from PIL import Image

from iml_ray.cli import main
from iml_ray.errors import TaskError
from iml_ray.task.archives import unpack_task
from iml_ray.task.inference import analyze_task, check_task


def _png(label: int, rng) -> bytes:
    pixels = np.zeros((16, 16), dtype=np.uint8)
    where = int(rng.integers(2, 14))
    if label:
        pixels[:, where - 1:where + 1] = 255
    else:
        pixels[where - 1:where + 1, :] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="PNG")
    return buffer.getvalue()


def _zipped_task(root, n_train=160, n_test=40):
    """train.zip: train/horizontal.<n>.png, train/vertical.<n>.png; test.zip: test/<n>.png; sample id,label."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    labels = rng.integers(0, 2, n_train)
    with zipfile.ZipFile(root / "train.zip", "w") as archive:
        for i, label in enumerate(labels):
            archive.writestr(f"train/{'vertical' if label else 'horizontal'}.{i}.png", _png(label, rng))
    truth = rng.integers(0, 2, n_test)
    with zipfile.ZipFile(root / "test.zip", "w") as archive:
        for i, label in enumerate(truth):
            archive.writestr(f"test/{i + 1}.png", _png(label, rng))
    pd.DataFrame({"id": np.arange(1, n_test + 1), "label": 0.5}).to_csv(root / "sample_submission.csv", index=False)
    (root / "description.md").write_text("Predict the probability that the image shows a vertical bar. "
                                         "Submissions are scored on log loss.\n")
    return root, truth


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_zipped_folders_with_labels_in_names_run_through_a_pipeline(tmp_path):
    task, truth = _zipped_task(tmp_path / "bars")
    before = _snapshot(task)
    files = check_task(task)                       # checks the archives, writes nothing
    assert set(files.archives) == {"train", "test"}
    with pytest.raises(TaskError, match="must be unpacked"):
        analyze_task(task)
    unpacked = unpack_task(task, files.archives, tmp_path / "run" / "unpacked")
    assert _snapshot(task) == before                # the task directory is never written
    assert (unpacked / "train" / "vertical.1.png").is_file() or (unpacked / "train" / "horizontal.1.png").is_file()
    assert (unpacked / "sample_submission.csv").is_symlink() and not (unpacked / "train.zip").exists()
    assert unpack_task(task, files.archives, unpacked) == unpacked            # once: a second call reuses it
    summary = analyze_task(unpacked)
    assert summary.layout is not None and summary.layout.label_from == "name"
    assert [s.column for s in summary.images] == [summary.layout.path_column]     # the id names the same files
    assert summary.n_train == 160 and summary.n_test == 40
    assert summary.submission.kind == "probability" and summary.submission.positive_class == "vertical"
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    written = pd.read_csv(result.submission_path)
    assert list(written.columns) == ["id", "label"] and written["id"].tolist() == list(range(1, 41))
    accuracy = ((written["label"] > 0.5).astype(int).to_numpy() == truth).mean()
    assert accuracy > 0.8, accuracy


def test_class_in_the_name_in_a_plain_folder(tmp_path):
    root = tmp_path / "t"
    labels = bar_images(60, 16, root / "train", [f"img{i}.png" for i in range(60)])
    for i, label in enumerate(labels):
        (root / "train" / f"img{i}.png").rename(root / "train" / f"{'vertical' if label else 'horizontal'}_{i}.png")
    bar_images(10, 16, root / "test", [f"{i}.png" for i in range(10)])
    pd.DataFrame({"id": range(10), "label": "vertical"}).to_csv(root / "sample_submission.csv", index=False)
    summary = analyze_task(root)
    assert summary.layout.label_from == "name" and summary.submission.kind == "label"
    assert sorted(summary.submission.classes) == ["horizontal", "vertical"]


def _archive(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("case, problem", [
    ("escape", "has a member outside its folder ('../evil.png')"),
    ("absolute", "has a member outside its folder ('/tmp/evil.png')"),
    ("too_big", "would expand past 1.0 KiB"),
])
def test_hostile_archives_are_one_line_and_touch_nothing(tmp_path, case, problem, monkeypatch, capsys):
    task, _ = _zipped_task(tmp_path / "bars", 20, 5)
    members = {"train/horizontal.1.png": b"x" * 100, "train/vertical.2.png": b"x" * 100}
    if case == "escape":
        members["../evil.png"] = b"x"
    elif case == "absolute":
        members["/tmp/evil.png"] = b"x"
    else:
        members["train/vertical.3.png"] = bytes(4096)        # compresses to almost nothing
        monkeypatch.setenv("IML_MAX_UNPACKED_BYTES", "1024")
    _archive(task / "train.zip", members)
    before = _snapshot(tmp_path)
    code = main(["run", str(task), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and problem in err and "Traceback" not in err and len(err.strip().splitlines()) == 2
    assert not (tmp_path / "out").exists() and _snapshot(tmp_path) == before
    assert not (tmp_path / "evil.png").exists() and not (tmp_path.parent / "evil.png").exists()


def test_a_stripped_description_reads_the_zipped_task_from_its_files(tmp_path):
    from iml_ray.task.inference import STRIPPED_DESCRIPTION

    task, _ = _zipped_task(tmp_path / "bars", 40, 10)
    files = check_task(task)
    unpacked = unpack_task(task, files.archives, tmp_path / "unpacked")
    summary = analyze_task(unpacked, description=STRIPPED_DESCRIPTION)
    # The sample's 0.5 asks for a probability; with no class named, the conventional choice is the minority or last.
    assert summary.submission.kind == "probability" and summary.metric == "auc"
    assert summary.layout.label_from == "name"


def test_a_labels_table_beside_zipped_folders_and_no_test_table(tmp_path):
    """aerial-cactus's layout: train.csv (id = file name, has_cactus), train.zip and test.zip of images, no
    test.csv: the test rows are the sample submission's ids."""
    rng = np.random.default_rng(3)
    root = tmp_path / "cactus"
    root.mkdir()
    labels = rng.integers(0, 2, 120)
    names = [f"{rng.integers(16 ** 12):012x}.png" for _ in range(150)]
    with zipfile.ZipFile(root / "train.zip", "w") as archive:
        for name, label in zip(names[:120], labels):
            archive.writestr(f"train/{name}", _png(label, rng))
    truth = rng.integers(0, 2, 30)
    with zipfile.ZipFile(root / "test.zip", "w") as archive:
        for name, label in zip(names[120:], truth):
            archive.writestr(f"test/{name}", _png(label, rng))
    pd.DataFrame({"id": names[:120], "has_cactus": labels}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"id": names[120:][::-1], "has_cactus": 0.5}).to_csv(root / "sample_submission.csv", index=False)
    (root / "description.md").write_text("Does the picture show a vertical bar? Scored on AUC.\n")
    files = check_task(root)
    assert set(files.archives) == {"train", "test"}
    unpacked = unpack_task(root, files.archives, tmp_path / "unpacked")
    summary = analyze_task(unpacked)
    assert summary.test_file == "sample_submission.csv" and summary.test_columns == ("id",)
    assert summary.n_test == 30 and summary.id_column == "id" and summary.target == "has_cactus"
    assert [source.test_pattern for source in summary.images] == ["test/{}"]
    result = verified_candidate(tmp_path, summary, time.time() + 300)
    written = pd.read_csv(result.submission_path)
    assert list(written.columns) == ["id", "has_cactus"] and written["id"].tolist() == names[120:][::-1]
    from sklearn.metrics import roc_auc_score

    by_name = dict(zip(names[120:], truth))
    assert roc_auc_score([by_name[n] for n in written["id"]], written["has_cactus"]) > 0.8
