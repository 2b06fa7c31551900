"""The agents of a job on Ray: one named actor per agent (and replica), created on first use and shared by every
competition of the job; a competition binds them to its own context.

The actors are named in the `iml-ray` namespace by iml-ray's version, a digest of
its code and the pool's settings, so a changed config or a changed install never
reuses a stale actor. Without `agents.keep` the name also holds the job's id: the
actors belong to the job's driver and end with it. With it they are detached and
serve later jobs on the same cluster, which then start without creating any.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iml_ray.agents.registry import AGENTS
from iml_ray.agents.server import AgentContext
from iml_ray.errors import ConfigError

if TYPE_CHECKING:
    from iml_ray.config import RunConfig

NAMESPACE = "iml-ray"
PLAN_AGENTS = ("task_analyzer", "profiler", "knowledge_retriever", "guideline")
TRACK_AGENTS = ("preprocessing_coder", "modeling_coder", "assembler", "error_analyzer", "debugger", "evaluator")
SETTINGS_KEYS = ("replicas", "keep", "max_restarts", "threads")
MIN_THREADS = 32        # calls served at once by one agent: every track of every running competition may wait on it


@dataclass(frozen=True)
class PoolSettings:
    """How a job's agents are served (the `agents:` section of the config)."""

    replicas: tuple[tuple[str, int], ...] = ()     # agent -> actors serving it (1 when not named)
    keep: bool = False                             # detached: the actors outlive the job (--keep-agents)
    max_restarts: int = 3                          # a crashed agent comes back this many times
    threads: int = MIN_THREADS

    def count(self, agent: str) -> int:
        return dict(self.replicas).get(agent, 1)

    def key(self) -> str:
        """Names the pool: iml-ray's version and code, and every setting an actor is created with."""
        from iml_ray import __version__

        facts = {"version": __version__, "code": code_digest(), "replicas": sorted(self.replicas),
                 "max_restarts": self.max_restarts, "threads": self.threads}
        return hashlib.sha1(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]

    def to_json(self) -> dict:
        return {"replicas": dict(self.replicas), "keep": self.keep, "max_restarts": self.max_restarts,
                "threads": self.threads, "key": self.key()}


