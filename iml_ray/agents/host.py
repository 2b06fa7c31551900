"""All the agents of one competition in one object (one Ray actor: actors/agents.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iml_ray.agents.registry import AGENTS

if TYPE_CHECKING:
    from iml_ray.llm.plumbing import LLMPlumbing


class AgentHost:
    """All the agents of one competition in one process.

    On Ray this is one actor per competition instead of one per agent: an actor
    is a process of its own, and ten of them starting (Python, Ray, the agents'
    imports) cost a small machine more CPU than the whole plan phase, once per
    competition. The agents keep their own classes and state; calls from the
    tracks run in the actor's threads.
    """

    def __init__(self, policy: str = "rules", llm: LLMPlumbing | None = None):
        self.agents = {name: cls(policy, llm) for name, cls in AGENTS.items()}

    def call(self, agent: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.agents[agent], method)(*args, **kwargs)
