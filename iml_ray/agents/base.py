"""What every agent shares: the policy switch between the rules and an LLM.

Each agent has the same inputs and typed output whichever policy drives it:
`rules` (deterministic, from the data) or an LLM (`openai`: any OpenAI-compatible
endpoint; `local`: an open checkpoint on the cluster), which falls back to the
rules whenever it cannot help. Constructors only store configuration.

Agents import their heavy dependencies (pandas, sklearn) inside their methods:
an agent may live in a process of its own, and processes importing pandas at
once on a small machine cost more than the whole plan phase.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    from iml_ray.llm.plumbing import LLMPlumbing

T = TypeVar("T")
log = logging.getLogger(__name__)


class Agent:
    """Rules always work; with an LLM policy a Brain is tried first."""

    name = "agent"
    # The agent's prompt (`<name>.md` beside its module) and the parser of the answer; None for the
    # framework's own agents (Assembler, Evaluator), which no LLM drives.
    prompt: str | None = None
    # The modules its calls import (the agents import lazily): loaded when an actor serving it starts, so its first
    # call does not wait on them.
    warm_imports: tuple[str, ...] = ()

    def __init__(self, policy: str = "rules", llm: LLMPlumbing | None = None):
        self.policy = policy
        self.llm = llm
        self._brain = None

    @property
    def brain(self):
        if self.policy == "rules" or self.llm is None or not self.llm.drives(self.name):
            return None         # no LLM policy, or this agent is not one the LLM drives
        if self._brain is None:
            from iml_ray.llm.brain import Brain

            self._brain = Brain(self.name, self.llm.settings, self.llm.ledger, self.llm.limiter, self.llm.servers)
        return self._brain

    def events(self) -> list[dict]:
        """What came from the LLM and what fell back to rules (and why), for the report."""
        return list(self._brain.events) if self._brain is not None else []

    def _with_llm(self, what: str, ask: Callable[[Any], T], deadline: float | None = None) -> T | None:
        """ask(brain)'s answer; None when no LLM drives this agent or it could not help (then the
        fallback to the rules' `what` is logged and noted for the report). No ask starts after `deadline`."""
        if self.brain is None:
            return None
        from iml_ray.llm.errors import LLMError

        try:
            with self.brain.until(deadline):
                return ask(self.brain)
        except LLMError as exc:
            self._fell_back(exc, what)
            return None

    def _fell_back(self, exc: Exception, what: str) -> None:
        """Note that the rules stand in for the LLM here."""
        log.warning("%s: %s from rules (LLM: %s)", self.name, what, exc)
        self.brain.note("rules", f"{what}: {type(exc).__name__}: {exc}")
