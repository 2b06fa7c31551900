"""One agent's access to the LLM: a lazily built client, re-asking on bad answers, and a record of what happened.

An agent holds a Brain when the run's policy is an LLM; every LLM call goes
through ask(), which re-asks with the parser's complaint until an answer parses
(at most `retries` times) and raises an LLMError the agent turns into the rules
fallback otherwise.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from iml_ray.llm.errors import BadAnswer, LLMError
from iml_ray.llm.prompt import re_ask
from iml_ray.llm.settings import LLMSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class NoAcceptableAnswer(LLMError):
    """The model answered, but never in a form the parser accepts."""


class _Blocking:
    """A Ray actor handle's methods called as plain blocking methods (the ledger and limiter actors)."""

    def __init__(self, handle: Any):
        self._handle = handle

    def __getattr__(self, name: str):
        import ray

        method = getattr(self._handle, name)

        def call(*args, **kwargs):
            try:
                return ray.get(method.remote(*args, **kwargs))
            except ray.exceptions.RayTaskError as exc:
                # The ledger's own refusal (budget, time, endpoint down): raised as itself, without Ray's
                # remote traceback, so the report says "LLM budget reached: ..." and nothing else.
                if isinstance(exc.cause, LLMError):
                    raise exc.cause from None
                raise

        return call


class LocalServerHandle:
    """A local model server's actor handle as a blocking chat(); a call that outlives timeout_s fails."""

    def __init__(self, handle: Any, timeout_s: float):
        self._handle = handle
        self._timeout_s = timeout_s

    def chat(self, messages: list[dict], max_tokens: int, temperature: float = 0.0, seed: int | None = None,
             timeout_s: float | None = None) -> dict:
        import ray

        timeout_s = timeout_s or self._timeout_s
        ref = self._handle.chat.remote(messages, max_tokens, temperature, seed)
        try:
            return ray.get(ref, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref)             # the server drops the request (or stops its batch if no one else waits)
            raise TimeoutError(f"no answer in {timeout_s:g} s") from None


def blocking(obj: Any) -> Any:
    if obj is None:
        return None
    method = getattr(obj, "check", None) or getattr(obj, "acquire", None)
    return _Blocking(obj) if method is not None and hasattr(method, "remote") else obj


class Brain:
    def __init__(self, agent: str, settings: LLMSettings, ledger: Any = None, limiter: Any = None,
                 servers: dict[str, Any] | None = None):
        self.agent = agent
        self.settings = settings
        self.ledger = ledger
        self.limiter = limiter
        self.servers = servers or {}           # local:... model -> its server's actor handle
        self._client = None
        self._lock = threading.Lock()
        self._call = threading.local()           # this thread's call: its deadline (the host runs calls in threads)
        self.events: list[dict] = []

    @contextmanager
    def until(self, deadline: float | None) -> Iterator[None]:
        """Asks made inside stop starting (and time out) at `deadline`, e.g. so a track keeps time to run its code."""
        outer = getattr(self._call, "deadline", None)
        self._call.deadline = min((d for d in (outer, deadline) if d is not None), default=None)
        try:
            yield
        finally:
            self._call.deadline = outer

    def client(self):
        with self._lock:
            if self._client is None:
                from iml_ray.llm.client import LLMClient

                servers = {model: LocalServerHandle(handle, self.settings.timeout_s)
                           for model, handle in self.servers.items()}
                self._client = LLMClient(self.settings, blocking(self.ledger), blocking(self.limiter), servers)
            return self._client

    def ask(self, messages: list[dict], parse: Callable[[str], T], retries: int = 2,
            cache_as: list[dict] | None = None, **params: Any) -> T:
        """parse(the answer), re-asking with the problem when it raises BadAnswer. cache_as: the messages the answers are
        cached under, when `messages` hold facts that change from run to run."""
        problem = None
        for attempt in range(retries + 1):
            reply = self.client().chat(self.agent, messages, deadline=getattr(self._call, "deadline", None),
                                       cache_as=cache_as, **params)
            try:
                return parse(reply.text)
            except BadAnswer as exc:
                problem = str(exc)
                log.info("%s: answer not accepted (%s); %s", self.agent, problem,
                         "re-asking" if attempt < retries else "giving up")
                self.note("re-asked", problem)
                messages = re_ask(messages, reply.text, problem)
                cache_as = re_ask(cache_as, reply.text, problem) if cache_as else None
        raise NoAcceptableAnswer(f"{self.agent}: no acceptable answer in {retries + 1} tries ({problem})")

    def note(self, what: str, detail: str = "") -> None:
        """Record an event for the report: which part came from the LLM, which fell back to rules and why."""
        event = {"agent": self.agent, "what": what, "detail": detail[:300], "at": time.time()}
        with self._lock:
            self.events.append(event)
        if self.ledger is not None:
            # The competition's record: this Brain lives for one call of an agent that serves many competitions.
            blocking(self.ledger).note(event)
