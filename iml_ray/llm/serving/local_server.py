"""One local model serving every agent: requests that arrive together share a model call.

Plain asyncio (actors/llm.py makes it a Ray actor that every competition of a
batch reaches by name; InProcessServer gives it a blocking face without Ray).
The model loads once, when the server is built; generation runs in one worker
thread so the event loop keeps collecting the next batch meanwhile.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from iml_ray.llm.serving.local_model import ChatRequest, LocalSource, load_generator

log = logging.getLogger(__name__)


class LocalModelServer:
    def __init__(self, model: str, max_batch: int = 8, batch_wait_s: float = 0.05, threads: int | None = None,
                 backend: str = "auto", repetition_penalty: float | None = None):
        self.model = model
        self.max_batch = max(1, int(max_batch))
        self.batch_wait_s = max(0.0, float(batch_wait_s))
        self.instance = uuid.uuid4().hex[:12]
        self.pid = os.getpid()
        started = time.monotonic()
        self.generator = load_generator(LocalSource.parse(model), threads, backend, repetition_penalty)
        self.load_s = round(time.monotonic() - started, 2)
        self.loads = 1
        self._queue: list[tuple[ChatRequest, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self.requests = 0
        self.model_calls = 0
        self.failed_calls = 0
        self.cancelled = 0
        self.batch_sizes: Counter[int] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.generate_s = 0.0
        self.first_request: float | None = None
        self.last_answer: float | None = None

    async def chat(self, messages: list[dict], max_tokens: int, temperature: float = 0.0,
                   seed: int | None = None) -> dict:
        """One chat answer: {text, prompt_tokens, completion_tokens, finish_reason, batch_size, seconds}."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._queue.append((ChatRequest(messages, int(max_tokens), float(temperature), seed), future))
        self.requests += 1
        if self.first_request is None:
            self.first_request = time.time()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._serve())
        try:
            return await future
        except asyncio.CancelledError:
            # The caller gave up (its timeout, ray.cancel): its request leaves the queue, or stops its batch.
            future.cancel()
            self.cancelled += 1
            raise

    async def _serve(self) -> None:
        while self._queue:
            if len(self._queue) < self.max_batch and self.batch_wait_s:
                # Agents that ask at about the same time share the next call.
                await asyncio.sleep(self.batch_wait_s)
            batch = self._take_batch()
            if not batch:
                continue
            futures = [future for _, future in batch]
            started = time.monotonic()
            try:
                generations = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.generator.generate, [request for request, _ in batch],
                    lambda futures=futures: all(f.done() for f in futures))
            except Exception as exc:   # a failed call fails its requests, never the server
                self.failed_calls += 1
                log.warning("local model call of %d request(s) failed: %s", len(batch), exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(RuntimeError(f"{type(exc).__name__}: {exc}"))
                continue
            seconds = time.monotonic() - started
            self.model_calls += 1
            self.batch_sizes[len(batch)] += 1
            self.generate_s += seconds
            self.last_answer = time.time()
            for (_, future), generation in zip(batch, generations):
                self.prompt_tokens += generation.prompt_tokens
                self.completion_tokens += generation.completion_tokens
                if not future.done():
                    future.set_result({"text": generation.text, "prompt_tokens": generation.prompt_tokens,
                                       "completion_tokens": generation.completion_tokens,
                                       "finish_reason": generation.finish_reason, "batch_size": len(batch),
                                       "seconds": round(seconds, 3)})

    def _take_batch(self) -> list[tuple[ChatRequest, asyncio.Future]]:
        """Up to max_batch waiting requests that can share a call (same sampling settings), oldest first."""
        self._queue = [item for item in self._queue if not item[1].done()]
        if not self._queue:
            return []
        first = self._queue[0][0]
        key = (first.temperature, first.seed) if first.temperature > 0 else (0.0, None)
        batch, rest = [], []
        for item in self._queue:
            request = item[0]
            mine = (request.temperature, request.seed) if request.temperature > 0 else (0.0, None)
            (batch if mine == key and len(batch) < self.max_batch else rest).append(item)
        self._queue = rest
        return batch

    async def stats(self) -> dict:
        served_for = (self.last_answer - self.first_request) if self.first_request and self.last_answer else 0.0
        return {
            "model": self.model, "instance": self.instance, "pid": self.pid, "loads": self.loads,
            "load_s": self.load_s, "backend": self.generator.backend, "device": self.generator.device,
            "requests": self.requests, "model_calls": self.model_calls, "failed_calls": self.failed_calls,
            "cancelled": self.cancelled,
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "generate_s": round(self.generate_s, 2),
            # Generated tokens per second of model time; requests per second of wall time while serving.
            "tokens_per_s": round(self.completion_tokens / self.generate_s, 2) if self.generate_s else 0.0,
            "requests_per_s": round(self.requests / served_for, 3) if served_for > 0 else 0.0,
        }


class InProcessServer:
    """A LocalModelServer in this process, called like the Ray actor's blocking face (no Ray needed)."""

    def __init__(self, model: str, **options: Any):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="local-llm-loop")
        self._thread.start()
        self.server = self._call(self._build(model, options))

    async def _build(self, model: str, options: dict) -> LocalModelServer:
        return LocalModelServer(model, **options)

    def _call(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def chat(self, messages: list[dict], max_tokens: int, temperature: float = 0.0, seed: int | None = None,
             timeout_s: float | None = None) -> dict:
        future = asyncio.run_coroutine_threadsafe(self.server.chat(messages, max_tokens, temperature, seed), self._loop)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer in {timeout_s:g} s") from None

    def stats(self) -> dict:
        return self._call(self.server.stats())

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


_in_process: dict[str, InProcessServer] = {}
_in_process_lock = threading.Lock()


def in_process_server(model: str, **options: Any) -> InProcessServer:
    """This process's one server of `model` (library use without Ray: load once, share between clients)."""
    with _in_process_lock:
        if model not in _in_process:
            _in_process[model] = InProcessServer(model, **options)
        return _in_process[model]
