"""The LLM client against a real local endpoint (the scripted server): no mocks, no Ray."""
from __future__ import annotations

import json
import logging
import time

import pytest

from iml_ray.errors import ConfigError
from iml_ray.llm.cache import ResponseCache
from iml_ray.llm.client import LLMClient
from iml_ray.llm.errors import BadAnswer, BudgetExceeded, CacheMiss, LLMUnavailable
from iml_ray.llm.extract import clip_middle, estimate_tokens, extract_code, extract_json
from iml_ray.llm.ledger import Ledger
from iml_ray.llm.serving.scripted_server import ScriptedServer
from iml_ray.llm.settings import LLMSettings

ASK = [{"role": "system", "content": "You write Python."}, {"role": "user", "content": "Train a model on train.csv."}]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "IML_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)


def client_for(server: ScriptedServer, **settings) -> LLMClient:
    settings = {"base_url": server.url, "backoff_s": 0.01, "timeout_s": 5.0, **settings}
    return LLMClient(LLMSettings(**settings))


def test_plain_reply_is_counted_and_priced():
    with ScriptedServer([{"content": "print('hello')"}]) as server:
        client = client_for(server, prices={"gpt-4o-mini": [1000.0, 2000.0]})
        reply = client.chat("modeling_coder", ASK)
        received = server.requests
    assert reply.text == "print('hello')"
    assert reply.cached is False
    prompt_tokens = estimate_tokens("\n".join(m["content"] for m in ASK))
    assert (reply.prompt_tokens, reply.completion_tokens) == (prompt_tokens, estimate_tokens("print('hello')"))
    assert reply.cost_usd == pytest.approx((reply.prompt_tokens * 1000 + reply.completion_tokens * 2000) / 1e6)
    totals = client.ledger.totals()
    assert totals["total_tokens"] == reply.prompt_tokens + reply.completion_tokens
    assert totals["requests"] == 1 and totals["cost_usd"] == pytest.approx(reply.cost_usd)
    assert client.ledger.by_agent()["modeling_coder"]["requests"] == 1
    assert len(received) == 1 and received[0]["body"]["model"] == "gpt-4o-mini"


def test_rate_limit_with_retry_after_is_retried():
    with ScriptedServer([{"status": 429, "headers": {"Retry-After": "0"}}, {"content": "ok"}]) as server:
        started = time.monotonic()
        reply = client_for(server, backoff_s=5.0).chat("task_analyzer", ASK)
        assert time.monotonic() - started < 2.5      # Retry-After: 0 wins over the 5 s backoff
        assert reply.text == "ok"
        assert [r["answered_with"] for r in server.requests] == [0, 1]


def test_server_errors_are_retried_then_give_up():
    with ScriptedServer([{"status": 500}, {"status": 500}, {"content": "third time"}]) as server:
        assert client_for(server).chat("task_analyzer", ASK).text == "third time"
        assert len(server.requests) == 3

    with ScriptedServer([{"status": 500, "repeat": 10}]) as server:
        with pytest.raises(LLMUnavailable) as failure:
            client_for(server, max_retries=2).chat("task_analyzer", ASK)
        assert len(server.requests) == 3
    assert "HTTP 500" in str(failure.value) and "127.0.0.1" in str(failure.value)


def test_client_error_is_not_retried():
    with ScriptedServer([{"status": 404, "message": "model 'nope' not found"}, {"content": "never"}]) as server:
        with pytest.raises(LLMUnavailable, match="model 'nope' not found"):
            client_for(server).chat("task_analyzer", ASK)
        assert len(server.requests) == 1


def test_slow_reply_times_out_and_is_retried():
    with ScriptedServer([{"delay_s": 2.0, "content": "too late"}, {"content": "in time"}]) as server:
        started = time.monotonic()
        reply = client_for(server, timeout_s=0.5).chat("task_analyzer", ASK)
        assert reply.text == "in time"
        assert time.monotonic() - started < 1.9      # it did not wait for the slow reply
        assert len(server.requests) == 2

    with ScriptedServer([{"delay_s": 2.0, "content": "too late"}]) as server:
        with pytest.raises(LLMUnavailable, match="timed out after 0.5 s"):
            client_for(server, timeout_s=0.5, max_retries=0).chat("task_analyzer", ASK)


def test_identical_chat_is_answered_from_the_cache(tmp_path):
    with ScriptedServer([{"content": "answer"}]) as server:
        client = client_for(server, cache_dir=str(tmp_path / "cache"))
        first = client.chat("task_analyzer", ASK)
        second = client.chat("task_analyzer", ASK)
        assert len(server.requests) == 1
    assert second.cached and second.text == first.text and second.cost_usd == 0.0
    totals = client.ledger.totals()
    assert totals["cache_hits"] == 1 and totals["requests"] == 1
    assert totals["total_tokens"] == first.prompt_tokens + first.completion_tokens   # the hit spent nothing


def test_replay_mode_never_calls_the_endpoint(tmp_path):
    with ScriptedServer([{"content": "answer"}]) as server:
        client = client_for(server, cache_dir=str(tmp_path / "empty"), replay=True)
        with pytest.raises(CacheMiss):
            client.chat("task_analyzer", ASK)
        assert server.requests == []


