"""A track's run → verify → repair loop, in-process with the plain agents and the real sandbox."""
from __future__ import annotations

import time
from dataclasses import replace

from helpers import binary_frames, rules_agents, traditional_job, write_task

from iml_ray.agents.assembler import Assembler
from iml_ray.agents.debugger import Debugger
from iml_ray.agents.error_analyzer import ErrorAnalyzer
from iml_ray.agents.evaluator import Evaluator
from iml_ray.agents.modeling_coder import ModelingCoder
from iml_ray.agents.preprocessing_coder import PreprocessingCoder
from iml_ray.task.inference import analyze_task
from iml_ray.track.job import TrackAgents
from iml_ray.track.loop import run_track


def _job(tmp_path, task, deadline_s=120.0):
    # Repairs, not improvements: the loop's first verified candidate is what these tests read.
    return traditional_job(tmp_path, analyze_task(task), time.time() + deadline_s, improve=False)


AGENTS = rules_agents()


def test_repair_after_timeout_lands_a_verified_candidate(tmp_path, monkeypatch):
    """A first attempt too slow for its slot is repaired with faster settings, and the diff is kept."""
    from iml_ray.track import checks

    train, test, sample = binary_frames(300, 80)
    task = write_task(tmp_path / "toy", train, test, sample)
    real_limits = checks.limits
    calls = {"n": 0}

    def tight_first_pipeline(job, last_chance=False, cpus=None):
        limits = real_limits(job, last_chance, cpus)
        calls["n"] += 1
        # Round 1 = prep probe (call 1) then pipeline (call 2): starve the pipeline of time.
        return replace(limits, timeout_s=0.5) if calls["n"] == 2 else limits

    monkeypatch.setattr(checks, "limits", tight_first_pipeline)
    result = run_track(_job(tmp_path, task), AGENTS)
    assert result.status == "verified"
    assert result.repair_rounds == 1
    first = result.rounds[0]
    assert first.status == "timeout" and first.blamed == "resources"
    assert "learning rate" in first.change
    diff = (tmp_path / "cand" / "round_1" / "repair.diff").read_text()
    assert "learning_rate" in diff and diff.startswith("---")
    assert result.valid_score is not None and result.valid_score > 0.6


def test_a_prep_check_stopped_while_encoding_is_resumed_not_repaired(tmp_path, monkeypatch):
    """A prep check that ran out of time after saving encoded vectors runs again as it was: the next check starts
    from the saved vectors, so no Debugger change (a faster model cannot shorten a prep check)."""
    from iml_ray.track import checks

    train, test, sample = binary_frames(200, 50)
    task = write_task(tmp_path / "toy", train, test, sample)

    class EncodingPrep(PreprocessingCoder):
        def write(self, summary, plan):
            # The rules prep, whose first fit saves what an encoder stopped mid-way would have saved, then stalls.
            return super().write(summary, plan) + (
                "\n\n_RulesPreprocessor = Preprocessor\n\n\nclass Preprocessor(_RulesPreprocessor):\n"
                "    def fit(self, frame):\n"
                "        path = os.path.join(os.environ['IML_ENCODER_CACHE'], 'vectors.pkl')\n"
                "        if not os.path.exists(path):\n"
                "            _save_encoded(path, {'a': np.zeros(3), 'b': np.ones(3)})\n"
                "            time.sleep(120)\n"
                "        return super().fit(frame)\n")

    real_limits = checks.limits
    calls = {"n": 0}

    def first_check_short(job, last_chance=False, cpus=None):
        calls["n"] += 1
        limits = real_limits(job, last_chance, cpus)
        return replace(limits, timeout_s=10.0) if calls["n"] == 1 else limits

    monkeypatch.setattr(checks, "limits", first_check_short)
    agents = TrackAgents(EncodingPrep(), ModelingCoder(), Assembler(), ErrorAnalyzer(), Debugger(), Evaluator())
    result = run_track(_job(tmp_path, task), agents)
    assert result.status == "verified", result.failure
    first = result.rounds[0]
    assert first.status == "timeout" and first.module == "prep"
    assert first.change == "the prep check resumes the encoding (2 vectors saved before its time ran out)"
    assert first.diff_file is None and not (tmp_path / "cand" / "round_1" / "repair.diff").exists()
    assert (tmp_path / "cand" / "round_1" / "prep.py").read_text() == (tmp_path / "cand" / "round_2" / "prep.py").read_text()


def test_a_check_that_encoded_few_images_shrinks_the_encoder_instead_of_resuming():
    from iml_ray.blueprint import PrepPlan
    from iml_ray.track.checks import resume_pays

    images = PrepPlan(image=("img",), image_mode="pretrained", image_encoder={"input": {"size": 128}})
    assert not resume_pays(images, kept=300, rows=1000)     # re-encoding all at 64 px costs less than the rest at 128
    assert resume_pays(images, kept=600, rows=1000)
    at_the_floor = images.replace(image_encoder={"input": {"size": 64}})
    assert resume_pays(at_the_floor, kept=10, rows=1000)    # nothing smaller to go to
    assert resume_pays(PrepPlan(text=("t",), text_mode="pretrained"), kept=10, rows=1000)


def test_unrepairable_failure_names_its_reason(tmp_path, monkeypatch):
    """A prep module that crashes in a way no rule recognises fails the candidate with the reason."""
    train, test, sample = binary_frames(100, 30)
    task = write_task(tmp_path / "toy", train, test, sample)

    class BrokenPrep(PreprocessingCoder):
        def write(self, summary, plan):
            return "class Preprocessor:\n    def fit(self, frame):\n        raise RuntimeError('boom from prep')\n"

    agents = TrackAgents(BrokenPrep(), ModelingCoder(), Assembler(), ErrorAnalyzer(), Debugger(), Evaluator())
    result = run_track(replace(_job(tmp_path, task), max_rounds=3), agents)
    assert result.status == "failed"
    assert "boom from prep" in result.failure
    assert all(r.blamed == "prep" for r in result.rounds), result.rounds
    assert len(result.rounds) <= 4


def test_candidate_output_from_an_earlier_round_never_passes(tmp_path):
    """Each round writes into a fresh output dir: a stale submission cannot be mistaken for a new one."""
    train, test, sample = binary_frames(120, 30)
    task = write_task(tmp_path / "toy", train, test, sample)
    stale = tmp_path / "cand" / "round_1" / "output"
    stale.mkdir(parents=True)
    (stale / "submission.csv").write_text("stale")

    class NoOutputModel(ModelingCoder):
        def write(self, summary, plan, train, contract):
            code = super().write(summary, plan, train, contract)
            return code + "\n\ndef predict_model(model, X):\n    raise SystemExit(0)\n"

    agents = TrackAgents(PreprocessingCoder(), NoOutputModel(), Assembler(), ErrorAnalyzer(), Debugger(), Evaluator())
    result = run_track(replace(_job(tmp_path, task), max_rounds=0), agents)
    assert result.status == "failed"
    assert not (stale / "submission.csv").exists() or (stale / "submission.csv").read_text() != "stale"
