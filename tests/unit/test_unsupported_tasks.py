"""A task asking for what iml-ray does not build is one line at analysis, exit 2, nothing written."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import bbc_comments, binary_frames, write_task

from iml_ray.cli import main
from iml_ray.errors import UnsupportedTask
from iml_ray.task.inference import analyze_task, check_task


def _segmentation(root):
    train, test, _ = binary_frames(40, 10)
    sample = pd.DataFrame({"ImageId": test["id"], "EncodedPixels": "1 3 10 5"})
    return write_task(root, train.assign(EncodedPixels="1 1"), test, sample)


def _mask_folder(root):
    train, test, sample = binary_frames(40, 10)
    task = write_task(root, train, test, sample)
    (task / "train_masks").mkdir()
    return task


def _detection(root):
    train, test, _ = binary_frames(40, 10)
    sample = pd.DataFrame({"image_id": test["id"], "PredictionString": "0.9 10 10 50 50"})
    return write_task(root, train, test, sample)


def _summaries(root):
    """Text to text: the target is a free-text summary of the input."""
    frame = bbc_comments()
    words = frame["Comment"].str.split()
    frame["summary"] = [" ".join(w[:6]) + f" ({i})" for i, w in enumerate(words)]
    train, test = frame.iloc[:200][["Comment", "summary"]], frame.iloc[200:260][["Comment"]]
    test = test.assign(id=np.arange(len(test)))
    train = train.assign(id=np.arange(1000, 1000 + len(train)))
    return write_task(root, train, test, test[["id"]].assign(summary=""))


CASES = {"segmentation": (_segmentation, "segmentation masks (the sample submission's column 'EncodedPixels')"),
         "mask_folder": (_mask_folder, "segmentation masks (the task ships a train_masks/ folder)"),
         "detection": (_detection, "detection boxes (the sample submission's column 'PredictionString')"),
         "text_generation": (_summaries, "text generation (the target 'summary' is free text")}


@pytest.mark.parametrize("case", CASES)
def test_unsupported_task_is_named_at_analysis(tmp_path, case, capsys):
    build, asks = CASES[case]
    task = build(tmp_path / case)
    for analyse in (check_task, analyze_task):
        with pytest.raises(UnsupportedTask) as info:
            analyse(task)
        assert f"unsupported task: it asks for {asks}" in info.value.problem
    before = {p: p.read_bytes() for p in task.rglob("*") if p.is_file()}
    code = main(["run", str(task), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: unsupported task") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 2
    assert not (tmp_path / "out").exists()
    assert {p: p.read_bytes() for p in task.rglob("*") if p.is_file()} == before


def test_text_inputs_with_a_class_target_are_supported(tmp_path):
    """Free text as the input, a class as the target: a text classification task, not generation."""
    frame = bbc_comments()
    train, test = frame.iloc[:300], frame.iloc[300:].drop(columns="Insult").assign(id=lambda f: np.arange(len(f)))
    task = write_task(tmp_path / "t", train.assign(id=np.arange(1000, 1300)), test, test[["id"]].assign(Insult=0))
    assert analyze_task(task).problem_type == "binary"