def pool_settings(configs: list[RunConfig]) -> PoolSettings:
    """The one pool the competitions of a job share (their agents' threads: the most any of them needs).
    A wrong `agents:` section is the user's error, said in one line before anything starts."""
    from iml_ray.llm.plumbing import LLMPlumbing
    from iml_ray.llm.settings import LLMSettings

    first = configs[0].agents
    unknown = sorted(set(first) - set(SETTINGS_KEYS))
    if unknown:
        raise ConfigError(f"unknown agents setting(s): {', '.join(unknown)}", f"Known: {', '.join(SETTINGS_KEYS)}.")
    replicas = first.get("replicas") or {}
    if not isinstance(replicas, dict) or any(a not in AGENTS for a in replicas):
        raise ConfigError(f"agents replicas must map agent names to counts, got {replicas!r}",
                          f"Agents: {', '.join(AGENTS)}.")
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in replicas.values()):
        raise ConfigError(f"agents replicas must be whole numbers of at least 1, got {replicas!r}",
                          "Write e.g. agents: {replicas: {modeling_coder: 2}}.")
    max_restarts = first.get("max_restarts", 3)
    if not isinstance(max_restarts, int) or isinstance(max_restarts, bool) or max_restarts < -1:
        raise ConfigError(f"agents max_restarts must be a whole number (-1: always), got {max_restarts!r}",
                          "Write e.g. agents: {max_restarts: 3}.")
    threads = int(first.get("threads", MIN_THREADS))
    for config in configs:
        if config.policy != "rules":
            threads = max(threads, LLMPlumbing(LLMSettings.from_env(config.llm)).host_threads())
    return PoolSettings(tuple(sorted((a, int(n)) for a, n in replicas.items())), bool(first.get("keep", False)),
                        max_restarts, threads)


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of the code the agents run: a kept actor from an older install is never reused."""
    import iml_ray

    digest = hashlib.sha1()
    roots = [Path(iml_ray.__file__).parent, Path(iml_ray.__file__).parent.parent / "actors"]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".md", ".tmpl", ".yaml") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass
class AgentPool:
    """The named actors of every agent, for one job (created, or found by name)."""

    settings: PoolSettings
    job: str
    handles: dict[str, list] = field(default_factory=dict)

    def actor_name(self, agent: str, replica: int) -> str:
        suffix = "" if self.settings.keep else f"-job{self.job}"
        return f"iml-agent-{agent}-{replica}-{self.settings.key()}{suffix}"

    def start(self, agents: tuple[str, ...] = tuple(AGENTS)) -> AgentPool:
        """Create (or find) the actors of these agents; the others start on their first use or with start()."""
        from actors.agents import agent_actor

        s = self.settings
        for agent in agents:
            if agent not in self.handles:
                self.handles[agent] = [agent_actor(agent, self.actor_name(agent, r), NAMESPACE, s.threads,
                                                   s.max_restarts, s.keep) for r in range(s.count(agent))]
        return self


# The pools this process created or found, by job and key: the creator's handles keep a job's actors alive.
_POOLS: dict[tuple[str, str], AgentPool] = {}      # (session/job, pool key) -> pool


def job_pool(settings: PoolSettings, first: tuple[str, ...] = tuple(AGENTS)) -> AgentPool:
    """This job's pool with these settings: started by its first caller (the driver), found by the others.

    first: the agents to create now (the rest when asked for): a lone competition creates its
    TaskAnalyzer alone, so that agent's process does not start among nine others on a small machine.
    """
    import ray

    here = ray.get_runtime_context()
    job = here.get_job_id()
    # A new Ray session in this process numbers its jobs from 1 again: the session tells the pools apart.
    session = here.get_session_name()
    key = (f"{session}/{job}", settings.key() + ("-kept" if settings.keep else ""))
    if key not in _POOLS:
        for stale in [k for k in _POOLS if k[0] != key[0]]:     # an earlier job's or session's handles
            del _POOLS[stale]
        _POOLS[key] = AgentPool(settings, job)
    return _POOLS[key].start(first)


class RunAgents:
    """The job's agents bound to one competition: `agents["profiler"].profile.remote(...)`."""

    def __init__(self, pool: AgentPool, context: AgentContext):
        self.pool = pool
        self.context = context

    def __getitem__(self, name: str) -> Any:
        from actors.agents import BoundAgent

        return BoundAgent(self.pool.start((name,)).handles[name], self.context)

    def started(self, name: str, timeout_s: float = 30.0) -> None:
        """Wait until the agent's first actor is up (at most timeout_s)."""
        import ray

        try:
            ray.get(self.pool.start((name,)).handles[name][0].stats.remote(), timeout=timeout_s)
        except Exception:          # noqa: BLE001 - a call to it will say what is wrong
            pass

    def start_all(self, agents: tuple[str, ...] = tuple(AGENTS)) -> None:
        """Create the actors of these agents not created yet (they start while the first agents work)."""
        self.pool.start(agents)

    def for_track(self) -> tuple[Any, ...]:
        """The agents a track's loop talks to, in run_track_task's order."""
        return tuple(self[name] for name in TRACK_AGENTS)

    def report(self) -> dict[str, Any]:
        """actors for report.json: each agent's actor id(s), node, and the calls it served (this competition's too)."""
        return pool_report(self.pool, self.context.competition)


def pool_report(pool: AgentPool, competition: str | None = None) -> dict[str, Any]:
    """Each agent's actors: name, id, node, process, the calls served over their life (and to `competition`)."""
    import ray

    agents: dict[str, list] = {}
    for agent, handles in pool.start().handles.items():
        rows = []
        for replica, handle in enumerate(handles):
            row = {"name": pool.actor_name(agent, replica)}
            try:
                row.update(ray.get(handle.stats.remote(competition), timeout=30))
            except Exception as exc:     # a dead agent is reported, not a failed report
                row.update(actor_id=handle._actor_id.hex(),
                           error=(str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300])
            rows.append(row)
        agents[agent] = rows
    return {"namespace": NAMESPACE, "pool": pool.settings.to_json(), "agents": agents}