def test_corrupt_cache_entry_is_a_miss(tmp_path):
    cache = ResponseCache(tmp_path)
    key = cache.key("m", ASK, {"temperature": 0})
    cache.put(key, {"text": "x"})
    assert cache.get(key) == {"text": "x"}
    cache.path(key).write_text("{not json")
    assert cache.get(key) is None


def test_token_cap_stops_the_next_call_before_any_request():
    with ScriptedServer([{"content": "a long enough answer"}, {"content": "never sent"}]) as server:
        client = client_for(server, max_tokens=5)
        client.chat("task_analyzer", ASK)
        with pytest.raises(BudgetExceeded, match="LLM budget reached"):
            client.chat("task_analyzer", ASK)
        assert len(server.requests) == 1
    assert client.ledger.to_json()["exhausted"] is True


def test_api_key_is_sent_but_never_logged_or_raised(monkeypatch, caplog):
    secret = "local-gateway-secret-5f3a9c"       # not sk-shaped: the literal key itself must be scrubbed
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    script = [{"status": 500, "message": f"bad key {secret}"},
              {"status": 401, "message": f"Incorrect API key provided: {secret}"}]
    caplog.set_level(logging.DEBUG)
    with ScriptedServer(script) as server:
        with pytest.raises(LLMUnavailable) as failure:
            client_for(server).chat("task_analyzer", ASK)
        received = server.requests
    assert all(r["headers"].get("authorization") == f"Bearer {secret}" for r in received)
    assert "401" in str(failure.value)
    assert secret not in str(failure.value) and failure.value.__context__ is None
    for record in caplog.records:
        assert secret not in record.getMessage()


def test_settings_from_env_and_overrides():
    env = {"OPENAI_BASE_URL": "http://user:pw@llm.local:8000/v1", "IML_LLM_MODEL": "qwen"}
    settings = LLMSettings.from_env({"model": "llama", "max_tokens": None}, environ=env)
    assert settings.base_url == env["OPENAI_BASE_URL"] and settings.model == "llama"
    assert settings.model_for("modeling_coder") == "llama"
    assert "pw" not in json.dumps(settings.to_json())
    assert LLMSettings.from_json({**settings.to_json(), "base_url": settings.base_url}) == settings
    with pytest.raises(ConfigError):
        LLMSettings.from_env({"modle": "x"}, environ={})
    assert settings.endpoint_id() == LLMSettings(base_url=env["OPENAI_BASE_URL"] + "/").endpoint_id()


def test_ledger_merge_sums_competitions():
    first, second = Ledger(max_tokens=100), Ledger(max_tokens=50)
    first.record("a", "m", 10, 5, 0.1, cached=False)
    second.record("a", "m", 1, 1, 0.0, cached=True)
    second.record("b", "m", 2, 3, 0.2, cached=False)
    merged = Ledger.merge([first.to_json(), second.to_json()])
    assert merged["totals"]["total_tokens"] == 20 and merged["totals"]["cache_hits"] == 1
    assert merged["agents"]["a"]["requests"] == 1 and merged["caps"]["max_tokens"] == 150


def test_extract_code_takes_the_longest_block_that_parses():
    answer = ("Here is a helper:\n```python\nx = 1\n```\nand the module:\n```python\nimport os\n\ndef main():\n"
              "    return os.getcwd()\n```\nand a broken one:\n```python\ndef broken(:\n    pass\n```")
    assert extract_code(answer).startswith("import os")
    assert extract_code("import sys\nprint(sys.argv)\n") == "import sys\nprint(sys.argv)\n"
    with pytest.raises(BadAnswer, match=r"line 1: .*```python block"):
        extract_code("```python\ndef broken(:\n```")
    with pytest.raises(BadAnswer):
        extract_code("Sorry, I can't help with that.")


def test_extract_json_from_fences_and_chatter():
    assert extract_json('```json\n{"model": "lgbm", "n": 3}\n```') == {"model": "lgbm", "n": 3}
    assert extract_json('Sure! {"note": "a } in a string \\" ok", "k": {"x": 1}} Hope this helps') == \
        {"note": 'a } in a string " ok', "k": {"x": 1}}
    with pytest.raises(BadAnswer, match="JSON"):
        extract_json('{"model": "lgbm",}')
    with pytest.raises(BadAnswer, match="cut off"):
        extract_json('{"model": "lgbm", "params": {')


def test_clip_middle_keeps_the_error_at_the_end():
    traceback = "Traceback (most recent call last):\n" + "".join(f"  frame {i}\n" for i in range(2000)) + \
        "ValueError: could not convert string to float: 'abc'"
    clipped = clip_middle(traceback, 200)
    assert clipped.startswith("Traceback")
    assert clipped.endswith("ValueError: could not convert string to float: 'abc'")
    assert "characters cut" in clipped and estimate_tokens(clipped) <= 200
    assert clip_middle("short", 200) == "short"


def test_scripted_server_routes_by_content_and_repeats():
    script = [{"when": "traceback", "content": "fix", "repeat": 2}, {"content": "plan"}]
    with ScriptedServer(script) as server:
        client = client_for(server, max_retries=0)
        ask = lambda text: client.chat("a", [{"role": "user", "content": text}]).text  # noqa: E731
        assert [ask("make a plan"), ask("a traceback"), ask("another traceback")] == ["plan", "fix", "fix"]
        with pytest.raises(LLMUnavailable, match="script exhausted"):
            ask("a third traceback")
        assert [r["answered_with"] for r in server.requests] == [1, 0, 0, None]
