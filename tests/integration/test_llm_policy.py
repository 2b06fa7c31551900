"""The llm policy end to end against the project's scripted chat-completions server on 127.0.0.1.

`iml run --llm openai` from the command line (its own Ray cluster), then the
engine on this module's cluster for the fallback scenarios.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import binary_frames, local_ray, write_task
from llm_scripts import failing_script, improving_script, repair_script

from iml_ray.llm.serving.scripted_server import ScriptedServer
from iml_ray.llm.settings import LLMSettings

pytestmark = pytest.mark.slow

SECRET = "sk-test-9f8e7d6c5b4a-never-log-me"
IML = [sys.executable, "-m", "iml_ray.cli"]


@pytest.fixture(scope="module")
def ray_cluster():
    yield from local_ray(num_cpus=2)


def _task(tmp_path):
    train, test, sample = binary_frames(300, 80)
    return write_task(tmp_path / "toy", train, test, sample, "# Toy\n\nPredict `label`. Evaluated on accuracy.\n")


def _cards(task):
    from iml_ray.plan.knowledge import retrieve
    from iml_ray.task.inference import analyze_task
    from iml_ray.task.profiling import profile_task

    summary = analyze_task(task)
    return retrieve(summary, profile_task(summary), ("traditional",)).card_ids


def _cli_env(server, cache):
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OPENAI_BASE_URL=server.url, OPENAI_API_KEY=SECRET,
               IML_LLM_MODEL="scripted-model", IML_LLM_CACHE=str(cache))
    env.pop("RAY_ADDRESS", None)
    return env


def _agent(request: dict) -> str:
    system = request["body"]["messages"][0]["content"]
    return system.split(" of iml-ray")[0].replace("You are the ", "")


def test_cli_run_with_the_llm_repairs_the_blamed_module_and_a_rerun_is_free(tmp_path):
    task = _task(tmp_path)
    out = tmp_path / "out"
    with ScriptedServer(repair_script(str(task / "train.csv"), _cards(task))) as server:
        env = _cli_env(server, tmp_path / "cache")
        cmd = [*IML, "run", str(task), "--out", str(out), "--time-budget", "150", "--tracks", "traditional",
               "--llm", "openai"]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
        assert result.returncode == 0, result.stderr[-3000:]
        first = list(server.requests)

        report = json.loads((out / "report.json").read_text())
        row = next(r for r in report["leaderboard"] if r["track"] == "traditional")
        assert row["status"] == "verified"
        # The LLM's prep module failed the contract check; the LLM blamed prep and its Debugger fixed that module only.
        assert row["modules"]["prep"] == {"source": "llm", "llm_rewrites": 1, "rounds_blamed": 1}
        assert row["modules"]["model"]["source"] == "llm" and row["modules"]["model"]["llm_rewrites"] == 0
        failed = row["rounds"][0]
        assert failed["blamed"] == "prep" and failed["module"] == "prep" and "colour_code" in failed["failure"]
        assert "(llm)" in failed["diagnosis"]
        diff = (out / "candidates" / "traditional" / "round_1" / "repair.diff").read_text()
        assert "-" in diff and 'frame["colour_code"]' in diff and "b/prep.py" in diff
        assert "written by the LLM" in (out / "pipeline.py").read_text()
        # The model module was asked for only after the repaired prep passed the contract check.
        order = [_agent(r) for r in first]
        assert order.index("ModelingCoder") > order.index("Debugger")
        # An invalid blueprint is re-asked with the schema error and the second answer is the one used.
        guideline = [r for r in first if _agent(r) == "GuidelineAgent"]
        assert len(guideline) == 2
        assert "must be true or false" in guideline[1]["body"]["messages"][-1]["content"]
        blueprint = json.loads((out / "plan" / "blueprint.json").read_text())
        assert blueprint["prep"]["missing_indicators"] is False
        # Tokens and cost per agent, counted from the server's usage fields.
        llm = report["llm"]
        served = sum(r["usage"]["total_tokens"] for r in first)
        assert llm["tokens"] == served > 0
        assert set(llm["agents"]) >= {"task_analyzer", "guideline", "preprocessing_coder", "debugger", "modeling_coder"}
        assert llm["totals"]["requests"] == len(first)
        assert f"llm:        {served} tokens, $0.0000, {len(first)} requests, 0 from the cache" in result.stdout
        # The profiling code the LLM wrote ran in the sandbox, without the key.
        profile = json.loads((out / "plan" / "profile.json").read_text())
        assert profile["findings"]["key_seen"] == "absent"
        assert "duplicated train rows" in profile["findings"]["duplicates"]
        # The key reached the endpoint, and nowhere else.
        assert all(r["headers"].get("authorization") == f"Bearer {SECRET}" for r in first)
        assert SECRET not in result.stdout + result.stderr
        for path in out.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path

        # The same command again: every answer comes from the cache, not one HTTP request.
        again = subprocess.run([*cmd, "--force"], capture_output=True, text=True, env=env, timeout=400)
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(server.requests) == len(first)
        report = json.loads((out / "report.json").read_text())
        assert report["llm"]["totals"]["requests"] == 0
        assert report["llm"]["totals"]["cache_hits"] == len(first)
        assert report["status"] == "ok"

        # Strict replay answers from the cache alone; with an empty cache it stops at the first call, with
        # one clear line, before writing anything.
        replayed = subprocess.run([*cmd[:6], str(tmp_path / "replayed"), *cmd[7:], "--llm-replay"], capture_output=True,
                                  text=True, env=env, timeout=400)
        assert replayed.returncode == 0, replayed.stderr[-3000:]
        empty = subprocess.run([*cmd[:6], str(tmp_path / "never"), *cmd[7:], "--llm-replay"], capture_output=True,
                               text=True, env={**env, "IML_LLM_CACHE": str(tmp_path / "empty")}, timeout=400)
        assert empty.returncode == 2, empty.stderr[-3000:]
        assert "error: --llm-replay: replay mode: no cached LLM response" in empty.stderr
        assert "Traceback" not in empty.stderr and not (tmp_path / "never").exists()
        assert len(server.requests) == len(first)


def test_llm_that_keeps_failing_ends_in_the_rules_module_and_a_valid_submission(tmp_path, ray_cluster, monkeypatch):
    from iml_ray.config import RunConfig
    from iml_ray.run.engine import run_competition
    from iml_ray.safety.contract import check_submission

    task = _task(tmp_path)
    script, default = failing_script()
    with ScriptedServer(script, default=default) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        config = RunConfig(time_budget_s=240, tracks=("traditional",), policy="openai", max_repair_rounds=2,
                           llm={"cache_dir": str(tmp_path / "cache"), "model": "scripted-model", "backoff_s": 0.01})
        result = run_competition(task, tmp_path / "out", config)
        sent = len(server.requests)
        endpoint = LLMSettings(base_url=server.url).endpoint_id()
    assert result.status == "ok"
    assert check_submission(result.submission, result.summary) == []
    # Every HTTP attempt went through the endpoint's one limiter, a named actor any competition on the cluster finds.
    import ray

    limiter = ray.get_actor(f"llm-limiter-{endpoint}", namespace="iml-ray")
    assert ray.get(limiter.stats.remote())["served"] == sent == result.report["llm"]["limiter"]["served"]
    row = next(r for r in result.report["leaderboard"] if r["track"] == "traditional")
    prep = row["modules"]["prep"]
    assert prep["llm_rewrites"] == 2 and prep["source"].startswith("rules (fallback")
    # Two rewrites by the LLM, then the rules module in the slot: the fourth round verifies.
    assert [r["module"] for r in row["rounds"][:3]] == ["prep", "prep", "prep"]
    assert "replaced by the rules module" in row["rounds"][2]["change"]
    assert row["rounds"][-1]["status"] == "ok"
    # The agents whose answers never parsed fell back to rules, and the report says so.
    fallbacks = {e["agent"] for e in result.report["llm"]["events"] if e["what"] == "rules"}
    assert {"guideline", "knowledge_retriever"} <= fallbacks


def test_the_llm_improves_its_weak_drafts_on_two_tracks_within_the_budget(tmp_path):
    """draft → verify → improve → verify on two tracks through `iml run --llm openai`: each track ends better than
    its first draft, and report.json shows every round with its author and score."""
    task = _task(tmp_path)
    out = tmp_path / "out"
    with ScriptedServer(improving_script(str(task / "train.csv"), _cards(task)),
                        default={"content": "I would rather not change it."}) as server:
        cmd = [*IML, "run", str(task), "--out", str(out), "--time-budget", "150", "--tracks", "traditional,custom_nn",
               "--llm", "openai"]
        result = subprocess.run(cmd, capture_output=True, text=True, env=_cli_env(server, tmp_path / "cache"), timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["timings_s"]["total"] <= 150 * 1.1
    for track in ("traditional", "custom_nn"):
        row = next(r for r in report["leaderboard"] if r["track"] == track)
        assert row["status"] == "verified" and row["modules"]["model"]["source"] == "llm", row
        first, *later = row["rounds"]
        assert first["step"] is None and first["status"] == "ok" and first["author"] == "llm"
        improved = [r for r in later if r["step"] == "llm_improve" and r["kept"]]
        assert improved and improved[0]["author"] == "llm" and improved[0]["score"] > first["score"] + 0.1, row["rounds"]
        assert row["valid_score"] == max(r["score"] for r in row["rounds"] if r["score"] is not None) > first["score"]
    # The traditional track's better module declares SEARCH_SPACE: the framework searched it with Ray Tune.
    row = next(r for r in report["leaderboard"] if r["track"] == "traditional")
    [search] = [r for r in row["rounds"] if r["step"] == "llm_search"]
    info = json.loads((out / "candidates" / "traditional" / f"round_{search['round']}" / "output" / "run_info.json").read_text())
    assert search["status"] == "ok" and info["validation"]["tuning"]["completed"] >= 1, info["validation"].get("tuning")


def test_cost_cap_reached_mid_run_continues_on_rules(tmp_path, ray_cluster, monkeypatch):
    from iml_ray.config import RunConfig
    from iml_ray.run.engine import run_competition

    task = _task(tmp_path)
    with ScriptedServer(repair_script(str(task / "train.csv"), _cards(task))) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        # Prices make the first answer cost more than the cap: every later call is refused before it is sent.
        config = RunConfig(time_budget_s=180, tracks=("traditional",), policy="openai",
                           llm={"cache_dir": str(tmp_path / "cache"), "model": "priced", "max_cost_usd": 0.001,
                                "prices": {"priced": [10_000.0, 10_000.0]}})
        result = run_competition(task, tmp_path / "out", config)
        sent = len(server.requests)
    assert result.status == "ok"
    llm = result.report["llm"]
    assert sent == 1 and llm["totals"]["requests"] == 1
    assert llm["exhausted"] is True and llm["cost_usd"] > 0.001
    row = next(r for r in result.report["leaderboard"] if r["track"] == "traditional")
    assert row["status"] == "verified"
    assert row["modules"]["prep"]["source"] == "rules" and row["modules"]["model"]["source"] == "rules"
    assert any("BudgetExceeded" in e["detail"] for e in llm["events"] if e["what"] == "rules")
