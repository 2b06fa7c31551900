"""The agents on Ray: one actor per agent (and replica), shared by every competition of a job; the Coordinator, one
actor per competition, builds the stacked ensemble as a Ray task it launches."""
from __future__ import annotations

import itertools
from typing import Any

import ray

from iml_ray.agents import coordinator, server


@ray.remote(max_retries=0)
def stack_task(summary, verified, root: str, seed: int):
    """Reading every candidate's predictions and selecting weights is work: a task with CPUs, not the actor."""
    from pathlib import Path

    # Imported here: the stacker pulls in scikit-learn and pandas, which every agent's process would import
    # with this module (ten processes at once: seconds of a small machine's CPU at every job's start).
    from iml_ray.agents import stacking

    return stacking.stack_candidates(summary, verified, Path(root), seed)


class _CoordinatorOnRay(coordinator.Coordinator):
    def _stack(self, summary, verified, root, seed, resources):
        return ray.get(stack_task.options(**resources).remote(summary, verified, root, seed))

    def _free_cpus(self) -> float:
        return float(ray.available_resources().get("CPU", 0.0))


Coordinator = ray.remote(num_cpus=0)(_CoordinatorOnRay)


@ray.remote(max_retries=0)
def agent_task(agent: str, context: server.AgentContext, method: str, args: tuple, kwargs: dict) -> Any:
    """An agent's heavy call (reading a whole table, running profiling code) with CPUs of its own."""
    return server.serve(agent, context, method, args, kwargs)


class _AgentOnRay(server.AgentServer):
    def __init__(self, agent: str):
        super().__init__(agent)
        import threading

        # The agent's imports load beside the other agents' first calls rather than inside its own.
        threading.Thread(target=self.warm_up, name=f"{agent}-warm-up", daemon=True).start()

    def _heavy(self, context: server.AgentContext, method: str, args: tuple, kwargs: dict) -> Any:
        task = agent_task.options(num_cpus=context.cpus, name=f"{self.agent}.{method}")
        return ray.get(task.remote(self.agent, context, method, args, kwargs))

    def stats(self, competition: str | None = None) -> dict[str, Any]:
        here = ray.get_runtime_context()
        return {**super().stats(competition), "actor_id": here.get_actor_id(), "node": here.get_node_id()}


# num_cpus=0: an agent mostly waits (on the LLM, on a heavy task it launched); its calls run in its threads.
AgentActor = ray.remote(num_cpus=0)(_AgentOnRay)


def agent_actor(agent: str, name: str, namespace: str, threads: int, max_restarts: int, keep: bool):
    """The named actor serving `agent`: created by the first caller, found by name by every later one.

    A restarted actor keeps its name and id; calls in flight when it died are sent
    again (`max_task_retries`), so a crashed agent costs a batch a retry, not a
    competition. Detached (`keep`), it outlives the job for later jobs on the cluster.
    """
    options: dict[str, Any] = dict(name=name, namespace=namespace, get_if_exists=True, max_concurrency=threads,
                                   max_restarts=max_restarts, max_task_retries=max_restarts)
    if keep:
        options["lifetime"] = "detached"
    return AgentActor.options(**options).remote(agent)


class BoundAgent:
    """An agent's actors bound to one competition's context, with an actor handle's face: `agent.method.remote(...)`.

    Picklable (handles and the context), so tracks receive it like any handle; calls
    go round the agent's replicas.
    """

    def __init__(self, handles: list, context: server.AgentContext):
        self._handles = list(handles)
        self._context = context
        self._turn = itertools.count()

    def __getstate__(self) -> dict:
        return {"handles": self._handles, "context": self._context}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["handles"], state["context"])

    def __getattr__(self, method: str) -> "_BoundMethod":
        if method.startswith("_"):
            raise AttributeError(method)
        return _BoundMethod(self, method)

    def _next(self):
        return self._handles[next(self._turn) % len(self._handles)]


class _BoundMethod:
    def __init__(self, agent: BoundAgent, method: str):
        self._agent, self._method = agent, method

    def remote(self, *args, **kwargs) -> "ray.ObjectRef":
        return self._agent._next().call.remote(self._agent._context, self._method, *args, **kwargs)


class ActorProxy:
    """Call an actor's methods as if it were the plain object (blocking)."""

    def __init__(self, handle: "ray.actor.ActorHandle"):
        self._handle = handle

    def __getattr__(self, name: str):
        method = getattr(self._handle, name)
        return lambda *args, **kwargs: ray.get(method.remote(*args, **kwargs))
