"""The LLM improves the model module it wrote (issue 21): shown the verified module, the framework's score of it,
what describe_model() said and the time left, it writes a better version; the framework runs, verifies and scores
that version like any round and keeps it only when it scores better. Real sandbox, the scripted chat server."""
from __future__ import annotations

import time

from helpers import binary_frames, traditional_job, write_task
from llm_scripts import MODEL, PRIOR_MODEL, fenced

from iml_ray.agents.assembler import Assembler
from iml_ray.agents.debugger import Debugger
from iml_ray.agents.error_analyzer import ErrorAnalyzer
from iml_ray.agents.evaluator import Evaluator
from iml_ray.agents.modeling_coder import ModelingCoder
from iml_ray.agents.preprocessing_coder import PreprocessingCoder
from iml_ray.llm.plumbing import LLMPlumbing
from iml_ray.llm.serving.scripted_server import ScriptedServer
from iml_ray.llm.settings import LLMSettings
from iml_ray.task.inference import analyze_task
from iml_ray.track.job import TrackAgents
from iml_ray.track.loop import run_track

IMPROVE = "Write a better version"          # in the improve prompt only
DRAFT = "# Track plan"                      # in the draft prompt only


def test_the_llm_improves_its_weak_draft_and_the_track_keeps_only_the_better_version(tmp_path):
    train, test, sample = binary_frames(400, 80)
    task = write_task(tmp_path / "toy", train, test, sample, "## Evaluation\nAUC")
    script = [{"when": IMPROVE, "content": fenced(MODEL)},
              {"when": IMPROVE, "content": fenced(PRIOR_MODEL), "repeat": 2},
              {"when": DRAFT, "content": fenced(PRIOR_MODEL)}]
    with ScriptedServer(script) as server:
        llm = LLMPlumbing(LLMSettings(base_url=server.url, model="scripted", backoff_s=0.01, max_retries=1))
        agents = TrackAgents(PreprocessingCoder(), ModelingCoder("openai", llm), Assembler(), ErrorAnalyzer(), Debugger(),
                             Evaluator(), llm=True)
        result = run_track(traditional_job(tmp_path, analyze_task(task), time.time() + 150), agents)
        prompts = [request["body"]["messages"][1]["content"] for request in server.requests]
    assert result.status == "verified", result.failure
    draft, better, *worse = result.rounds
    assert draft.step is None and abs(draft.score - 0.5) < 1e-9
    assert better.step == "llm_improve" and better.kept and better.score > 0.8
    assert draft.author == "prep: rules, model: llm" and better.author == "prep: rules, model: llm"
    assert [r.step for r in worse] == ["llm_improve", "llm_improve"] and not any(r.kept for r in worse)
    assert result.valid_score == better.score and result.details["best_round"] == better.round
    assert result.details["stopped"] == ("out of improvements: the LLM's last 2 versions of the model module did not "
                                         f"beat round {better.round}")
    assert result.details["modules"]["model"]["source"] == "llm"
    assert (tmp_path / "cand" / "model_traditional.py").read_text().strip() == MODEL.strip()

    first_improve, second_improve = prompts[1], prompts[2]
    # The draft's code, the framework's score of it, what describe_model said, the history and the time left.
    assert "the class frequencies, whatever the row" in first_improve and "counts / counts.sum()" in first_improve
    assert "validation auc of this module: 0.5" in first_improve and '"kind": "first draft"' in first_improve
    assert "s are left for this track" in first_improve and "higher is better" in first_improve
    # The next version starts from the kept one, and the history shows the kept round.
    assert "LogisticRegression" in second_improve and f"{better.score:.6g}" in second_improve
    assert '"kind": "llm_improve"' in second_improve and '"kept": true' in second_improve


def test_an_improve_answer_is_cached_under_the_module_and_its_score_not_the_seconds_left(tmp_path):
    """A rerun asks with other seconds left and other progress of the other tracks: the cache still answers."""
    from iml_ray.agents.modeling_coder import ModelingCoder

    train, test, sample = binary_frames(100, 20)
    summary = analyze_task(write_task(tmp_path / "toy", train, test, sample, "## Evaluation\nAUC"))
    job = traditional_job(tmp_path, summary, time.time() + 60)
    brief = {"code": PRIOR_MODEL, "score": 0.5, "model": {"choice": "prior"}, "others": {}, "history": [],
             "seconds_left": 80.0, "round_s": 6.0, "fits": 2}
    later = {**brief, "seconds_left": 41.0, "round_s": 9.0, "others": {"custom_nn": {"score": 0.7}}}
    with ScriptedServer([{"content": fenced(MODEL)}, {"content": fenced(PRIOR_MODEL)}]) as server:
        settings = LLMSettings(base_url=server.url, model="scripted", backoff_s=0.01, max_retries=0,
                               cache_dir=str(tmp_path / "cache"))
        coder = ModelingCoder("openai", LLMPlumbing(settings))
        args = (summary, job.plans.track, job.contract, {"train": {"shape": [80, 4]}}, 1)
        first = coder.improve(*args, brief)
        again = coder.improve(*args, later)
        sent = len(server.requests)
        # A version was tried and did not pay off: asking again is a new question, not the cached answer.
        after_a_miss = coder.improve(*args, {**brief, "history": [{"round": 2, "kind": "llm_improve", "kept": False,
                                                                   "failure": "scored 0.61 in 12 s"}]})
    assert first == again and "LogisticRegression" in first and sent == 1
    assert "the class frequencies" in after_a_miss and len(server.requests) == 2
