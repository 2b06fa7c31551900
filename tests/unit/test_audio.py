"""Audio clips named by a column or in class folders are found, checked, profiled, planned per track and read
by the prep module as log-mel statistics (trees, linear models) or spectrograms (the CNN)."""
from __future__ import annotations

import io
import os
import types
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile
from helpers import instrument_clips, run_with_holdout, write_task

from iml_ray.agents.assembler import Assembler
from iml_ray.cli import main
from iml_ray.codegen.render import render_model, render_prep
from iml_ray.errors import TaskError
from iml_ray.plan.guideline_rules import make_blueprint, make_contract
from iml_ray.plan.knowledge import retrieve
from iml_ray.safety.contract import check_layout, check_submission
from iml_ray.scoring.evaluate import score_valid_predictions
from iml_ray.task.archives import unpack_task
from iml_ray.task.files import TaskSummary
from iml_ray.task.inference import analyze_task, check_task
from iml_ray.task.media import NAME_LABEL_LAST
from iml_ray.task.profiling import profile_task

N = 90


@pytest.fixture(scope="module")
def clips():
    return instrument_clips(N)


def _table_task(root, clips, n_test=20):
    """BirdCLEF's layout: train.csv names train_audio/<file>, test.csv names test_audio/<file>; wav and flac."""
    audio, labels, rate = clips
    names = [f"{i:03d}.{'flac' if i % 3 == 0 else 'wav'}" for i in range(len(audio))]
    for i, name in enumerate(names):
        folder = root / ("test_audio" if i < n_test else "train_audio")
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / name, audio[i], rate)
    train = pd.DataFrame({"filename": names[n_test:], "family": labels[n_test:]})
    test = pd.DataFrame({"row_id": [f"r{i}" for i in range(n_test)], "filename": names[:n_test]})
    return write_task(root, train, test, test[["row_id"]].assign(family="piano"),
                      "# Instruments\nWhich instrument family plays the clip? Evaluated on accuracy.")


def _load(code: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(code, f"{name}.py", "exec"), module.__dict__)
    return module


def test_clips_named_by_a_column_are_found_profiled_and_planned(tmp_path, clips):
    root = _table_task(tmp_path / "instruments", clips)
    summary = analyze_task(root)
    [source] = summary.audio
    assert (source.column, source.train_pattern, source.test_pattern) == ("filename", "train_audio/{}", "test_audio/{}")
    assert (source.sample_rate, source.channels) == (16000, 1) and source.seconds == pytest.approx(1.5)
    assert summary.images == () and summary.problem_type == "multiclass" and "audio:filename" in summary.decisions
    assert TaskSummary.from_json(summary.to_json()) == summary
    profile = profile_task(summary)
    [audio] = profile.audio
    assert audio.n_checked == N and audio.n_unreadable == 0 and audio.max_rate == 16000
    assert audio.max_seconds == pytest.approx(1.5)

    tracks = ("traditional", "pretrained", "custom_nn")
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1, 120.0,
                               pretrained={"text": None, "image": None})
    assert [t.track for t in blueprint.tracks] == ["traditional", "custom_nn"]
    assert any("pretrained skipped: no pretrained audio encoder" in note for note in blueprint.notes)
    prep = blueprint.prep
    assert prep.audio == ("filename__audio",) and prep.audio_mode == "stats"
    assert (prep.audio_rate, prep.audio_seconds) == (16000, 1.5)
    assert "filename" in prep.dropped and "audio" in prep.dropped["filename"]
    nn_prep = blueprint.prep_for("custom_nn")
    assert nn_prep.audio_mode == "spectrogram" and blueprint.track("custom_nn").nn["shift_axes"] == "time"
    assert make_contract(summary, prep).input_columns == ("filename__audio",)


def _prep_module(summary, prep_plan, name):
    return _load(render_prep(summary, prep_plan), name)


