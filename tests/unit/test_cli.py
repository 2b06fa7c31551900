"""`iml run` on bad input: one clear error, exit code 2, no traceback, nothing written."""
from __future__ import annotations

import subprocess
import sys

from helpers import binary_frames, write_task

from iml_ray.cli import main


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_missing_task_dir(tmp_path, capsys):
    code = main(["run", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: task directory") and "does not exist" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unknown_metric_in_task_yaml(tmp_path, capsys):
    train, test, sample = binary_frames(40, 10)
    root = write_task(tmp_path / "t", train, test, sample, task_yaml="metric: bogus\n")
    code = main(["run", str(root), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown metric 'bogus'" in err and "known metrics" in err
    assert not (tmp_path / "out").exists()


def test_output_dir_with_an_earlier_run_is_refused_and_kept(tmp_path, capsys):
    train, test, sample = binary_frames(40, 10)
    root = write_task(tmp_path / "t", train, test, sample)
    out = tmp_path / "out"
    out.mkdir()
    (out / "state.json").write_text('{"stages": {}}')
    (out / "submission.csv").write_text("id,label\n1,0\n")
    before = _snapshot(out)
    code = main(["run", str(root), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "holds an earlier run" in err and "--resume" in err and "--force" in err
    assert _snapshot(out) == before


def test_non_empty_foreign_output_dir_is_refused(tmp_path, capsys):
    train, test, sample = binary_frames(40, 10)
    root = write_task(tmp_path / "t", train, test, sample)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["run", str(root), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_task_files_are_never_modified_by_a_refused_run(tmp_path, capsys):
    train, test, sample = binary_frames(40, 10)
    root = write_task(tmp_path / "t", train, test, sample)
    (root / "test.csv").write_text("id,x1,colour,age,surprise\n1,0.1,red,30,9\n")
    before = _snapshot(root)
    assert main(["run", str(root), "--out", str(tmp_path / "out")]) == 2
    assert "lacks" in capsys.readouterr().err
    assert _snapshot(root) == before


def test_help_imports_nothing_heavy():
    code = ("import sys, time; t=time.time(); from iml_ray import cli; "
            "heavy=[m for m in ('ray','pandas','sklearn','lightgbm','torch','transformers') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    result = subprocess.run([sys.executable, "-m", "iml_ray.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "run" in result.stdout


def test_a_misspelt_track_is_refused_before_anything_starts(tmp_path, capsys):
    train, test, sample = binary_frames(40, 10)
    root = write_task(tmp_path / "t", train, test, sample)
    assert main(["run", str(root), "--out", str(tmp_path / "out"), "--tracks", "traditional,custom-nn"]) == 2
    err = capsys.readouterr().err
    assert "unknown track(s) ['custom-nn']" in err and "custom_nn" in err
    assert not (tmp_path / "out").exists()


def test_report_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "report.json does not exist" in err


def test_a_local_model_is_named_once_and_must_be_there(tmp_path, capsys):
    train, test, sample = binary_frames(40, 10)
    root = write_task(tmp_path / "t", train, test, sample)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    code = main(["run", str(root), "--out", str(tmp_path / "out"), "--llm", f"local:{gguf}", "--llm-model", "gpt-4o"])
    err = capsys.readouterr().err
    assert code == 2 and "name two models" in err and "Traceback" not in err
    code = main(["run", str(root), "--out", str(tmp_path / "out"), "--llm", f"local:{tmp_path}/gone.gguf"])
    err = capsys.readouterr().err
    assert code == 2 and "gone.gguf does not exist" in err
    config = tmp_path / "c.yaml"
    config.write_text("policy: local\nllm:\n  model: gpt-4o\n")
    code = main(["run", str(root), "--out", str(tmp_path / "out"), "--config", str(config)])
    assert code == 2 and "policy local needs a local:PATH_OR_ID model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unknown_llm_policy_is_refused_by_the_parser(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exited:
        main(["run", str(tmp_path), "--out", str(tmp_path / "out"), "--llm", "claude"])
    assert exited.value.code == 2
    assert "choose rules, openai or local:MODEL" in capsys.readouterr().err
