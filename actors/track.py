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


@ray.remote(num_cpus=0, max_retries=0)
def warm_track_worker() -> tuple[int, list[str]]:
    """A job's process for its first track, started while the plan phase runs: Ray gives the track's task the job's
    idle worker, which has the track's code imported, so the track does not wait for a process to start (on a warm
    cluster, a job that creates its agents began its first track 1.4-2.0 s after the plan ended, 0.15-1.0 s with
    this). Returns the process id and the track modules it holds."""
    import os
    import sys

    import iml_ray.track.loop  # noqa: F401 - the import is the warm-up

    return os.getpid(), sorted(m for m in sys.modules if m.startswith("iml_ray.track."))
