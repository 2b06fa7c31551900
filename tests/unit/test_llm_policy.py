"""The agents under the llm policy, against the scripted chat-completions server (no Ray here)."""
from __future__ import annotations

import asyncio
import dataclasses
import json

import pandas as pd
import pytest
from helpers import binary_frames, write_task
from llm_scripts import BAD_PREP, GOOD_PREP, fenced

from iml_ray.agents import guideline, knowledge_retriever, modeling_coder, preprocessing_coder
from iml_ray.agents.debugger import Debugger
from iml_ray.agents.task_analyzer import TaskAnalyzer
from iml_ray.errors import TaskError
from iml_ray.llm.errors import BadAnswer
from iml_ray.llm.limiter import EndpointLimiter
from iml_ray.llm.plumbing import LLMPlumbing
from iml_ray.llm.serving.scripted_server import ScriptedServer
from iml_ray.llm.settings import LLMSettings
from iml_ray.plan.repairs import Diagnosis, Failure


def _llm(server, **extra):
    settings = LLMSettings(base_url=server.url, model="scripted", backoff_s=0.01, max_retries=1)
    return LLMPlumbing(settings, **extra)


def _two_candidate_targets(tmp_path):
    """train has two columns test lacks and there is no sample submission: the rules cannot pick the target."""
    train = pd.DataFrame({"a": range(40), "b": [i % 3 for i in range(40)], "price": [i * 1.5 for i in range(40)],
                          "rating": [i % 5 for i in range(40)]})
    test = pd.DataFrame({"a": range(10), "b": [i % 3 for i in range(10)]})
    return write_task(tmp_path / "two", train, test, None, "# Prices\n\nPredict the sale `price` of each item.\n")


def test_the_llm_names_the_target_the_rules_cannot_tell(tmp_path):
    task = _two_candidate_targets(tmp_path)
    with pytest.raises(TaskError, match="cannot tell which column is the target"):
        TaskAnalyzer().analyze(str(task))
    answer = {"target": "price", "id_column": None, "metric": "rmse", "problem_type": "regression",
              "why": "the description asks for the sale price"}
    with ScriptedServer([{"content": json.dumps(answer)}]) as server:
        summary = TaskAnalyzer("openai", _llm(server)).analyze(str(task))
        prompt = server.requests[0]["body"]["messages"][1]["content"]
    assert summary.target == "price" and summary.metric == "rmse" and summary.problem_type == "regression"
    assert summary.decisions["target"] == "llm TaskAnalyzer: the description asks for the sale price"
    assert "cannot tell which column is the target" in prompt and "Predict the sale `price`" in prompt


def test_an_llm_answer_that_contradicts_the_files_is_reasked_then_the_rules_error_stands(tmp_path):
    task = _two_candidate_targets(tmp_path)
    wrong = {"target": "cost", "id_column": None, "metric": "rmse", "problem_type": "regression"}
    with ScriptedServer([{"content": json.dumps(wrong), "repeat": 3}]) as server:
        with pytest.raises(TaskError, match="cannot tell which column is the target"):
            TaskAnalyzer("openai", _llm(server)).analyze(str(task))
        requests = server.requests
    assert len(requests) == 3
    assert "target 'cost' is not a column of train" in requests[1]["body"]["messages"][-1]["content"]


def test_strip_description_hides_the_task_text(tmp_path):
    from iml_ray.task.inference import STRIPPED_DESCRIPTION, analyze_task

    train, test, sample = binary_frames(60, 20)
    task = write_task(tmp_path / "t", train, test, sample, "## Evaluation\nSubmissions are scored on log loss.\n")
    assert analyze_task(task).metric == "logloss"
    stripped = analyze_task(task, description=STRIPPED_DESCRIPTION)
    assert stripped.description == STRIPPED_DESCRIPTION
    assert stripped.metric != "logloss" and stripped.decisions["metric"].startswith("default")


def _draft(tmp_path):
    from iml_ray.plan.guideline_rules import make_blueprint, make_contract
    from iml_ray.plan.knowledge import retrieve
    from iml_ray.task.inference import analyze_task
    from iml_ray.task.profiling import profile_task

    train, test, sample = binary_frames(120, 30)
    summary = analyze_task(write_task(tmp_path / "t", train, test, sample))
    profile = profile_task(summary)
    tracks = ("traditional", "custom_nn")
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1)
    return summary, blueprint, make_contract(summary, blueprint.prep)


def _parse(summary, blueprint, contract, answer):
    from iml_ray.plan.guideline_rules import make_contract

    return guideline.parse(json.dumps(answer), blueprint, contract, list(summary.feature_columns),
                           lambda prep: make_contract(summary, prep))


