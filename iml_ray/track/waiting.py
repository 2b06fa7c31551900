"""A track that waits for others (plan/resources.py: the network for the trees, WAITING_TRACKS; a track too costly
beside the others for all of them, TrackPlan.deferred_encode_s): it starts when they have finished, on the CPUs they
freed, or ends unrun when they used the time budget or left too little for its encoding."""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from iml_ray.blueprint import Candidate
from iml_ray.plan.encoding_cost import ENCODE_BUDGET_SHARE
from iml_ray.track.improve import threads_handed_on
from iml_ray.track.job import TrackJob

log = logging.getLogger(__name__)

POLL_S = 0.5
# Ray's count of free CPUs lags a task's return (the raylets report to the GCS periodically; longer on a loaded
# machine): a track that read it at once started on one thread beside a free CPU (CI's end-to-end test).
FREED_GRACE_S = 3.0


def wait_for_peers(job: TrackJob, coordinator: Any, poll_s: float = POLL_S) -> tuple[TrackJob, Candidate | None]:
    """Block until every track of job.waits_for has finished (the Coordinator has its candidate). Then the job
    runs on the CPUs the Coordinator hands it (cpus_for: the finished tracks' share, as far as the cluster has it
    free), its plans with as many threads. A "not_run" candidate instead when less than a round's time is left, or
    when a track deferred for its encoding's cost (TrackPlan.deferred_encode_s) would not encode on those threads
    within ENCODE_BUDGET_SHARE of the time left."""
    if not job.waits_for or coordinator is None:
        return job, None
    started = time.time()
    said = " and ".join(job.waits_for)
    while not _finished(coordinator, job.waits_for):
        if job.deadline - time.time() < job.min_round_s:
            return job, _not_run(job, started, f"not run: waited for {said}, which used the time budget")
        time.sleep(poll_s)
    threads = _threads_once_freed(coordinator, job.plans.track.track, job.cpus, poll_s)
    encode_s, left = job.plans.track.deferred_encode_s / max(1, threads), job.deadline - time.time()
    if encode_s > ENCODE_BUDGET_SHARE * left:
        return job, _not_run(job, started, f"not run: waited for {said}; encoding would then take about "
                                           f"{encode_s:.0f} s on {threads} threads, more than "
                                           f"{ENCODE_BUDGET_SHARE:.0%} of the {max(0.0, left):.0f} s left")
    log.info("track %s starts after %s, on %d threads", job.plans.track.track, said, threads)
    plans = job.plans.with_threads(max(threads, job.plans.track.num_threads))
    tune = dataclasses.replace(job.tune, concurrency=threads) if job.tune is not None else None
    return dataclasses.replace(job, cpus=threads, plans=plans, tune=tune), None


def _not_run(job: TrackJob, started: float, why: str) -> Candidate:
    log.info("track %s %s", job.plans.track.track, why)
    now = time.time()
    return Candidate(track=job.plans.track.track, code_dir=job.code_dir, status="not_run", metric=job.summary.metric,
                     failure=why, wall_s=round(now - started, 2), started_at=started, finished_at=now,
                     resources=job.resources)


def _finished(coordinator: Any, tracks: tuple[str, ...]) -> bool:
    try:
        return bool(coordinator.finished(list(tracks)))
    except Exception:                   # noqa: BLE001 - better to start now than to wait blind
        log.debug("the Coordinator could not say which tracks finished", exc_info=True)
        return True


def _threads_once_freed(coordinator: Any, track: str, own: int, poll_s: float) -> int:
    """The threads the Coordinator hands on, once the cluster shows the finished tracks' CPUs free, or what it shows
    after FREED_GRACE_S (another competition of a batch may have taken them)."""
    threads = threads_handed_on(coordinator, track, own)
    try:
        promised = max(own, int(round(float(coordinator.cpus_for(track, as_free=False)))))
    except Exception:                   # noqa: BLE001 - what the cluster shows now will do
        log.debug("the Coordinator could not say what the finished tracks held", exc_info=True)
        return threads
    give_up = time.time() + FREED_GRACE_S
    while threads < promised and time.time() < give_up:
        time.sleep(poll_s)
        threads = threads_handed_on(coordinator, track, own)
    return threads
