"""The LLM's time: a ledger deadline and a per-call deadline stop requests, against the real scripted server."""
from __future__ import annotations

import time

import pytest

from iml_ray.errors import ConfigError
from iml_ray.llm.brain import Brain
from iml_ray.llm.client import LLMClient
from iml_ray.llm.errors import OutOfTime
from iml_ray.llm.ledger import Ledger
from iml_ray.llm.serving.scripted_server import ScriptedServer
from iml_ray.llm.settings import LLMSettings

ASK = [{"role": "user", "content": "Write prep.py."}]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "IML_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)


def test_no_request_starts_after_the_ledgers_deadline():
    with ScriptedServer([{"content": "ok", "repeat": 5}]) as server:
        ledger = Ledger()
        client = LLMClient(LLMSettings(base_url=server.url, timeout_s=5), ledger)
        assert client.chat("guideline", ASK).text == "ok"
        ledger.set_deadline(time.time() - 1, "in the plan phase")
        with pytest.raises(OutOfTime, match="in the plan phase"):
            client.chat("guideline", ASK)
        ledger.set_deadline(time.time() + 60)                        # the engine moves it on for the tracks
        assert client.chat("guideline", ASK).text == "ok"
        assert len(server.requests) == 2
    assert ledger.to_json()["out_of_time"] == 1 and ledger.down is None


def test_a_slow_answer_is_cut_at_the_calls_deadline_without_retries_or_giving_up_the_endpoint():
    with ScriptedServer([{"content": "late", "delay_s": 4.0}, {"content": "ok"}]) as server:
        ledger = Ledger()
        client = LLMClient(LLMSettings(base_url=server.url, timeout_s=30, max_retries=3, backoff_s=0.01), ledger)
        started = time.monotonic()
        with pytest.raises(OutOfTime, match="time was up"):
            client.chat("debugger", ASK, deadline=time.time() + 1.5)
        assert time.monotonic() - started < 3.5                      # the deadline, not the 30 s timeout
        assert len(server.requests) == 1                             # no retry
        assert ledger.down is None                                   # the endpoint is not given up on
        assert client.chat("debugger", ASK).text == "ok"


def test_a_brain_asks_until_the_deadline_of_its_thread():
    with ScriptedServer([{"content": "```json\n{}\n```", "repeat": 3}]) as server:
        brain = Brain("guideline", LLMSettings(base_url=server.url, timeout_s=5))
        with brain.until(time.time() - 1):
            with pytest.raises(OutOfTime):
                brain.ask(ASK, lambda text: text)
        with brain.until(time.time() + 60), brain.until(None):      # an inner None keeps the outer deadline
            assert brain._call.deadline is not None
            assert brain.ask(ASK, lambda text: text)
        assert getattr(brain._call, "deadline", None) is None
        assert len(server.requests) == 1


def test_llm_settings_name_the_agents_it_drives_and_check_the_local_server_options():
    settings = LLMSettings(model="local:/m.gguf", agents=["preprocessing_coder"], agent_models={"debugger": "gpt-4o"})
    assert settings.drives("preprocessing_coder") and not settings.drives("guideline")
    assert settings.local_models() == ["local:/m.gguf"] and not settings.uses_http()   # the debugger is not driven
    assert LLMSettings(model="local:/m.gguf", agent_models={"debugger": "gpt-4o"}).uses_http()
    for bad, why in (({"agents": ["planner"]}, "unknown llm agent"), ({"agent_models": {"coder": "x"}}, "unknown llm agent"),
                     ({"local_max_batch": 0}, "local_max_batch"), ({"local_gpus": -1}, "must be >= 0"),
                     ({"local_backend": "llama.cpp"}, "local_backend")):
        with pytest.raises(ConfigError, match=why):
            LLMSettings(**bad)
