"""Every LLM agent gets what the agents before it learned (issue 21): the Profiler's findings reach the
KnowledgeRetriever and both coders, the advice and the blueprint's notes reach the coders, each track's
PreprocessingCoder is told which models read its matrix, and the ModelingCoder sees the verified prep module's
source and the names of the matrix's columns. Real sandbox, the scripted chat server."""
from __future__ import annotations

import dataclasses
import json
import re
import time

import pandas as pd
from helpers import binary_frames, traditional_job, write_task
from llm_scripts import GOOD_PREP, MODEL, answer, fenced

from iml_ray.agents.assembler import Assembler
from iml_ray.agents.briefs import labelled_examples, run_options
from iml_ray.agents.debugger import Debugger
from iml_ray.agents.error_analyzer import ErrorAnalyzer
from iml_ray.agents.evaluator import Evaluator
from iml_ray.agents.knowledge_retriever import KnowledgeRetriever
from iml_ray.agents.modeling_coder import ModelingCoder
from iml_ray.agents.preprocessing_coder import PreprocessingCoder
from iml_ray.llm.plumbing import LLMPlumbing
from iml_ray.llm.serving.scripted_server import ScriptedServer
from iml_ray.llm.settings import LLMSettings
from iml_ray.task.inference import analyze_task
from iml_ray.task.profiling import profile_task
from iml_ray.track.job import TrackAgents
from iml_ray.track.loop import run_track

FINDINGS = {"age": "age above 60 has twice the positive rate", "duplicates": "7 duplicated train rows"}
ADVICE = "Keep colour: it is the second most informative column."
NOTE = "validated on 5 folds"
# The prep module names its columns, as the framework's own does.
NAMED_PREP = GOOD_PREP.replace(
    '''        return self''',
    '''        self.feature_names_ = self.numeric + [f"colour={c}" for c in self.colours]
        return self''', 1)


def _llm(server):
    return LLMPlumbing(LLMSettings(base_url=server.url, model="scripted", backoff_s=0.01, max_retries=0))


def test_the_knowledge_retriever_sees_the_profilers_findings(tmp_path):
    train, test, sample = binary_frames(120, 30)
    summary = analyze_task(write_task(tmp_path / "t", train, test, sample))
    profile = dataclasses.replace(profile_task(summary), findings=FINDINGS)
    with ScriptedServer([{"content": json.dumps({"cards": [], "advice": ADVICE})}]) as server:
        knowledge = KnowledgeRetriever("openai", _llm(server)).retrieve(summary, profile, ("traditional",))
        prompt = server.requests[0]["body"]["messages"][1]["content"]
    assert knowledge.advice == ADVICE
    assert "age above 60 has twice the positive rate" in prompt and "7 duplicated train rows" in prompt


def test_the_coders_see_the_findings_the_advice_the_notes_their_readers_and_the_prep_they_build_on(tmp_path):
    train, test, sample = binary_frames(300, 60)
    summary = analyze_task(write_task(tmp_path / "t", train, test, sample, "## Evaluation\nAUC"))
    examples = labelled_examples(summary)
    job = dataclasses.replace(traditional_job(tmp_path, summary, time.time() + 120, improve=False),
                              context={"findings": FINDINGS, "advice": ADVICE, "notes": [NOTE], "examples": examples})
    script = [answer("PreprocessingCoder", fenced(NAMED_PREP)), answer("ModelingCoder", fenced(MODEL))]
    with ScriptedServer(script) as server:
        llm = _llm(server)
        agents = TrackAgents(PreprocessingCoder("openai", llm), ModelingCoder("openai", llm), Assembler(),
                             ErrorAnalyzer(), Debugger(), Evaluator(), llm=True)
        result = run_track(job, agents)
        prep_prompt, model_prompt = [r["body"]["messages"][1]["content"] for r in server.requests]
    assert result.status == "verified" and result.details["modules"]["model"]["source"] == "llm"
    for prompt in (prep_prompt, model_prompt):
        assert "age above 60 has twice the positive rate" in prompt and ADVICE in prompt and NOTE in prompt
        assert "# Labelled examples" in prompt and f'"label": {examples[0]["label"]}' in prompt
    # The prep coder knows which models read its matrix.
    assert "the traditional track's models: lightgbm, linear" in prep_prompt
    # The model coder sees the verified prep module and the names of the matrix's columns, in order.
    assert 'self.feature_names_ = self.numeric + [f"colour={c}"' in model_prompt
    assert '"feature_names": [\n  "x1",\n  "age",\n  "colour=' in model_prompt
    # How the framework runs the module: its calls, the enforced time limit, the codes, the installed libraries.
    from importlib import metadata

    assert f"One round calls fit_model {job.plans.train.pipeline_fits} times in one process" in model_prompt
    assert re.search(r"The round is killed after \d+ s \(every fit and prediction together", model_prompt)
    assert "hold codes: as the preprocessing module writes them" in model_prompt        # the LLM wrote the prep
    assert f"lightgbm {metadata.version('lightgbm')}" in model_prompt and "scikit-learn " in model_prompt


def test_the_guideline_sees_labelled_examples_with_their_text_and_what_the_run_can_use_for_text(tmp_path):
    from iml_ray.agents import guideline

    rows = 40
    train = pd.DataFrame({"id": range(rows), "review": ["a long review " * 60 + str(i) for i in range(rows)],
                          "stars": [i % 5 for i in range(rows)], "label": [i % 2 for i in range(rows)]})
    test = train.drop(columns="label").head(10)
    summary = analyze_task(write_task(tmp_path / "t", train, test, None, "Predict `label`. Evaluated on accuracy."))
    examples = labelled_examples(summary)
    assert len(examples) == 5 and set(examples[0]) >= {"label", "review", "stars"}
    assert examples[0]["review"] == train["review"][0][:300] + "…"                     # cut, not dropped
    options = run_options({"text": {"name": "all-MiniLM-L6-v2", "source": "local"}, "image": None})
    prompt = guideline.messages({}, {}, {}, "", {}, examples, options)[1]["content"]
    assert "none: every track runs on CPUs" in prompt
    assert "1 GPU(s) for the pretrained and custom_nn tracks" in guideline.messages({}, {}, {}, "", {}, examples,
                                                                                  run_options({}, 1.0))[1]["content"]
    assert "# Labelled examples" in prompt and '"label": 0' in prompt and "a long review a long review" in prompt
    assert "sentence embeddings from all-MiniLM-L6-v2 (local)" in prompt and "backbone features from none installed" in prompt
