"""One competition through the three phases, on Ray.

plan:     TaskAnalyzer → Profiler → KnowledgeRetriever → GuidelineAgent (blueprint + contract)
explore:  one Ray task per track: code → sandbox → verify → repair → Candidate
finish:   Coordinator ranks the verified candidates by the Evaluator's scores;
          the winner's pipeline and submission become <out>/pipeline.py and <out>/submission.csv.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .blueprint import Blueprint, Candidate, InterfaceContract
from .candidate import TrackJob
from .config import RunConfig
from .contract import check_submission
from .knowledge.retriever import Knowledge
from .profile import Profile
from .progress import LogProgress, Progress
from .rules.debugger import Plans
from .rundir import RunDir, atomic_copy, atomic_write_json
from .resources import MIN_TUNE_S, PLAN_LLM_SHARE, TRIAL_CPUS, TUNE_SHARE, TrackResources, plan_resources, ray_auth_env
from .run_report import build_report, write_html_report
from .task import TaskSummary
from .task_inference import check_task

log = logging.getLogger(__name__)

FALLBACK_TRACK = "fallback"     # the target's prior, run only when no track verified


@dataclass(frozen=True)
class RunResult:
    out: Path
    status: str                       # "ok" | "failed"
    summary: TaskSummary
    best: Candidate | None
    leaderboard: tuple[Candidate, ...]
    report: dict[str, Any]

    @property
    def submission(self) -> Path:
        return self.out / "submission.csv"

    @property
    def pipeline(self) -> Path:
        return self.out / "pipeline.py"


# ------------------------------------------------------------------ Ray


@contextlib.contextmanager
def ray_session() -> Iterator[None]:
    """Join RAY_ADDRESS when set, else start a local cluster bound to 127.0.0.1."""
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        # Read when ray is imported: without it Ray binds the GCS to the machine's other
        # address even when told 127.0.0.1 for the node.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        yield
        return
    quiet = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    logging.getLogger("ray").setLevel(logging.ERROR)
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(_node_ip_address="127.0.0.1", **quiet)
    try:
        yield
    finally:
        ray.shutdown()


# ------------------------------------------------------------------ the run


class Run:
    def __init__(self, task_dir: str | Path, out: str | Path, config: RunConfig, *, resume: bool = False,
                 force: bool = False, progress: Progress | None = None, cluster_share: float = 1.0):
        self.task_dir = Path(task_dir)
        # The fraction of the cluster this competition plans its tracks with: a batch running N
        # competitions at once gives each 1/N, so no competition's tracks queue behind another's
        # while its own clock runs.
        self.cluster_share = cluster_share
        self.out = Path(out)
        self.config = config
        self.resume = resume
        self.force = force
        self.progress = progress or LogProgress(config.time_budget_s)
        self.timings: dict[str, float] = {}

    def _tune_settings(self, share: TrackResources) -> dict | None:
        if self.config.tune == "off":
            return None
        import ray

        return {"address": ray.get_runtime_context().gcs_address, "concurrency": share.threads, "trial_threads": 1,
                "trial_cpus": TRIAL_CPUS, "trials": 64, "share": TUNE_SHARE,
                "min_seconds": 1.0 if self.config.tune == "on" else MIN_TUNE_S, "env": ray_auth_env()}

    def execute(self) -> RunResult:
        started = time.time()
        deadline = started + self.config.time_budget_s
        files = check_task(self.task_dir)          # bad input fails here, before anything is written
        from .sandbox import containment

        containment()                               # says at start-up when this kernel allows less isolation
        rundir = RunDir.check(self.out, self.resume, self.force)
        self.progress.phase("starting Ray")
        with ray_session():
            self.timings["ray_start"] = round(time.time() - started, 2)
            state = rundir.load_state() if self.resume else {"stages": {}, "candidates": {}}
            state.setdefault("stages", {})
            state.setdefault("candidates", {})
            try:
                return self._run(rundir, state, str(files.root), started, deadline)
            except Exception as exc:
                from .llm.errors import CacheMiss

                if isinstance(exc, CacheMiss):
                    # Strict replay was asked for: a run that would need a new answer stops, loudly.
                    from .errors import ConfigError

                    first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no cached answer"
                    raise ConfigError(f"--llm-replay: {first.split('CacheMiss: ')[-1]}",
                                      "Replay only what an earlier run with the same task, flags and models asked; "
                                      "drop --llm-replay to call the endpoint.") from None
                raise
            except KeyboardInterrupt:
                if (rundir.root / "state.json").exists():
                    state["interrupted"] = time.time()
                    rundir.save_state(state)
                raise

    def _run(self, rundir: RunDir, state: dict, task_root: str, started: float, deadline: float) -> RunResult:
        import ray

        from actors import agents as actors
        from actors.llm import llm_plumbing, llm_report, llm_server_resources

        policy = self.config.policy
        llm = llm_plumbing(self.config.llm, self.config.max_llm_rewrites, policy,
                           load_wait_s=min(60.0, 0.15 * self.config.time_budget_s)) if policy != "rules" else None
        # The tracks call the agents at once: their calls run in the host's threads (LLM calls wait on the
        # endpoint, and the endpoint's limiter bounds them across the cluster).
        threads = max(8, 2 * llm["settings"]["concurrency"], 2 * llm["settings"]["local_max_batch"]) if llm else 8
        if llm:
            # The plan phase's LLM calls stop at their share of the budget: the tracks need the rest.
            ray.get(llm["ledger"].set_deadline.remote(started + PLAN_LLM_SHARE * self.config.time_budget_s,
                                                      "in the plan phase (its share of the time budget is used)"))
        host = actors.AgentHost.options(max_concurrency=threads).remote(policy, llm)

        def agent(name: str):
            return actors.HostedAgent(host, name)

        analyzer = agent("task_analyzer")
        # The analysis reads all the data and may still find it unusable (a constant
        # target, ...): it runs before the output directory is touched.
        analysis = None
        description = None
        if self.config.strip_description:
            from .task_inference import STRIPPED_DESCRIPTION

            description = STRIPPED_DESCRIPTION
        if "task_summary" not in state["stages"]:
            self.progress.phase("task summary")
            t0 = time.time()
            analysis = ray.get(analyzer.analyze.remote(task_root, description))
            self.timings["task_summary"] = round(time.time() - t0, 2)
        rundir.prepare(force=self.force)
        state["config"] = self.config.to_json()
        state["task_dir"] = task_root
        rundir.save_state(state)
        profiler = agent("profiler")
        retriever = agent("knowledge_retriever")
        guideline = agent("guideline")
        prep_coder = agent("preprocessing_coder")
        model_coder = agent("modeling_coder")
        assembler = agent("assembler")
        error_analyzer = agent("error_analyzer")
        debugger = agent("debugger")
        evaluator = agent("evaluator")
        llm_agents = (analyzer, profiler, retriever, guideline, prep_coder, model_coder, error_analyzer, debugger)

        def stage(name: str, compute, encode, decode):
            if name in state["stages"] and (rundir.plan / f"{name}.json").exists():
                log.info("resume: %s is finished, loading it", name)
                return decode(rundir.read_plan(name))
            self.progress.phase(name.replace("_", " "))
            t0 = time.time()
            value = compute()
            rundir.write_plan(name, encode(value))
            self.timings.setdefault(name, round(time.time() - t0, 2))
            state["stages"][name] = {"finished": time.time(), "seconds": self.timings[name]}
            rundir.save_state(state)
            return value

        summary: TaskSummary = stage("task_summary", lambda: analysis, TaskSummary.to_json, TaskSummary.from_json)
        for field_name, how in summary.inferred.items():
            log.info("%s — %s", field_name, how)
        profile: Profile = stage("profile", lambda: ray.get(profiler.profile.remote(summary, str(rundir.plan / "profiling"))),
                                 Profile.to_json, Profile.from_json)
        knowledge: Knowledge = stage("knowledge", lambda: ray.get(retriever.retrieve.remote(summary, profile, self.config.tracks)),
                                     Knowledge.to_json, Knowledge.from_json)
        cluster = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        for held in llm_server_resources(llm, cluster):
            # A local model's server holds its share for the whole job: planning with it would queue a track.
            cluster["CPU"] = max(0.01, cluster.get("CPU", 1.0) - held["num_cpus"])
            cluster["GPU"] = max(0.0, cluster.get("GPU", 0.0) - held["num_gpus"])
        cluster = {k: v * self.cluster_share for k, v in cluster.items()}
        resources = plan_resources(self.config.tracks, self.config, cluster, self.cluster_share)
        threads = min(r.threads for r in resources.values())
        planned: list = []

        def plan_once():
            if not planned:
                remaining = deadline - self.config.reserve_s - time.time()
                planned.extend(ray.get(guideline.plan.remote(summary, profile, knowledge, self.config.tracks,
                                                             self.config.seed, self.config.holdout_fraction, threads,
                                                             remaining, self.config.allow_network)))
            return planned

        blueprint: Blueprint = stage("blueprint", lambda: plan_once()[0], Blueprint.to_json, Blueprint.from_json)
        contract: InterfaceContract = stage("contract", lambda: plan_once()[1], InterfaceContract.to_json,
                                            InterfaceContract.from_json)
        stage("holdout", lambda: _holdout(summary, blueprint), lambda rows: [int(r) for r in rows], list)
        holdout_path = rundir.plan / "holdout.json"

        from .llm.policy import columns_brief

        columns = columns_brief(profile)
        coordinator = actors.Coordinator.remote(blueprint.eval.metric, blueprint.eval.higher_is_better)
        self.progress.phase("exploring tracks")
        explore_started = time.time()
        track_deadline = deadline - self.config.reserve_s
        if llm:
            ray.get(llm["ledger"].set_deadline.remote(track_deadline, "before the tracks' deadline"))
        pending: dict[Any, str] = {}
        candidates: dict[str, Candidate] = {}
        for plan in blueprint.tracks:
            finished = state["candidates"].get(plan.track)
            if finished and finished.get("status") == "verified" and Path(finished.get("pipeline_path") or "").exists():
                log.info("resume: track %s is finished", plan.track)
                candidates[plan.track] = Candidate.from_json(finished)
                ray.get(coordinator.report.remote(candidates[plan.track]))
                continue
            share = resources[plan.track]
            job = TrackJob(summary=summary, contract=contract,
                           plans=Plans(blueprint.prep_for(plan.track), plan, blueprint.train),
                           code_dir=str(rundir.candidate_dir(plan.track)), holdout_path=str(holdout_path),
                           deadline=track_deadline, memory_mb=share.memory_mb, cpus=share.threads,
                           max_rounds=self.config.max_repair_rounds, max_log_bytes=self.config.max_log_bytes,
                           max_disk_mb=self.config.max_candidate_disk_mb, resources=share.to_json(),
                           tune=self._tune_settings(share), columns=columns, allow_network=self.config.allow_network)
            from actors.track import run_track_task

            ref = run_track_task.options(num_cpus=share.num_cpus, num_gpus=share.num_gpus,
                                         max_retries=self.config.track_retries, retry_exceptions=False,
                                         name=f"track:{summary.name}:{plan.track}").remote(
                job, prep_coder, model_coder, assembler, error_analyzer, debugger, evaluator, coordinator, llm is not None)
            pending[ref] = plan.track

        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                self.progress.tracks(ray.get(coordinator.snapshot.remote()))
                for ref in ready:
                    track = pending.pop(ref)
                    candidates[track] = self._collect(ref, track, summary)
                    ray.get(coordinator.report.remote(candidates[track]))
                    state["candidates"][track] = candidates[track].to_json()
                    rundir.save_state(state)
                # The tracks stop themselves at their deadline; this only catches a stuck worker, within
                # the budget's reserve so that the run still ends inside its budget.
                if pending and time.time() > track_deadline + self.config.reserve_s / 2:
                    for ref, track in list(pending.items()):
                        ray.cancel(ref, force=True)
                        candidates[track] = Candidate(track=track, code_dir=str(rundir.candidate_dir(track)), status="failed",
                                                      metric=summary.metric, failure="cancelled: past the time budget")
                        state["candidates"][track] = candidates[track].to_json()
                        pending.pop(ref)
                    rundir.save_state(state)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        self.progress.tracks(ray.get(coordinator.snapshot.remote()))
        self.timings["explore"] = round(time.time() - explore_started, 2)
        if not any(c.status == "verified" for c in candidates.values()) and blueprint.tracks:
            candidates[FALLBACK_TRACK] = self._fallback(summary, contract, blueprint, rundir, holdout_path, deadline,
                                                        (prep_coder, model_coder, assembler, error_analyzer, debugger,
                                                         evaluator, coordinator))
            ray.get(coordinator.report.remote(candidates[FALLBACK_TRACK]))
            state["candidates"][FALLBACK_TRACK] = candidates[FALLBACK_TRACK].to_json()
            rundir.save_state(state)

        self.progress.phase("finishing")
        leaderboard = tuple(ray.get(coordinator.leaderboard.remote()))
        best = ray.get(coordinator.best.remote())
        status = "failed"
        ensemble = None
        if best is not None:
            problems = check_submission(Path(best.submission_path), summary)
            if problems:
                log.error("the chosen candidate's submission fails verification: %s", problems[0])
            else:
                ensemble = self._stack(summary, leaderboard, rundir) if self.config.ensemble == "stack" else None
                if ensemble is None or not ensemble.kept:
                    atomic_copy(Path(best.pipeline_path), rundir.root / "pipeline.py")
                    atomic_copy(Path(best.submission_path), rundir.root / "submission.csv")
                status = "ok"
        self.timings["total"] = round(time.time() - started, 2)
        report = build_report(status, summary, profile, knowledge, blueprint, leaderboard, best if status == "ok" else None,
                              self.timings, self.config, rundir, started)
        report["resources"] = {t: r.to_json() for t, r in resources.items() if t in {p.track for p in blueprint.tracks}}
        from .sandbox import containment

        report["sandbox"] = {"containment": containment().describe(), "network_allowed": self.config.allow_network}
        if llm is not None:
            report["llm"] = llm_report(llm, llm_agents)
        if ensemble is not None:
            report["ensemble"] = ensemble.to_json()
            if ensemble.kept and status == "ok":
                from .evaluate import aps

                report["chosen"] = {"track": "ensemble", "valid_score": ensemble.blend_score,
                                    "aps": aps(summary.metric, ensemble.blend_score), "weights": ensemble.weights,
                                    "pipeline": str(rundir.root / "pipeline.py"), "scored": "cross-fitted on the holdout"}
        atomic_write_json(rundir.root / "report.json", report)
        state["finished"] = time.time()
        state["status"] = status
        rundir.save_state(state)
        write_html_report(rundir.root)
        self.progress.phase(f"done: {status}")
        return RunResult(rundir.root, status, summary, best if status == "ok" else None, leaderboard, report)

    def _fallback(self, summary: TaskSummary, contract: InterfaceContract, blueprint: Blueprint, rundir: RunDir,
                  holdout_path: Path, deadline: float, agents: tuple) -> Candidate:
        """No track verified in time: the target's prior, through the same sandbox and checks, in the budget's reserve."""
        import ray

        from actors.track import run_track_task

        from .blueprint import PrepPlan, TrackPlan

        self.progress.phase("fallback: the target's prior")
        log.warning("no track produced a verified candidate; writing the prior as a fallback")
        plan = TrackPlan(track=FALLBACK_TRACK, models=("prior",), model_template="prior",
                         reasons=("no track produced a verified candidate in time",))
        job = TrackJob(summary=summary, contract=contract, plans=Plans(PrepPlan(), plan, blueprint.train),
                       code_dir=str(rundir.candidate_dir(FALLBACK_TRACK)), holdout_path=str(holdout_path),
                       deadline=deadline - 1.0, memory_mb=2048, cpus=1, max_rounds=0, min_round_s=1.0,
                       max_log_bytes=self.config.max_log_bytes, max_disk_mb=self.config.max_candidate_disk_mb,
                       resources={"num_cpus": 0.01, "threads": 1, "num_gpus": 0.0, "memory_mb": 2048})
        ref = run_track_task.options(num_cpus=0.01, name=f"track:{summary.name}:{FALLBACK_TRACK}").remote(job, *agents)
        try:
            return ray.get(ref, timeout=max(5.0, deadline - time.time() + 5.0))
        except Exception as exc:                      # noqa: BLE001 - the run still ends with its report
            ray.cancel(ref, force=True)
            return Candidate(track=FALLBACK_TRACK, code_dir=job.code_dir, status="failed", metric=summary.metric,
                             failure=f"fallback failed: {type(exc).__name__}: {exc}"[:300])

    def _stack(self, summary: TaskSummary, leaderboard: tuple[Candidate, ...], rundir: RunDir):
        """--ensemble stack (ensemble.stack_candidates), timed as its own phase."""
        from .ensemble import stack_candidates

        self.progress.phase("stacking")
        t0 = time.time()
        fit = stack_candidates(summary, leaderboard, rundir.root, self.config.seed)
        self.timings["stack"] = round(time.time() - t0, 2)
        return fit

    def _collect(self, ref, track: str, summary: TaskSummary) -> Candidate:
        import ray

        from .llm.errors import CacheMiss

        try:
            return ray.get(ref)
        except CacheMiss:
            raise
        except ray.exceptions.RayError as exc:
            # A crashed worker fails the candidate, never the run.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.error("track %s crashed: %s", track, first)
            return Candidate(track=track, code_dir="", status="failed", metric=summary.metric,
                             failure=f"the Ray task running the track died: {type(exc).__name__}: {first[:300]}")


def _holdout(summary: TaskSummary, blueprint: Blueprint) -> list[int]:
    from .evaluate import make_holdout

    return [int(r) for r in make_holdout(summary, blueprint.train.holdout_fraction, blueprint.train.seed)]


def run_competition(task_dir: str | Path, out: str | Path, config: RunConfig | None = None, **kwargs: Any) -> RunResult:
    return Run(task_dir, out, config or RunConfig(), **kwargs).execute()