def test_prep_reads_statistics_and_spectrograms_in_the_layout_it_reports(tmp_path, clips):
    root = _table_task(tmp_path / "instruments", clips)
    summary = analyze_task(root)
    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("traditional", "custom_nn")),
                               ("traditional", "custom_nn"), 0, 0.2, 1, 120.0)
    rate = clips[2]
    # The same clip at 48 kHz (ogg), one that is not audio, and a missing file.
    soundfile.write(tmp_path / "resampled.ogg", soundfile.read(root / "train_audio" / "030.flac")[0].repeat(3), rate * 3)
    (tmp_path / "junk.wav").write_text("not audio")
    paths = [str(root / "train_audio" / "030.flac"), str(tmp_path / "resampled.ogg"), str(tmp_path / "junk.wav"),
             str(tmp_path / "missing.wav")] + [str(root / "train_audio" / n) for n in sorted(os.listdir(root / "train_audio"))]
    frame = pd.DataFrame({"filename__audio": paths})

    stats = _prep_module(summary, blueprint.prep, "prep_stats").Preprocessor().fit(frame)
    X = stats.transform(frame)
    assert X.dtype == np.float32 and np.isfinite(X).all() and X.shape == (len(paths), stats.layout_["n_features"])
    assert stats.layout_["image"] is None and check_layout(stats.layout_, X.shape[1]) == []
    names = stats.feature_names_
    unreadable, seconds = names.index("filename__audio__unreadable"), names.index("filename__audio__seconds")
    assert X[:4, unreadable].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert X[0, seconds] == pytest.approx(1.5, abs=0.01)
    # Resampled from 48 kHz to 16 kHz, the clip's band means are the original's.
    bands = [names.index(f"filename__audio__mean_{m}") for m in range(blueprint.prep.audio_mels)]
    assert np.corrcoef(X[0, bands], X[1, bands])[0, 1] > 0.95
    # Different instruments differ.
    assert np.abs(X[4, bands] - X[5, bands]).max() > 0.5

    nn_plan = blueprint.prep_for("custom_nn")
    cnn = _prep_module(summary, nn_plan, "prep_spectrogram").Preprocessor().fit(frame)
    S = cnn.transform(frame)
    block = cnn.layout_["image"]
    assert block["shape"] == [1, nn_plan.audio_mels, nn_plan.audio_frames] and check_layout(cnn.layout_, S.shape[1]) == []
    grid = S[:, block["start"]:block["start"] + int(np.prod(block["shape"]))]
    assert abs(float(grid[4:].mean())) < 0.2 and 0.8 < float(grid[4:].std()) < 1.2     # standardised on train
    assert np.isfinite(S).all()


def test_generated_pipeline_classifies_the_clips(tmp_path, clips):
    root = _table_task(tmp_path / "instruments", clips)
    summary = analyze_task(root)
    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("traditional",)), ("traditional",), 0,
                               0.2, 1)
    contract = make_contract(summary, blueprint.prep)
    script, _ = Assembler().assemble(summary, contract, "traditional", render_prep(summary, blueprint.prep),
                                     render_model(summary, blueprint.track("traditional"), blueprint.train, contract))
    out, _ = run_with_holdout(tmp_path, summary, script, root, timeout=300)
    assert check_submission(out / "submission.csv", summary) == []
    submission = pd.read_csv(out / "submission.csv")
    assert list(submission.columns) == ["row_id", "family"] and len(submission) == 20
    # Six families, 70 training clips: well above the 1/6 of a guess.
    assert score_valid_predictions(pd.read_csv(out / "valid_predictions.csv"), summary) > 0.3


def test_clips_in_class_folders_are_an_audio_task(tmp_path, clips):
    audio, labels, rate = clips
    root = tmp_path / "folders"
    for i, (clip, label) in enumerate(zip(audio[:60], labels[:60])):
        (root / "train" / label).mkdir(parents=True, exist_ok=True)
        soundfile.write(root / "train" / label / f"c{i:03d}.wav", clip, rate)
    (root / "test").mkdir()
    for i, clip in enumerate(audio[60:70]):
        soundfile.write(root / "test" / f"t{i:03d}.flac", clip, rate)
    pd.DataFrame({"clip": [f"t{i:03d}" for i in range(10)], "family": "piano"}).to_csv(
        root / "sample_submission.csv", index=False)
    summary = analyze_task(root)
    assert summary.layout is not None and summary.layout.kind_of_file == "clip"
    assert "one row per clip of train/<class>/" in summary.decisions["layout"]
    [source] = summary.audio
    assert source.column == summary.layout.path_column and summary.target == "family"
    assert summary.n_train == 60 and summary.n_test == 10 and set(summary.submission.classes) == set(labels[:60])


