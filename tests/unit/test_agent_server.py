"""One agent serving many competitions (the plain object behind each agent's Ray actor; no Ray here)."""
from __future__ import annotations

import pytest
from helpers import binary_frames, write_task
from llm_scripts import BAD_PREP, GOOD_PREP, fenced

from iml_ray.agents.server import HEAVY_BYTES, AgentContext, AgentServer, data_is_large
from iml_ray.config import RunConfig
from iml_ray.errors import ConfigError
from iml_ray.llm.ledger import Ledger
from iml_ray.llm.plumbing import LLMPlumbing
from iml_ray.llm.serving.scripted_server import ScriptedServer
from iml_ray.llm.settings import LLMSettings
from iml_ray.plan.repairs import Diagnosis, Failure
from iml_ray.run.agent_pool import PoolSettings, pool_settings


def _contract():
    from iml_ray.blueprint import InterfaceContract

    return InterfaceContract(input_columns=("x1", "colour"), n_train_rows=100, n_test_rows=30, classes=(0, 1))


def test_one_agent_serves_two_competitions_each_with_its_own_policy_and_counts(tmp_path):
    train, test, sample = binary_frames(120, 30)
    task = write_task(tmp_path / "t", train, test, sample)
    analyzer = AgentServer("task_analyzer")
    first = analyzer.call(AgentContext("runs/a"), "analyze", str(task))
    second = analyzer.call(AgentContext("runs/b"), "analyze", str(task))
    analyzer.call(AgentContext("runs/b"), "analyze", str(task))

    assert first.target == second.target == "label" and first.n_train == 120
    stats = analyzer.stats("runs/b")
    assert stats["calls"] == 3 and stats["competitions"] == 2 and stats["calls_for_this_competition"] == 2
    assert analyzer.stats("runs/a")["calls_for_this_competition"] == 1
    with pytest.raises(AttributeError):
        analyzer.call(AgentContext("runs/a"), "_with_llm")
    with pytest.raises(ValueError, match="unknown agent"):
        AgentServer("oracle")


def test_what_lasts_over_a_competitions_calls_lives_in_its_ledger_not_in_the_agent():
    """The Debugger's cap on rewrites and the LLM events hold across calls, each of which builds the agent anew;
    another competition's ledger starts from zero."""
    failure = Failure("prep_probe", "error", "prep failed: KeyError: 'colour_code'", "KeyError: 'colour_code'",
                      failing_section="prep")
    diagnosis = Diagnosis("prep", "unknown", "a missing column", by="llm")
    debugger = AgentServer("debugger")
    with ScriptedServer([{"content": fenced(GOOD_PREP), "repeat": 5}]) as server:
        settings = LLMSettings(base_url=server.url, model="scripted", backoff_s=0.01, max_retries=1)
        mine, other = Ledger(), Ledger()
        a = AgentContext("runs/a", "openai", LLMPlumbing(settings, max_rewrites=1, ledger=mine))
        b = AgentContext("runs/b", "openai", LLMPlumbing(settings, max_rewrites=1, ledger=other))
        args = ("prep", BAD_PREP, failure, diagnosis, _contract(), "- x1: numeric", "prep.py")
        code, _ = debugger.call(a, "rewrite", *args)
        again, why = debugger.call(a, "rewrite", *args)
        theirs, _ = debugger.call(b, "rewrite", *args)
        sent = len(server.requests)

    assert "class Preprocessor" in code and "class Preprocessor" in theirs
    assert again is None and "1 LLM rewrites are spent" in why
    assert sent == 2
    assert [e["what"] for e in mine.events()] == ["llm", "rules"]
    assert [e["what"] for e in other.events()] == ["llm"]


def test_heavy_calls_go_to_a_task_only_for_large_data(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    (small / "train.csv").write_text("a,b\n1,2\n")
    assert not data_is_large(str(small))
    big = tmp_path / "big"
    (big / "images").mkdir(parents=True)
    with open(big / "train.csv", "wb") as handle:
        handle.truncate(HEAVY_BYTES + 1)          # sparse: no disk used
    assert data_is_large(str(big))
    many = tmp_path / "many"
    (many / "train" / "cat").mkdir(parents=True)
    for i in range(2001):
        (many / "train" / "cat" / f"{i}.png").touch()
    assert data_is_large(str(many))

    class Counting(AgentServer):
        heavy = 0

        def _heavy(self, context, method, args, kwargs):
            Counting.heavy += 1
            return "ran as a task"

    profiler = Counting("task_analyzer")
    assert profiler.call(AgentContext("r"), "analyze", str(big)) == "ran as a task"
    train, test, sample = binary_frames(60, 20)
    task = write_task(tmp_path / "t", train, test, sample)
    assert profiler.call(AgentContext("r"), "analyze", str(task)).n_train == 60 and Counting.heavy == 1


def test_the_agents_section_is_checked_and_names_the_pool():
    base = pool_settings([RunConfig()])
    assert base == PoolSettings() and base.count("modeling_coder") == 1
    two = pool_settings([RunConfig(agents={"replicas": {"modeling_coder": 2}, "keep": True})])
    assert two.count("modeling_coder") == 2 and two.keep
    # A changed setting is another pool (other actor names): a stale actor is never reused.
    assert two.key() != base.key() and pool_settings([RunConfig(agents={"max_restarts": 0})]).key() != base.key()
    for bad, message in (({"replica": {}}, "unknown agents setting"), ({"replicas": {"oracle": 2}}, "agent names"),
                         ({"replicas": {"debugger": 0}}, "at least 1"), ({"max_restarts": "x"}, "max_restarts")):
        with pytest.raises(ConfigError, match=message):
            pool_settings([RunConfig(agents=bad)])


def test_keep_agents_and_address_flags(monkeypatch):
    from iml_ray.cli import _config, build_parser

    # setenv, not delenv: a variable that was absent is only restored (removed) after the test if monkeypatch
    # recorded it, and the flag sets it for the whole process.
    monkeypatch.setenv("RAY_ADDRESS", "unset-by-the-test")
    args = build_parser().parse_args(["run", "task", "--keep-agents", "--address", "127.0.0.1:6379"])
    config = _config(args)
    import os

    assert config.agents == {"keep": True} and pool_settings([config]).keep
    assert os.environ["RAY_ADDRESS"] == "127.0.0.1:6379"
    assert _config(build_parser().parse_args(["run", "task"])).agents == {}


def test_an_agent_methods_own_context_keyword_reaches_it(monkeypatch):
    """The coders take `context=` (what the plan learned); the call's own context must not collide with it."""
    import iml_ray.agents.server as server_module

    seen = {}

    def serve(agent, context, method, args, kwargs):
        seen.update(agent=agent, competition=context.competition, method=method, args=args, kwargs=kwargs)
        return "ok"

    monkeypatch.setattr(server_module, "serve", serve)
    assert AgentServer("modeling_coder").call(AgentContext("runs/a"), "draft", 1, context={"advice": "x"}) == "ok"
    assert seen == {"agent": "modeling_coder", "competition": "runs/a", "method": "draft", "args": (1,),
                    "kwargs": {"context": {"advice": "x"}}}
