"""The agents on Ray: one AgentHost actor per competition holds them all; the Coordinator is its own actor, and
builds the stacked ensemble as a Ray task it launches."""
from __future__ import annotations

import ray

from iml_ray.agents import coordinator, host, stacking

AgentHost = ray.remote(num_cpus=0)(host.AgentHost)


@ray.remote(max_retries=0)
def stack_task(summary, verified, root: str, seed: int):
    """Reading every candidate's predictions and selecting weights is work: a task with CPUs, not the actor."""
    from pathlib import Path

    return stacking.stack_candidates(summary, verified, Path(root), seed)


class _CoordinatorOnRay(coordinator.Coordinator):
    def _stack(self, summary, verified, root, seed, resources):
        return ray.get(stack_task.options(**resources).remote(summary, verified, root, seed))

    def _free_cpus(self) -> float:
        return float(ray.available_resources().get("CPU", 0.0))


Coordinator = ray.remote(num_cpus=0)(_CoordinatorOnRay)


class HostedAgent:
    """One agent inside the competition's AgentHost, with an actor handle's face: `agent.method.remote(...)`.

    Picklable (an actor handle and a name), so tracks receive it like any handle.
    """

    def __init__(self, host: "ray.actor.ActorHandle", name: str):
        self._host = host
        self._name = name

    def __getattr__(self, method: str) -> "_HostedMethod":
        if method.startswith("__"):
            raise AttributeError(method)
        return _HostedMethod(self._host, self._name, method)


class _HostedMethod:
    def __init__(self, host, agent: str, method: str):
        self._host, self._agent, self._method = host, agent, method

    def remote(self, *args, **kwargs) -> "ray.ObjectRef":
        return self._host.call.remote(self._agent, self._method, *args, **kwargs)


class ActorProxy:
    """Call an actor's methods as if it were the plain object (blocking)."""

    def __init__(self, handle: "ray.actor.ActorHandle"):
        self._handle = handle

    def __getattr__(self, name: str):
        method = getattr(self._handle, name)
        return lambda *args, **kwargs: ray.get(method.remote(*args, **kwargs))
