"""The explore phase: every track of the blueprint as a Ray task, gathered by the competition's Coordinator.

A track still running LATE_TRACK_GRACE_S past the tracks' deadline (the budget less
its reserve) is cancelled (its candidate fails, the run goes on); when no track
verified, the target's prior runs through the same sandbox and checks as the
fallback candidate, with at least FALLBACK_MIN_S even when that overruns the budget.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iml_ray.blueprint import Candidate, PrepPlan, TrackPlan
from iml_ray.plan.repairs import Plans
from iml_ray.plan.resources import MIN_TUNE_S, TrackResources, TuneSettings, ray_auth_env
from iml_ray.track.job import TrackJob

if TYPE_CHECKING:
    from iml_ray.config import RunConfig
    from iml_ray.llm.plumbing import LLMPlumbing
    from iml_ray.run.agent_pool import RunAgents
    from iml_ray.run.engine import Planned
    from iml_ray.run.progress import Progress
    from iml_ray.rundir import RunDir

log = logging.getLogger(__name__)

FALLBACK_TRACK = "fallback"     # the target's prior, run only when no track verified
# The least time the prior gets, past the budget if need be: a valid submission is the run's floor. A cold sandboxed
# Python reading the task (pandas, numpy) took 5.4 s here on 2 cores loaded by a second competition, and timed out
# at 3.6 s with what was left of the reserve.
FALLBACK_MIN_S = 10.0
# How long past the tracks' deadline a track still running is waited for before it is cancelled (a stuck worker).
LATE_TRACK_GRACE_S = 5.0


def coder_context(planned: Planned) -> dict:
    """What the coders are told of what the plan phase learned: the Profiler's findings, the advice, the notes."""
    from iml_ray.agents.briefs import labelled_examples

    return {"findings": dict(planned.profile.findings or {}), "advice": planned.knowledge.advice or "",
            "notes": list(planned.blueprint.notes), "examples": labelled_examples(planned.summary)}


