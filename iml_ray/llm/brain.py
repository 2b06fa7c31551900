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
from typing import Any, Callable, TypeVar

from .errors import BadAnswer, LLMError
from .prompts import re_ask

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
        return lambda *args, **kwargs: ray.get(method.remote(*args, **kwargs))


def blocking(obj: Any) -> Any:
    if obj is None:
        return None
    method = getattr(obj, "check", None) or getattr(obj, "acquire", None)
    return _Blocking(obj) if method is not None and hasattr(method, "remote") else obj


class Brain:
    def __init__(self, agent: str, settings: dict, ledger: Any = None, limiter: Any = None):
        self.agent = agent
        self.settings = settings
        self.ledger = ledger
        self.limiter = limiter
        self._client = None
        self._lock = threading.Lock()
        self.events: list[dict] = []

    def client(self):
        with self._lock:
            if self._client is None:
                from .client import LLMClient
                from .settings import LLMSettings

                self._client = LLMClient(LLMSettings.from_json(self.settings), blocking(self.ledger), blocking(self.limiter))
            return self._client

    def ask(self, messages: list[dict], parse: Callable[[str], T], retries: int = 2, **params: Any) -> T:
        problem = None
        for attempt in range(retries + 1):
            reply = self.client().chat(self.agent, messages, **params)
            try:
                return parse(reply.text)
            except BadAnswer as exc:
                problem = str(exc)
                log.info("%s: answer not accepted (%s); %s", self.agent, problem,
                         "re-asking" if attempt < retries else "giving up")
                self.note("re-asked", problem)
                messages = re_ask(messages, reply.text, problem)
        raise NoAcceptableAnswer(f"{self.agent}: no acceptable answer in {retries + 1} tries ({problem})")

    def note(self, what: str, detail: str = "") -> None:
        """Record an event for the report: which part came from the LLM, which fell back to rules and why."""
        with self._lock:
            self.events.append({"agent": self.agent, "what": what, "detail": detail[:300], "at": time.time()})