@pytest.mark.parametrize("change, complaint", [
    ({"blueprint": {"prep": {"missing_indicators": "no"}}}, "blueprint.prep.missing_indicators must be true or false"),
    ({"blueprint": {"prep": {"scaler": "robust"}}}, "blueprint.prep has no key 'scaler'"),
    ({"blueprint": {"eval": {"metric": "auc"}}}, "blueprint.eval must stay"),
    ({"blueprint": {"prep": {"numeric": ["x1", "height"]}}}, "prep names column(s) ['height']"),
    ({"blueprint": {"tracks": [{"track": "traditional", "models": ["svm"]}]}}, "models must be a non-empty subset"),
    ({"blueprint": {"tracks": [{"track": "traditional", "models": ["lightgbm", "lightgbm_log"]}]}},
     "lightgbm_log fits log1p of a regression target; this task has classes"),
    ({"blueprint": {"prep": {"column_transforms": {"colour": {"transform": "log1p", "why": "skewed"}}}}},
     "'colour' is not one of prep.numeric"),
    ({"blueprint": {"prep": {"column_transforms": {"x1": {"transform": "sqrt", "why": "skewed"}}}}},
     'prep.column_transforms.x1 must be {"transform": one of [\'log1p\']'),
    ({"blueprint": {"tracks": [{"track": "traditional", "prep_changes": {"scaler": "robust"}}]}},
     "prep_changes has no key(s) ['scaler']"),
])
def test_an_invalid_blueprint_is_refused_with_a_message_the_model_can_act_on(tmp_path, change, complaint):
    summary, blueprint, contract = _draft(tmp_path)
    with pytest.raises(BadAnswer) as caught:
        _parse(summary, blueprint, contract, {"blueprint": {}, "contract": {}, **change})
    assert complaint in str(caught.value)


def test_a_partial_blueprint_answer_is_merged_into_the_draft(tmp_path):
    summary, blueprint, contract = _draft(tmp_path)
    answer = {"blueprint": {"prep": {"max_categories": 50},
                            "tracks": [{"track": "traditional", "models": ["linear"]}]},
              "contract": {}, "why": "tiny data: a linear model only"}
    merged, merged_contract, why = _parse(summary, blueprint, contract, answer)
    assert merged.prep.max_categories == 50 and merged.prep.numeric == blueprint.prep.numeric
    assert [t.track for t in merged.tracks] == ["traditional"]          # custom_nn dropped by the answer
    assert merged.tracks[0].models == ("linear",)
    assert merged.tracks[0].lightgbm == blueprint.track("traditional").lightgbm   # the rest of the track kept
    assert merged_contract == contract and why == "tiny data: a linear model only"


def test_whether_a_track_waits_for_the_others_cpus_stays_the_drafts(tmp_path):
    """It follows from the cluster and the encoders' measured cost, which the model does not see."""
    summary, blueprint, contract = _draft(tmp_path)
    draft = dataclasses.replace(blueprint, tracks=(blueprint.tracks[0].replace(deferred_encode_s=40.0),
                                                   *blueprint.tracks[1:]))
    answer = {"blueprint": {"tracks": [{"track": "traditional", "deferred_encode_s": 0.0, "models": ["linear"]},
                                       {"track": "custom_nn", "deferred_encode_s": 12.0}]}, "contract": {}}
    merged, _, _ = _parse(summary, draft, contract, answer)
    assert merged.track("traditional").models == ("linear",)                 # the rest of the answer is taken
    assert [t.deferred_encode_s for t in merged.tracks] == [40.0, 0.0]


def test_a_partial_answer_merges_as_the_prompt_documents_it(tmp_path):
    """The prompt's example, on a draft of two tracks: a dropped column leaves its role, a log1p transform with its
    reason, a track changed by name and one kept as drafted, the changed track's reasons rewritten; a changed fact
    of the contract is re-derived from the data, not re-asked."""
    summary, blueprint, contract = _draft(tmp_path)
    prompt = "\n".join(m["content"] for m in guideline.messages({}, {}, {}, "", {"blueprint": blueprint.to_json()}))
    assert '"tracks": [{"track": "traditional", "models": ["lightgbm", "catboost", "linear"]}, {"track": "custom_nn"}]' in prompt
    assert "a drafted track left out is not run" in prompt and "the contract follows it" in prompt
    assert {t.track for t in blueprint.tracks} == {"traditional", "custom_nn"}
    answer = {"blueprint": {"prep": {"dropped": {"age": "an identifier in disguise"},
                                     "column_transforms": {"x1": {"transform": "log1p", "why": "x1 is skewed"}}},
                            "tracks": [{"track": "traditional", "models": ["lightgbm", "catboost", "linear"]},
                                       {"track": "custom_nn"}]},
              "contract": {"n_test_rows": 5}, "why": "drop age, log-scale x1, add CatBoost"}
    merged, merged_contract, why = _parse(summary, blueprint, contract, answer)
    assert "age" not in merged.prep.used_columns and merged.prep.dropped["age"] == "an identifier in disguise"
    assert merged.prep.column_transforms == {"x1": {"transform": "log1p", "why": "x1 is skewed"}}
    traditional, network = merged.tracks
    assert traditional.models == ("lightgbm", "catboost", "linear")
    assert traditional.lightgbm == blueprint.track("traditional").lightgbm
    assert traditional.reasons[:2] == ("models: lightgbm, catboost, linear (traditional template)",
                                       "changed by the GuidelineAgent (llm): models")
    assert network == blueprint.track("custom_nn")                     # given by name only: as drafted, reasons too
    assert merged_contract.n_test_rows == contract.n_test_rows == 30
    assert "age" not in merged_contract.input_columns and why == "drop age, log-scale x1, add CatBoost"


