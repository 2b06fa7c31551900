"""A local checkpoint served in this process: the real SmolLM2-135M GGUF model, no Ray, no HTTP."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from helpers import smollm2_gguf

from iml_ray.errors import ConfigError
from iml_ray.llm.client import LLMClient
from iml_ray.llm.errors import OutOfTime
from iml_ray.llm.ledger import Ledger
from iml_ray.llm.serving.local_model import LocalSource, repeated
from iml_ray.llm.serving.local_server import InProcessServer, LocalModelServer
from iml_ray.llm.settings import LLMSettings


def ask(text: str) -> list[dict]:
    return [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def model() -> str:
    return f"local:{smollm2_gguf()}"


@pytest.fixture(scope="module")
def server(model):
    # A long batch window: requests the test sends together surely share a call.
    served = InProcessServer(model, max_batch=8, batch_wait_s=0.5, threads=2)
    yield served
    served.close()


def test_local_sources_name_a_directory_a_gguf_file_or_a_hub_id(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    assert LocalSource.parse(f"local:{checkpoint}") == LocalSource(str(checkpoint), str(checkpoint.resolve()), None, True)
    gguf = smollm2_gguf()
    source = LocalSource.parse(f"local:{gguf}")
    assert (source.directory, source.gguf_file, source.on_disk) == (str(gguf.parent), gguf.name, True)
    assert LocalSource.parse("local:HuggingFaceTB/SmolLM2-135M-Instruct").on_disk is False
    for bad, why in ((f"local:{tmp_path}/nothing.gguf", "does not exist"), (f"local:{tmp_path}", "no config.json"),
                     ("local:", "needs a model"), (f"local:{checkpoint / 'config.json'}", "not a GGUF file")):
        with pytest.raises(ConfigError, match=why):
            LocalSource.parse(bad)


def test_loop_guard_spots_an_answer_going_round_in_circles():
    loop = [1, 2, 3, 4] * 30
    assert repeated(loop, window=8, repeats=3)
    assert not repeated(list(range(120)), window=8, repeats=3)
    assert not repeated([9] * 5 + [1, 2, 3, 4] * 2, window=8, repeats=3)


def test_requests_that_arrive_together_share_one_model_call(server):
    before = server.stats()
    answers: dict[int, dict] = {}

    def one(i: int) -> None:
        answers[i] = server.chat(ask(f"Name the number {i} in words."), 12)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = server.stats()
    assert after["requests"] - before["requests"] == 4
    assert after["model_calls"] - before["model_calls"] < 4          # fewer model calls than requests
    assert max(a["batch_size"] for a in answers.values()) >= 2
    assert all(a["completion_tokens"] > 0 and a["prompt_tokens"] > 0 and a["text"] for a in answers.values())
    assert after["loads"] == 1 and after["tokens_per_s"] > 0


def test_an_answer_is_the_same_alone_and_in_a_batch(server):
    """Left padding and the attention mask keep a batched row's greedy answer what it is alone."""
    question = ask("Write a Python function that adds two numbers.")
    alone = server.chat(question, 24)
    results: list[dict] = []
    others = [ask("Say hello."), ask("What is the capital of France? Answer in one short sentence, please.")]
    threads = [threading.Thread(target=lambda m=m: results.append(server.chat(m, 24))) for m in [question, *others]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    together = next(r for r in results if r["prompt_tokens"] == alone["prompt_tokens"])
    assert together["batch_size"] >= 2
    assert together["text"] == alone["text"]


def test_the_client_counts_local_tokens_per_agent_and_caches_answers(server, model, tmp_path):
    settings = LLMSettings(model=model, cache_dir=str(tmp_path / "cache"), max_output_tokens=16)
    client = LLMClient(settings, Ledger(), servers={model: server})
    before = server.stats()["requests"]
    first = client.chat("task_analyzer", ask("Reply with the word yes."))
    again = client.chat("task_analyzer", ask("Reply with the word yes."))
    assert server.stats()["requests"] == before + 1                    # the second answer came from the cache
    assert again.cached and again.text == first.text
    row = client.ledger.by_agent()["task_analyzer"]
    assert row["requests"] == 1 and row["cache_hits"] == 1
    assert row["total_tokens"] == first.prompt_tokens + first.completion_tokens > 0
    assert first.completion_tokens <= 16 and first.cost_usd == 0.0     # a local model costs nothing unless priced


def test_a_call_past_its_deadline_gives_up_and_the_server_drops_it(server, model):
    settings = LLMSettings(model=model, max_output_tokens=2000, timeout_s=60)
    client = LLMClient(settings, Ledger(), servers={model: server})
    before = server.stats()
    started = time.monotonic()
    with pytest.raises(OutOfTime):
        # About 190 tokens, 6-10 s on this machine: far past the deadline.
        client.chat("debugger", ask("Write the numbers from 1 to 300 in words, one per line."), deadline=time.time() + 1.5)
    assert time.monotonic() - started < 5
    with pytest.raises(OutOfTime):                                      # no time at all: not even sent
        client.chat("debugger", ask("Say hi."), deadline=time.time() + 0.5)
    time.sleep(1.0)
    after = server.stats()
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["requests"] == before["requests"] + 1
    # The abandoned generation stopped early, well before its ~190 tokens.
    assert after["completion_tokens"] - before["completion_tokens"] < 150
    assert server.chat(ask("Say hi."), 8)["completion_tokens"] > 0      # and the server still serves


def test_a_server_needs_no_event_loop_of_the_caller(model):
    """LocalModelServer itself is plain asyncio: what the Ray actor runs, driven here by asyncio.run."""
    async def go():
        server = LocalModelServer(model, max_batch=4, batch_wait_s=0.2, threads=2)
        answers = await asyncio.gather(*(server.chat(ask(f"Say {word}."), 6) for word in ("yes", "no", "maybe")))
        return answers, await server.stats()

    answers, stats = asyncio.run(go())
    assert len(answers) == 3 and stats["model_calls"] == 1 and stats["batch_sizes"] == {"3": 1}
