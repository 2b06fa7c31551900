"""What every agent of a competition gets when an LLM drives it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iml_ray.llm.settings import LLMSettings


@dataclass(frozen=True)
class LLMPlumbing:
    """The settings, this competition's ledger, the endpoint's limiter, the servers of its local models,
    and the competition's cap on LLM rewrites.

    The ledger, the limiter and the servers are Ray actor handles in a run
    (actors/llm.py builds them), plain objects or None in tests.
    """

    settings: LLMSettings
    max_rewrites: int = 30          # Debugger rewrites over every track and module of the competition
    ledger: Any = None
    limiter: Any = None
    servers: dict[str, Any] = field(default_factory=dict)      # local:... model -> its server

    def drives(self, agent: str) -> bool:
        return self.settings.drives(agent)

    def host_threads(self) -> int:
        """Threads of the actor hosting the agents: the tracks' LLM calls wait on the endpoint at once
        (the endpoint's limiter bounds them across the cluster)."""
        return max(8, 2 * self.settings.concurrency, 2 * self.settings.local_max_batch)
