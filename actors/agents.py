"""One Ray actor per agent."""
from __future__ import annotations

import ray

from iml_ray import agents

TaskAnalyzer = ray.remote(num_cpus=0)(agents.TaskAnalyzer)
Profiler = ray.remote(num_cpus=0)(agents.Profiler)
KnowledgeRetriever = ray.remote(num_cpus=0)(agents.KnowledgeRetriever)
GuidelineAgent = ray.remote(num_cpus=0)(agents.GuidelineAgent)
PreprocessingCoder = ray.remote(num_cpus=0)(agents.PreprocessingCoder)
ModelingCoder = ray.remote(num_cpus=0)(agents.ModelingCoder)
Assembler = ray.remote(num_cpus=0)(agents.Assembler)
ErrorAnalyzer = ray.remote(num_cpus=0)(agents.ErrorAnalyzer)
Debugger = ray.remote(num_cpus=0)(agents.Debugger)
Evaluator = ray.remote(num_cpus=0)(agents.Evaluator)
Coordinator = ray.remote(num_cpus=0)(agents.Coordinator)


class ActorProxy:
    """Call an actor's methods as if it were the plain object (blocking)."""

    def __init__(self, handle: "ray.actor.ActorHandle"):
        self._handle = handle

    def __getattr__(self, name: str):
        method = getattr(self._handle, name)
        return lambda *args, **kwargs: ray.get(method.remote(*args, **kwargs))
