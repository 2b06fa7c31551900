"""One agent serving every competition of a job (on Ray: one actor per agent and replica, actors/agents.py).

The agent keeps nothing of a competition between calls: each call carries its
competition's context (the policy and the LLM plumbing, whose ledger holds what
must last over a competition's calls: its spend, its events, its rewrite count),
and the agent is built for that call alone (constructors only store
configuration). So one actor serves many competitions at once, and a restarted
actor loses nothing a competition needs.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iml_ray.agents.registry import AGENTS

if TYPE_CHECKING:
    from iml_ray.llm.plumbing import LLMPlumbing

# Calls that read a whole table (or run LLM-written profiling code): work, which the agent's actor (num_cpus=0, it
# mostly waits) hands to a Ray task holding CPUs of the competition's share instead of doing it in its own process,
# once the task's data is large. On small data the task's own start (a worker process importing pandas: seconds on
# a busy small machine, measured 1.1 s → 8 s for the task summary of a 344-row table) costs more than the work.
HEAVY_CALLS = frozenset({("task_analyzer", "analyze"), ("profiler", "profile")})
HEAVY_BYTES = 64 * 2**20
HEAVY_FILES = 2000          # images or clips: each is opened


@dataclass(frozen=True)
class AgentContext:
    """What every call of one competition carries to an agent."""

    competition: str                 # the run directory: names the competition in the agent's figures
    policy: str = "rules"
    llm: LLMPlumbing | None = None
    cpus: float = 1.0                # what a heavy call of this competition may hold (its part of the cluster)


class AgentServer:
    """Serves one agent's methods to every competition: `call(context, method, *args)`."""

    def __init__(self, agent: str):
        if agent not in AGENTS:
            raise ValueError(f"unknown agent '{agent}'")
        self.agent = agent
        self.started = time.time()
        self._lock = threading.Lock()
        self._calls = 0
        self._calls_by_competition: dict[str, int] = {}

    def call(self, agent_context: AgentContext, agent_method: str, *args: Any, **kwargs: Any) -> Any:
        # Named so that no agent method's keyword (a coder's `context=`) can collide with them.
        context, method = agent_context, agent_method
        if method.startswith("_"):
            raise AttributeError(f"{self.agent} has no public method '{method}'")
        with self._lock:
            self._calls += 1
            self._calls_by_competition[context.competition] = self._calls_by_competition.get(context.competition, 0) + 1
        if (self.agent, method) in HEAVY_CALLS and args and data_is_large(_task_dir(args[0])):
            return self._heavy(context, method, args, kwargs)
        return serve(self.agent, context, method, args, kwargs)

    def _heavy(self, context: AgentContext, method: str, args: tuple, kwargs: dict) -> Any:
        """Work that holds CPUs; here in the caller's process, on Ray in a task (actors/agents.py)."""
        return serve(self.agent, context, method, args, kwargs)

    def warm_up(self) -> None:
        """Import what the agent's calls import (see Agent.warm_imports), logging what fails instead of raising:
        the call that needs a module then fails with the real error."""
        import importlib
        import logging

        for module in AGENTS[self.agent].warm_imports:
            try:
                importlib.import_module(module)
            except Exception as exc:   # noqa: BLE001 - the call itself will say what is wrong
                logging.getLogger(__name__).warning("%s: warming up %s failed: %s", self.agent, module, exc)

    def stats(self, competition: str | None = None) -> dict[str, Any]:
        """The calls this agent served (over its life, to how many competitions, and to `competition`)."""
        with self._lock:
            figures = {"agent": self.agent, "pid": os.getpid(), "up_s": round(time.time() - self.started, 1),
                       "calls": self._calls, "competitions": len(self._calls_by_competition)}
            if competition is not None:
                figures["calls_for_this_competition"] = self._calls_by_competition.get(competition, 0)
        return figures


def serve(agent: str, context: AgentContext, method: str, args: tuple, kwargs: dict) -> Any:
    """One call: the agent built for its competition's context, then asked."""
    return getattr(AGENTS[agent](context.policy, context.llm), method)(*args, **kwargs)


def _task_dir(first: Any) -> str:
    """The task directory a heavy call reads: given as a path (TaskAnalyzer) or in the summary (Profiler)."""
    return str(getattr(first, "task_dir", first))


def data_is_large(task_dir: str) -> bool:
    """Whether the task's files hold more than HEAVY_BYTES or HEAVY_FILES (counted only up to those bounds)."""
    total = files = 0
    stack = [task_dir]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
                continue
            files += 1
            try:
                total += entry.stat().st_size
            except OSError:
                continue
            if total > HEAVY_BYTES or files > HEAVY_FILES:
                return True
    return False