def test_files_that_are_not_audio_are_one_clear_line_and_nothing_is_written(tmp_path, clips, capsys):
    root = _table_task(tmp_path / "instruments", clips)
    for folder in ("train_audio", "test_audio"):
        for path in (root / folder).iterdir():
            path.write_bytes(b"RIFF....WAVEfmt garbage, not a clip")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(TaskError, match=r"is not an audio file iml-ray can read") as caught:
        check_task(root)
    assert "\n" not in caught.value.problem and caught.value.fix
    code = main(["run", str(root), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "is not an audio file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 2
    assert not (tmp_path / "out").exists()
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def _aiff(clip, rate) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, clip, rate, format="AIFF", subtype="PCM_16")
    return buffer.getvalue()


def test_the_whale_layout_zipped_aiff_clips_labelled_by_their_last_token(tmp_path, clips):
    """MLE-bench's right-whale redux: train2.zip of train2/<stamp>_TRAIN<n>_<0|1>.aif, test2.zip of
    test2/<stamp>_Test<n>.aif, no tables but sampleSubmission.csv (clip, probability), AUC."""
    audio, labels, rate = clips
    keep = [i for i, label in enumerate(labels) if label in ("brass", "piano")]
    root = tmp_path / "whale"
    root.mkdir()
    n_test = 10
    test_idx, train_idx = keep[:n_test], keep[n_test:]
    with zipfile.ZipFile(root / "train2.zip", "w") as archive:
        for n, i in enumerate(train_idx):
            archive.writestr(f"train2/20090328_{n:06d}_TRAIN{n}_{int(labels[i] == 'brass')}.aif", _aiff(audio[i], rate))
    names = [f"20090330_{n:06d}_Test{n}.aif" for n in range(n_test)]
    with zipfile.ZipFile(root / "test2.zip", "w") as archive:
        for name, i in zip(names, test_idx):
            archive.writestr(f"test2/{name}", _aiff(audio[i], rate))
    pd.DataFrame({"clip": names, "probability": 0}).to_csv(root / "sampleSubmission.csv", index=False)
    (root / "description.md").write_text("Detect the up-call. Submissions are judged on area under the ROC curve.\n")

    files = check_task(root)
    assert {split: path.name for split, path in files.archives.items()} == {"train": "train2.zip", "test": "test2.zip"}
    unpacked = unpack_task(root, files.archives, tmp_path / "run" / "unpacked")
    assert (unpacked / "test" / names[0]).is_file()           # the lone top folder test2/ is dropped
    summary = analyze_task(unpacked)
    layout = summary.layout
    assert layout.kind_of_file == "clip" and layout.label_from == "name" and layout.label_pattern == NAME_LABEL_LAST
    assert "the class is the name's last _token" in summary.decisions["layout"]
    assert summary.metric == "auc" and summary.submission.kind == "probability"
    assert summary.submission.positive_class in (1, "1") and summary.target == "probability"
    assert summary.n_train == len(train_idx) and summary.n_test == n_test
    [source] = summary.audio
    assert source.column == layout.path_column


def test_a_stripped_description_still_reads_the_audio_task(tmp_path, clips):
    """--strip-description: the files and the sample submission say it is a multiclass task of clips."""
    from iml_ray.task.inference import STRIPPED_DESCRIPTION

    root = _table_task(tmp_path / "instruments", clips)
    summary = analyze_task(root, description=STRIPPED_DESCRIPTION)
    assert summary.description == STRIPPED_DESCRIPTION and summary.problem_type == "multiclass"
    assert summary.metric == "accuracy" and summary.submission.kind == "label"
    assert [s.column for s in summary.audio] == ["filename"]
