"""The agents as Ray actors shared by every competition of a job: one set per batch, restarted when killed."""
from __future__ import annotations

import json
import threading
import time

import pytest
from helpers import binary_frames, local_ray, write_task

from iml_ray.agents.registry import AGENTS
from iml_ray.config import RunConfig
from iml_ray.run.batch import run_batch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    yield from local_ray(num_cpus=2)


def _tasks(tmp_path, n=3):
    tasks = []
    for seed in range(1, n + 1):
        train, test, sample = binary_frames(200, 50, seed=seed)
        tasks.append(str(write_task(tmp_path / f"comp{seed}", train, test, sample)))
    return tasks


def _agent_actors():
    """The agent actors on the cluster, by name (their ids)."""
    import ray

    return {a["name"]: ray.get_actor(a["name"], namespace=a["namespace"])._actor_id.hex()
            for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("iml-agent-")}


def _report(root, name):
    return json.loads((root / name / "report.json").read_text())


def test_every_competition_of_a_batch_is_served_by_the_same_agent_actors(tmp_path):
    root = tmp_path / "runs"
    config = RunConfig(time_budget_s=30, tracks=("traditional",), agents={"replicas": {"modeling_coder": 2}})
    summary = run_batch(_tasks(tmp_path), root, config, max_concurrent=2)

    assert summary["ok"] == 3
    per_run = []
    for name in ("comp1", "comp2", "comp3"):
        actors = _report(root, name)["actors"]
        per_run.append({agent: [row["actor_id"] for row in rows] for agent, rows in actors["agents"].items()})
        # This competition called the agents it needs, and they say so.
        served = {agent: sum(row["calls_for_this_competition"] for row in rows)
                  for agent, rows in actors["agents"].items()}
        assert served["task_analyzer"] == 1 and served["profiler"] == 1 and served["evaluator"] >= 1
        assert actors["coordinator"]
    # One actor id per agent (two for the replicated one), the same in every report.
    assert per_run[0] == per_run[1] == per_run[2]
    assert set(per_run[0]) == set(AGENTS) and len(per_run[0]["modeling_coder"]) == 2
    assert all(len(ids) == 1 for agent, ids in per_run[0].items() if agent != "modeling_coder")
    # The number of agent actors is the pool's, not a multiple of the competitions: 10 agents, one of them twice.
    key = summary["actors"]["pool"]["key"]
    alive = {name: i for name, i in _agent_actors().items() if key in name}      # this batch's pool
    ids = {i for ids in per_run[0].values() for i in ids}
    assert len(ids) == len(AGENTS) + 1 and ids <= set(alive.values())
    assert len(alive) == len(AGENTS) + 1
    batch_agents = summary["actors"]["agents"]
    assert {a: [r["actor_id"] for r in rows] for a, rows in batch_agents.items()} == per_run[0]
    assert batch_agents["task_analyzer"][0]["calls"] == 3 and batch_agents["task_analyzer"][0]["competitions"] == 3


def test_an_agent_actor_killed_mid_batch_comes_back_and_the_batch_ends_valid(tmp_path):
    import ray

    from iml_ray.run.agent_pool import job_pool, pool_settings

    root = tmp_path / "runs"
    config = RunConfig(time_budget_s=30, tracks=("traditional", "custom_nn"), agents={"max_restarts": 2})
    evaluator_name = job_pool(pool_settings([config])).actor_name("evaluator", 0)
    killed: dict = {}

    def kill_the_evaluator_once_a_track_is_running():
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                stages = json.loads((root / "comp1" / "state.json").read_text()).get("stages", {})
            except (OSError, ValueError):
                stages = {}
            if "holdout" in stages:            # comp1 is exploring: its tracks call the evaluator
                handle = ray.get_actor(evaluator_name, namespace="iml-ray")
                killed["pid"] = ray.get(handle.stats.remote())["pid"]
                ray.kill(handle, no_restart=False)
                killed["name"] = evaluator_name
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_the_evaluator_once_a_track_is_running, daemon=True)
    killer.start()
    summary = run_batch(_tasks(tmp_path), root, config, max_concurrent=2)
    killer.join(timeout=5)

    assert killed.get("name"), "the evaluator was never killed: the test proved nothing"
    assert summary["ok"] == 3, summary["competitions"]
    for name in ("comp1", "comp2", "comp3"):
        assert (root / name / "submission.csv").is_file() and _report(root, name)["status"] == "ok"
    # The same actor, restarted: a new process behind the same name and id, serving every competition after.
    evaluator = summary["actors"]["agents"]["evaluator"][0]
    assert evaluator["name"] == killed["name"] and evaluator["pid"] != killed["pid"]
    assert {_report(root, n)["actors"]["agents"]["evaluator"][0]["actor_id"] for n in ("comp1", "comp2", "comp3")} \
        == {evaluator["actor_id"]}


def test_a_new_ray_session_in_the_same_process_gets_new_agents(tmp_path):
    """Job ids start again at 1 in a new session: the agents of the session before must not be called."""
    import ray

    from iml_ray.run.agent_pool import job_pool, pool_settings

    settings = pool_settings([RunConfig()])
    before = job_pool(settings).handles["evaluator"][0]._actor_id.hex()
    ray.shutdown()
    try:
        next(local_ray(num_cpus=2))             # a new session in this process: its first job is job 1 again
        pool = job_pool(settings)
        assert pool.handles["evaluator"][0]._actor_id.hex() != before
        assert ray.get(pool.handles["evaluator"][0].stats.remote())["calls"] == 0
    finally:
        ray.shutdown()
        next(local_ray(num_cpus=2))             # a cluster again for the module's fixture to shut down


def test_a_competition_starts_a_worker_for_its_first_track_while_it_plans():
    import os

    import ray

    from iml_ray.run.explore import Explorer

    explorer = Explorer(RunConfig(), progress=None, rundir=None, state={}, agents=None, llm=None)
    explorer.start()
    pid, modules = ray.get(explorer.warm_worker, timeout=120)
    # A worker process of the job, not the driver, holding the track's code before any track is launched.
    assert pid != os.getpid()
    assert "iml_ray.track.loop" in modules and "iml_ray.track.job" in modules
    assert ray.get(explorer.coordinator.snapshot.remote(), timeout=120) is not None
