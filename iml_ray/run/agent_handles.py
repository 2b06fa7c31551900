"""The agents of one competition on Ray: one AgentHost actor holding all ten, and a handle per agent."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iml_ray.agents.registry import AGENTS

if TYPE_CHECKING:
    from iml_ray.llm.plumbing import LLMPlumbing

TRACK_AGENTS = ("preprocessing_coder", "modeling_coder", "assembler", "error_analyzer", "debugger", "evaluator")


class RunAgents:
    def __init__(self, policy: str, llm: LLMPlumbing | None):
        from actors import agents as actors

        # The tracks call the agents at once: their calls run in the host's threads.
        threads = llm.host_threads() if llm else 8
        self.host = actors.AgentHost.options(max_concurrency=threads).remote(policy, llm)
        self.handles = {name: actors.HostedAgent(self.host, name) for name in AGENTS}

    def __getitem__(self, name: str) -> Any:
        return self.handles[name]

    def for_track(self) -> tuple[Any, ...]:
        """The agents a track's loop talks to, in run_track_task's order."""
        return tuple(self.handles[name] for name in TRACK_AGENTS)

    def llm_driven(self) -> tuple[Any, ...]:
        """The agents an LLM can drive (their events go into the report)."""
        return tuple(self.handles[name] for name, cls in AGENTS.items() if cls.prompt is not None)
