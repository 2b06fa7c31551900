"""A track's run → verify → repair loop as a Ray task with explicit resources."""
from __future__ import annotations

import dataclasses

import ray

from actors.agents import ActorProxy
from iml_ray.blueprint import Candidate
from iml_ray.track.job import TrackAgents, TrackJob
from iml_ray.track.loop import run_track


@ray.remote(max_retries=0)
def run_track_task(job: TrackJob, prep_coder, model_coder, assembler, error_analyzer, debugger, evaluator,
                   coordinator, llm: bool = False) -> Candidate:
    gpu_ids = tuple(int(i) for i in ray.get_runtime_context().get_accelerator_ids().get("GPU", []))
    if gpu_ids:
        # The child sees only the devices Ray gave this task.
        job = dataclasses.replace(job, gpu_ids=gpu_ids)
    if job.tune is not None:
        # The trials' driver writes its logs and sockets under this node's Ray temp dir: the sandbox keeps it writable.
        node = ray._private.worker.global_worker.node
        temp_dir = node.get_temp_dir_path() if node else "/tmp/ray"
        job = dataclasses.replace(job, tune=dataclasses.replace(job.tune, temp_dir=temp_dir))
    agents = TrackAgents(*(ActorProxy(h) for h in (prep_coder, model_coder, assembler, error_analyzer, debugger,
                                                    evaluator, coordinator)), llm=llm)
    return run_track(job, agents)