def test_a_module_without_its_entry_points_is_refused():
    with pytest.raises(BadAnswer, match="does not define fit_model"):
        modeling_coder.parse(fenced("def predict_model(model, X):\n    return X\n"))
    with pytest.raises(BadAnswer, match="no Python code block that parses"):
        preprocessing_coder.parse("```python\ndef broken(:\n```")
    assert "class Preprocessor" in preprocessing_coder.parse(fenced(GOOD_PREP))


def test_unknown_cards_are_refused():
    with pytest.raises(BadAnswer, match="unknown card id"):
        knowledge_retriever.parse('{"cards": ["made-up"], "advice": ""}', ["tabular-basics"])
    assert knowledge_retriever.parse('{"cards": ["a", "a"], "advice": "x"}', ["a"]) == (["a"], "x")


def test_llm_rewrites_are_capped_per_competition():
    failure = Failure("prep_probe", "error", "prep failed: KeyError: 'colour_code'", "KeyError: 'colour_code'",
                      failing_section="prep")
    diagnosis = Diagnosis("prep", "unknown", "a missing column", by="llm")
    with ScriptedServer([{"content": fenced(GOOD_PREP), "repeat": 5}]) as server:
        debugger = Debugger("openai", _llm(server, max_rewrites=1))
        code, _ = debugger.rewrite("prep", BAD_PREP, failure, diagnosis, _contract(), "- x1: numeric", "prep.py")
        again, why = debugger.rewrite("prep", BAD_PREP, failure, diagnosis, _contract(), "- x1: numeric", "prep.py")
        sent = len(server.requests)
    assert "class Preprocessor" in code and 'frame["colour"]' in code
    assert again is None and "1 LLM rewrites are spent" in why
    assert sent == 1
    assert [e["what"] for e in debugger.events()] == ["llm", "rules"]


def _contract():
    from iml_ray.blueprint import InterfaceContract

    return InterfaceContract(input_columns=("x1", "colour", "age"), n_train_rows=100, n_test_rows=30, classes=(0, 1))


def test_the_endpoint_limiter_bounds_concurrent_calls():
    limiter = EndpointLimiter(concurrency=2)
    running = {"now": 0, "peak": 0}

    async def call():
        await limiter.acquire()
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        await asyncio.sleep(0.01)
        running["now"] -= 1
        await limiter.release()

    async def many():
        await asyncio.gather(*(call() for _ in range(10)))
        return await limiter.stats()

    stats = asyncio.run(many())
    assert running["peak"] == 2 and stats["peak"] == 2 and stats["served"] == 10 and stats["in_use"] == 0


def test_a_slot_held_past_its_lease_is_taken_back():
    limiter = EndpointLimiter(concurrency=1, lease_s=0.05)

    async def scenario():
        await limiter.acquire()                   # a client that dies without releasing
        await asyncio.wait_for(limiter.acquire(), timeout=3.0)
        return await limiter.stats()

    assert asyncio.run(scenario())["served"] == 2


def test_an_endpoint_given_up_on_is_not_retried_by_every_later_call():
    from iml_ray.llm.client import LLMClient
    from iml_ray.llm.errors import LLMUnavailable
    from iml_ray.llm.ledger import Ledger

    ledger = Ledger()
    with ScriptedServer([], default={"status": 500}) as server:
        client = LLMClient(LLMSettings(base_url=server.url, backoff_s=0.01, max_retries=2), ledger)
        with pytest.raises(LLMUnavailable, match="HTTP 500"):
            client.chat("guideline", [{"role": "user", "content": "plan"}])
        assert len(server.requests) == 3
        with pytest.raises(LLMUnavailable, match="given up on earlier"):
            client.chat("debugger", [{"role": "user", "content": "fix"}])
        assert len(server.requests) == 3
    assert ledger.to_json()["down"].startswith("LLM endpoint 127.0.0.1")


def test_an_llm_naming_one_of_several_targets_keeps_the_task_multi_label(tmp_path):
    """The files show three label columns; an answer naming one of them (and its plain metric) changes nothing."""
    rng = pd.Series(range(300))
    frame = pd.DataFrame({"id": rng, "x": rng % 7, "a": (rng % 2), "b": (rng % 3 == 0).astype(int),
                          "c": (rng % 5 == 0).astype(int)})
    train, test = frame.iloc[:240], frame.iloc[240:]
    task = write_task(tmp_path / "labels", train, test[["id", "x"]], test[["id"]].assign(a=0.5, b=0.5, c=0.5),
                      "Scored on the mean column-wise ROC AUC.\n")
    answer = {"target": "b", "id_column": "id", "metric": "auc", "problem_type": "binary", "why": "b is a label"}
    with ScriptedServer([{"content": json.dumps(answer)}]) as server:
        summary = TaskAnalyzer("openai", _llm(server)).analyze(str(task))
    assert summary.all_targets == ("a", "b", "c") and summary.metric == "mean_auc"
