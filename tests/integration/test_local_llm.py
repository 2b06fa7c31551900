"""--llm local:MODEL with a real open model (SmolLM2-135M-Instruct, a GGUF file shipped in a package).

The model writes plausible, wrong answers: the runs must still end with valid
submissions, through re-asking and the rules fallback, while one server per
model serves every agent of every competition.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from helpers import binary_frames, local_ray, smollm2_gguf, write_task

from iml_ray.llm.settings import LLMSettings

pytestmark = pytest.mark.slow

IML = [sys.executable, "-m", "iml_ray.cli"]


@pytest.fixture(scope="module")
def ray_cluster():
    yield from local_ray(num_cpus=2)


def _env(tmp_path):
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", IML_LLM_CACHE=str(tmp_path / "llm-cache"))
    for name in ("RAY_ADDRESS", "OPENAI_BASE_URL", "OPENAI_API_KEY", "IML_LLM_MODEL"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def served(ray_cluster):
    """The model's server actor on this module's cluster, as a run starts it: (settings, handle)."""
    import ray

    from actors.llm import local_model_server

    model = f"local:{smollm2_gguf()}"
    settings = LLMSettings(model=model, max_output_tokens=12, local_batch_wait_s=0.5, local_cpus=1)
    handle = local_model_server(model, settings)
    # Loaded before any test starts its clock (a test's own waits then time the serving, not the load).
    ray.get(handle.stats.remote(), timeout=600)
    yield settings, handle
    ray.kill(handle)


def test_agents_on_the_cluster_share_one_server_and_its_model_calls(served):
    from actors.llm import local_model_server, server_stats
    from iml_ray.llm.brain import Brain

    settings, first = served
    model = settings.model
    before = server_stats(first)
    assert "error" not in before, before
    again = local_model_server(model, settings)            # what a second competition does: found by name
    assert first._actor_id == again._actor_id
    agents = ("task_analyzer", "profiler", "guideline", "debugger")
    brains = [Brain(agent, settings, servers={model: again}) for agent in agents]
    replies: dict[str, object] = {}

    def ask(brain):
        replies[brain.agent] = brain.client().chat(brain.agent, [{"role": "user", "content": f"Say the word {brain.agent}."}])

    threads = [threading.Thread(target=ask, args=(brain,)) for brain in brains]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = server_stats(first)
    assert set(replies) == set(agents) and all(r.completion_tokens > 0 for r in replies.values())
    assert stats["loads"] == 1 and stats["requests"] - before["requests"] == 4
    assert stats["model_calls"] - before["model_calls"] < 4            # concurrent agents were batched
    for brain in brains:                                               # each agent's tokens, counted by its client
        assert brain.client().ledger.by_agent()[brain.agent]["requests"] == 1


def test_the_server_behind_an_openai_compatible_route_serves_other_tools(served):
    import openai

    from actors.llm import server_stats
    from iml_ray.llm.brain import LocalServerHandle
    from iml_ray.llm.client import LLMClient
    from iml_ray.llm.serving.http_route import ModelRoute

    settings, handle = served
    before = server_stats(handle)
    with ModelRoute(LocalServerHandle(handle, 60).chat, "smollm2") as route:
        # The project's own HTTP client, as a run with --llm openai pointed at the route would use it.
        client = LLMClient(LLMSettings(base_url=route.url, model="smollm2", max_output_tokens=10, timeout_s=60))
        replies = []
        threads = [threading.Thread(target=lambda i=i: replies.append(client.chat("guideline", [
            {"role": "user", "content": f"Say the number {i}."}]))) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        raw = openai.OpenAI(base_url=route.url, api_key="unused", max_retries=0)
        assert [m.id for m in raw.models.list().data] == ["smollm2"]
        with pytest.raises(openai.BadRequestError, match="streaming is not supported"):
            raw.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "hi"}], stream=True)
    after = server_stats(handle)
    assert len(replies) == 3 and all(r.text and 0 < r.completion_tokens <= 10 for r in replies)
    assert after["requests"] - before["requests"] == 3
    assert after["model_calls"] - before["model_calls"] < 3             # HTTP callers were batched too
    # Tokens reached the client as usage, counted by the model's tokenizer, not estimated.
    assert client.ledger.totals()["completion_tokens"] == after["completion_tokens"] - before["completion_tokens"]


def test_iml_serve_llm_answers_until_interrupted(tmp_path):
    import re
    import signal

    import openai

    process = subprocess.Popen([*IML, "serve-llm", f"local:{smollm2_gguf()}", "--port", "0"], stderr=subprocess.PIPE,
                               text=True, env=_env(tmp_path))
    try:
        line = ""
        for line in process.stderr:
            if "serving" in line:
                break
        url = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        assert url, line
        client = openai.OpenAI(base_url=url.group(1), api_key="unused", max_retries=0, timeout=120)
        reply = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Say hi."}],
                                               max_tokens=8)
        assert reply.choices[0].message.content and 0 < reply.usage.completion_tokens <= 8
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=180)          # Ray's shutdown on a busy machine can take minutes
    assert code == 0


def test_batch_of_two_loads_the_model_once_and_ends_with_valid_submissions(tmp_path):
    tasks = []
    for seed in (1, 2):
        train, test, sample = binary_frames(240, 60, seed=seed)
        tasks.append(write_task(tmp_path / f"comp{seed}", train, test, sample,
                                "# Toy\n\nPredict `label` from the other columns. Evaluated on accuracy.\n"))
    config = tmp_path / "local.yaml"
    # Short answers and few repair rounds keep the CPU-bound model inside the test's time.
    config.write_text("max_repair_rounds: 2\nllm:\n  max_output_tokens: 192\n  timeout_s: 90\n")
    root = tmp_path / "runs"
    done = subprocess.run([*IML, "batch", *map(str, tasks), "--out", str(root), "--time-budget", "150",
                           "--tracks", "traditional", "--llm", f"local:{smollm2_gguf()}", "--config", str(config)],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "local model: loaded 1x" in done.stdout

    summary = json.loads((root / "batch.json").read_text())
    [server] = summary["llm"]["servers"]                   # one server for the whole batch...
    assert server["loads"] == 1 and server["backend"] == "transformers" and server["device"] == "cpu"
    assert server["model_calls"] >= 1 and server["tokens_per_s"] > 0
    fallbacks = re_asks = requests = 0
    for name in ("comp1", "comp2"):
        report = json.loads((root / name / "report.json").read_text())
        assert report["status"] == "ok" and (root / name / "submission.csv").is_file()
        assert report["leaderboard"][0]["valid_score"] is not None
        llm = report["llm"]
        assert llm["policy"] == "local" and llm["tokens"] > 0 and llm["cost_usd"] == 0.0
        assert llm["servers"][0]["instance"] == server["instance"]      # ...used by both competitions
        requests += llm["totals"]["requests"]
        fallbacks += sum(e["what"] == "rules" for e in llm["events"])
        re_asks += sum(e["what"] == "re-asked" for e in llm["events"])
    assert requests <= server["requests"]                  # every request the ledgers counted reached the server
    assert fallbacks >= 2 and re_asks >= 1                 # the model's answers were re-asked, then the rules stood in


def test_a_local_model_that_is_not_there_or_does_not_load_is_one_line_and_nothing_written(tmp_path):
    train, test, sample = binary_frames(60, 20)
    task = write_task(tmp_path / "toy", train, test, sample)
    out = tmp_path / "out"
    done = subprocess.run([*IML, "run", str(task), "--out", str(out), "--llm", f"local:{tmp_path}/missing.gguf"],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert done.returncode == 2
    assert "missing.gguf does not exist" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(4096))
    done = subprocess.run([*IML, "run", str(task), "--out", str(out), "--llm", f"local:{junk}"],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "junk.gguf did not load" in done.stderr and "not a GGUF file" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_a_server_goes_with_the_job_that_started_it_unless_asked_to_stay(served):
    """The server belongs to the process that starts it (a batch's driver): gone when that owner is done with
    it, unless local_keep made it detached. A Ray task plays the short-lived owner here."""
    import time

    import ray

    from actors.llm import NAMESPACE, local_model_server

    settings, _ = served

    @ray.remote(num_cpus=0)
    def start(keep: bool) -> str:
        mine = settings.replace(local_keep=keep, local_repetition_penalty=1.01 if keep else 1.02)   # own names
        handle = local_model_server(mine.model, mine)
        ray.get(handle.stats.remote())               # loaded and serving
        return f"llm-local-{mine.local_id(mine.model)}"

    def alive(name: str) -> bool:
        try:
            ray.get_actor(name, namespace=NAMESPACE)
            return True
        except ValueError:
            return False

    transient = ray.get(start.remote(False))
    deadline = time.time() + 60
    while alive(transient) and time.time() < deadline:
        time.sleep(0.5)
    assert not alive(transient)

    kept = ray.get(start.remote(True))
    time.sleep(2)
    assert alive(kept)
    ray.kill(ray.get_actor(kept, namespace=NAMESPACE))