class Explorer:
    def __init__(self, config: RunConfig, progress: Progress, rundir: RunDir, state: dict, agents: RunAgents,
                 llm: LLMPlumbing | None):
        self.config = config
        self.progress = progress
        self.rundir = rundir
        self.state = state
        self.agents = agents
        self.llm = llm
        self.coordinator = None
        self.warm_worker = None     # the ref of the process warmed for the first track

    def start(self) -> None:
        """The competition's Coordinator actor and a worker process for its first track, started while the plan
        phase runs (their processes then cost the tracks no wait); the blueprint's metric reaches the Coordinator
        when the tracks are launched. One warm worker, not one per track: on two cores a second process starting
        beside a kept agents' short plan phase slowed the plan more than it saved."""
        from actors import agents as actors
        from actors.track import warm_track_worker

        self.coordinator = actors.Coordinator.remote("", True)
        self.warm_worker = warm_track_worker.remote()

    def explore(self, planned: Planned, deadline: float) -> dict[str, Candidate]:
        """Every track's candidate (resumed ones as they were)."""
        import ray

        from iml_ray.agents.briefs import columns_brief

        columns = columns_brief(planned.profile)
        eval_plan = planned.blueprint.eval
        if self.coordinator is None:
            self.start()
        ray.get(self.coordinator.set_eval.remote(eval_plan.metric, eval_plan.higher_is_better))
        self.progress.phase("exploring tracks")
        track_deadline = deadline - self.config.reserve
        if self.llm is not None:
            ray.get(self.llm.ledger.set_deadline.remote(track_deadline, "before the tracks' deadline"))
        candidates: dict[str, Candidate] = {}
        pending = self._launch(planned, columns, track_deadline, candidates)
        self._gather(pending, candidates, planned, track_deadline)
        self.progress.tracks(ray.get(self.coordinator.snapshot.remote()))
        return candidates

    def fall_back(self, planned: Planned, deadline: float, candidates: dict[str, Candidate]) -> None:
        """When no track verified, the target's prior joins the candidates (in the budget's reserve, or FALLBACK_MIN_S)."""
        if not any(c.status == "verified" for c in candidates.values()) and planned.blueprint.tracks:
            self._record(FALLBACK_TRACK, self._fallback(planned, deadline), candidates)

    def standings(self) -> tuple[tuple[Candidate, ...], Candidate | None]:
        """The Coordinator's leaderboard and its best verified candidate."""
        import ray

        return tuple(ray.get(self.coordinator.leaderboard.remote())), ray.get(self.coordinator.best.remote())

    def _launch(self, planned: Planned, columns: str, track_deadline: float,
                candidates: dict[str, Candidate]) -> dict[Any, str]:
        """One Ray task per track still to run (Ray object ref -> track); a resumed run's verified tracks are kept."""
        import ray

        from actors.track import run_track_task

        pending: dict[Any, str] = {}
        # What the LLM coders are told of the plan phase (the rules' coders read the plans alone).
        context = coder_context(planned) if self.llm is not None else {}
        tracks = [plan.track for plan in planned.blueprint.tracks]
        ray.get(self.coordinator.track_shares.remote({t: planned.resources[t].num_cpus for t in tracks},
                                                     {t: planned.resources[t].waits_for for t in tracks}))
        for plan in planned.blueprint.tracks:
            finished = self.state["candidates"].get(plan.track)
            if finished and finished.get("status") == "verified" and Path(finished.get("pipeline_path") or "").exists():
                log.info("resume: track %s is finished", plan.track)
                candidates[plan.track] = Candidate.from_json(finished)
                ray.get(self.coordinator.report.remote(candidates[plan.track]))
                continue
            share = planned.resources[plan.track]
            # The blueprint was written for the fewest threads any track would have; a track that got more (the
            # trees beside a waiting network, or beside a track the blueprint skipped) uses them.
            plans = Plans(planned.blueprint.prep_for(plan.track), plan, planned.blueprint.train)
            job = TrackJob(summary=planned.summary, contract=planned.contract,
                           plans=plans.with_threads(max(share.threads, plan.num_threads)),
                           code_dir=str(self.rundir.candidate_dir(plan.track)), holdout_path=str(planned.holdout_path),
                           deadline=track_deadline, memory_mb=share.memory_mb, cpus=share.threads,
                           max_rounds=self.config.max_repair_rounds, max_log_bytes=self.config.max_log_bytes,
                           max_disk_mb=self.config.max_candidate_disk_mb, resources=share.to_json(),
                           tune=self._tune_settings(share), columns=columns, allow_network=self.config.allow_network,
                           context=context, waits_for=share.waits_for)
            ref = run_track_task.options(num_cpus=share.num_cpus, num_gpus=share.num_gpus,
                                         max_retries=self.config.track_retries, retry_exceptions=False,
                                         name=f"track:{planned.summary.name}:{plan.track}").remote(
                job, *self.agents.for_track(), self.coordinator, self.llm is not None)
            pending[ref] = plan.track
        return pending

    def _tune_settings(self, share: TrackResources) -> TuneSettings | None:
        if self.config.tune == "off":
            return None
        import ray

        return TuneSettings(address=ray.get_runtime_context().gcs_address, concurrency=share.threads, env=ray_auth_env(),
                            min_seconds=1.0 if self.config.tune == "on" else MIN_TUNE_S)

    def _gather(self, pending: dict[Any, str], candidates: dict[str, Candidate], planned: Planned,
                track_deadline: float) -> None:
        """Collect each track as it finishes; the tracks stop themselves at their deadline, and one still
        running LATE_TRACK_GRACE_S (or half the budget's reserve) past their deadline is cancelled: a stuck worker."""
        import ray

        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                self.progress.tracks(ray.get(self.coordinator.snapshot.remote()))
                for ref in ready:
                    track = pending.pop(ref)
                    self._record(track, self._collect(ref, track, planned.summary.metric), candidates)
                if pending and time.time() > track_deadline + max(LATE_TRACK_GRACE_S, self.config.reserve / 2):
                    for ref, track in list(pending.items()):
                        ray.cancel(ref, force=True)
                        pending.pop(ref)
                        # Recorded like a finished track, so the report's leaderboard shows it and why it failed.
                        self._record(track, Candidate(track=track, code_dir=str(self.rundir.candidate_dir(track)),
                                                      status="failed", metric=planned.summary.metric,
                                                      failure="cancelled: past the time budget"), candidates)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def _record(self, track: str, candidate: Candidate, candidates: dict[str, Candidate]) -> None:
        """A finished track's candidate: to the Coordinator's leaderboard and the run's state."""
        import ray

        candidates[track] = candidate
        ray.get(self.coordinator.report.remote(candidate))
        self.state["candidates"][track] = candidate.to_json()
        self.rundir.save_state(self.state)

    def _collect(self, ref, track: str, metric: str) -> Candidate:
        import ray

        from iml_ray.errors import UserError

        try:
            return ray.get(ref)
        except UserError:
            raise           # the user's error (e.g. --llm-replay without the answer) stops the run
        except ray.exceptions.RayError as exc:
            # A crashed worker fails the candidate, never the run.
            lines = [line for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
            # The first line names the task, the last says what went wrong (the traceback between goes to the log).
            said = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1].strip()}"
            log.error("track %s crashed: %s", track, said)
            log.debug("track %s crashed:\n%s", track, exc)
            return Candidate(track=track, code_dir="", status="failed", metric=metric,
                             failure=f"the Ray task running the track died: {type(exc).__name__}: {said[:500]}")

    def _fallback(self, planned: Planned, deadline: float) -> Candidate:
        """No track verified in time: the target's prior, through the same sandbox and checks, in what is left."""
        import ray

        from actors.track import run_track_task

        self.progress.phase("fallback: the target's prior")
        log.warning("no track produced a verified candidate; writing the prior as a fallback")
        left = deadline - time.time()
        if left < FALLBACK_MIN_S:
            log.warning("the prior gets %.0f s, past the time budget by up to %.0f s, so that the run ends with a "
                        "valid submission", FALLBACK_MIN_S, FALLBACK_MIN_S - max(0.0, left))
            deadline += FALLBACK_MIN_S - left
        plan = TrackPlan(track=FALLBACK_TRACK, models=("prior",), model_template="prior",
                         reasons=("no track produced a verified candidate in time",))
        job = TrackJob(summary=planned.summary, contract=planned.contract,
                       plans=Plans(PrepPlan(), plan, planned.blueprint.train),
                       code_dir=str(self.rundir.candidate_dir(FALLBACK_TRACK)), holdout_path=str(planned.holdout_path),
                       deadline=deadline - 1.0, memory_mb=2048, cpus=1, max_rounds=0, min_round_s=1.0,
                       max_log_bytes=self.config.max_log_bytes, max_disk_mb=self.config.max_candidate_disk_mb,
                       resources={"num_cpus": 0.01, "threads": 1, "num_gpus": 0.0, "memory_mb": 2048})
        ref = run_track_task.options(num_cpus=0.01, name=f"track:{planned.summary.name}:{FALLBACK_TRACK}").remote(
            job, *self.agents.for_track(), self.coordinator)
        try:
            return ray.get(ref, timeout=max(5.0, deadline - time.time() + 5.0))
        except Exception as exc:                      # noqa: BLE001 - the run still ends with its report
            ray.cancel(ref, force=True)
            return Candidate(track=FALLBACK_TRACK, code_dir=job.code_dir, status="failed", metric=planned.summary.metric,
                             failure=f"fallback failed: {type(exc).__name__}: {exc}"[:300])
