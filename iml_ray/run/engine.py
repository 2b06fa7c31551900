"""One competition through its phases, on Ray.

plan:     TaskAnalyzer → Profiler → KnowledgeRetriever → GuidelineAgent (blueprint + contract) → holdout
explore:  one Ray task per track: code → sandbox → verify → repair → Candidate (run/explore.py)
finish:   the Coordinator ranks the verified candidates by the Evaluator's scores; the winner's (or the
          stacked blend's) pipeline and submission become <out>/pipeline.py and <out>/submission.csv
report:   report.json, report.html and the final state
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from iml_ray.blueprint import Blueprint, Candidate, InterfaceContract
from iml_ray.config import RunConfig
from iml_ray.errors import UserError
from iml_ray.plan.knowledge import Knowledge
from iml_ray.plan.resources import PLAN_LLM_SHARE, TrackResources, plan_resources, trees_lead_on, waiting_tracks
from iml_ray.report.run_report import build_report, write_html_report
from iml_ray.run.agent_pool import PLAN_AGENTS, TRACK_AGENTS, PoolSettings, RunAgents, job_pool, pool_settings
from iml_ray.run.explore import Explorer
from iml_ray.run.progress import LogProgress, Progress
from iml_ray.run.ray_session import ray_session
from iml_ray.run.stages import Stages
from iml_ray.rundir import UNPACKED, RunDir, atomic_copy, atomic_write_json
from iml_ray.safety.contract import check_submission
from iml_ray.task.files import TaskSummary
from iml_ray.task.inference import check_task
from iml_ray.task.profile import Profile

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RunResult:
    out: Path
    status: Literal["ok", "failed"]
    summary: TaskSummary
    best: Candidate | None
    leaderboard: tuple[Candidate, ...]
    report: dict[str, Any]

    @property
    def submission(self) -> Path:
        return self.out / "submission.csv"


@dataclass(frozen=True)
class Planned:
    """What the plan phase decided: the artifacts in <out>/plan/ and each track's share of the cluster."""

    summary: TaskSummary
    profile: Profile
    knowledge: Knowledge
    blueprint: Blueprint
    contract: InterfaceContract
    holdout_path: Path
    resources: dict[str, TrackResources]


@dataclass(frozen=True)
class Finished:
    """What the finish phase chose."""

    status: Literal["ok", "failed"]
    leaderboard: tuple[Candidate, ...]
    best: Candidate | None
    ensemble: Any = None              # ensemble.EnsembleFit when --ensemble stack ran
    coordinator: str | None = None    # the Coordinator actor's id


class Run:
    def __init__(self, task_dir: str | Path, out: str | Path, config: RunConfig, *, resume: bool = False,
                 force: bool = False, progress: Progress | None = None, cluster_share: float = 1.0,
                 agent_pool: PoolSettings | None = None):
        self.task_dir = Path(task_dir)
        # The job's agents: a batch's driver settles one pool for all its competitions.
        self.agent_pool = agent_pool
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

    def execute(self) -> RunResult:
        started = time.time()
        deadline = started + self.config.time_budget_s
        files = check_task(self.task_dir)          # bad input fails here, before anything is written
        from iml_ray.llm.settings import check_run_llm
        from iml_ray.safety.sandbox import containment

        check_run_llm(self.config.policy, self.config.llm)
        pool = self.agent_pool or pool_settings([self.config])       # a wrong agents: section fails here
        containment()                               # says at start-up when this kernel allows less isolation
        rundir = RunDir.check(self.out, self.resume, self.force)
        fresh = not rundir.root.exists()
        try:
            task_root = self._unpacked(files, rundir)
            self.progress.phase("starting Ray")
            with ray_session():
                self.timings["ray_start"] = round(time.time() - started, 2)
                state = rundir.load_state() if self.resume else {"stages": {}, "candidates": {}}
                state.setdefault("stages", {})
                state.setdefault("candidates", {})
                try:
                    return self._run(rundir, state, task_root, started, deadline, pool)
                except KeyboardInterrupt:
                    if (rundir.root / "state.json").exists():
                        state["interrupted"] = time.time()
                        rundir.save_state(state)
                    raise
        except UserError:
            # Bad input found while unpacking or analysing leaves no output behind, not even the unpacked copy.
            if fresh and not (rundir.root / "state.json").exists():
                shutil.rmtree(rundir.root, ignore_errors=True)
            raise

    def _unpacked(self, files, rundir: RunDir) -> str:
        """The task directory the run reads: the task's own, or a copy with its zipped folders unpacked
        into <out>/unpacked (the task directory is never written)."""
        if not files.archives:
            return str(files.root)
        from iml_ray.task.archives import unpack_task

        dest = rundir.root / UNPACKED
        if self.force and not self.resume:
            shutil.rmtree(dest, ignore_errors=True)
        self.progress.phase("unpacking " + ", ".join(a.name for a in files.archives.values()))
        t0 = time.time()
        root = unpack_task(files.root, files.archives, dest)
        self.timings["unpack"] = round(time.time() - t0, 2)
        return str(root)

    def _run(self, rundir: RunDir, state: dict, task_root: str, started: float, deadline: float,
             pool: PoolSettings) -> RunResult:
        llm = self._start_llm(started)
        agents = self._agents(pool, rundir, llm)
        explorer = Explorer(self.config, self.progress, rundir, state, agents, llm)
        explorer.start()
        planned = self._plan(agents, llm, rundir, state, task_root)
        explore_started = time.time()
        candidates = explorer.explore(planned, deadline)
        self.timings["explore"] = round(time.time() - explore_started, 2)
        explorer.fall_back(planned, deadline, candidates)
        finished = dataclasses.replace(self._finish(planned, explorer, rundir),
                                       coordinator=explorer.coordinator._actor_id.hex())
        return self._report(planned, finished, llm, agents, rundir, state, started)

    def _agents(self, pool: PoolSettings, rundir: RunDir, llm) -> RunAgents:
        """The job's agents (started by the job's first competition, found by the others) bound to this competition;
        its heavy agent calls may hold up to one CPU of its part of the cluster."""
        import ray

        from iml_ray.agents.server import AgentContext

        t0 = time.time()
        cpus = max(0.01, min(1.0, ray.cluster_resources().get("CPU", 1.0) * self.cluster_share))
        agents = RunAgents(job_pool(pool, first=("task_analyzer",)),
                           AgentContext(str(rundir.root), self.config.policy, llm, round(cpus, 2)))
        self.timings["agents"] = round(time.time() - t0, 2)
        return agents

    def _start_llm(self, started: float):
        """The LLM plumbing of this competition (None under the rules policy); the plan phase's LLM calls
        stop at their share of the budget, so the tracks keep the rest."""
        if self.config.policy == "rules":
            return None
        import ray

        from actors.llm import llm_plumbing

        llm = llm_plumbing(self.config.llm, self.config.max_llm_rewrites, self.config.policy,
                           load_wait_s=min(60.0, 0.15 * self.config.time_budget_s))
        ray.get(llm.ledger.set_deadline.remote(started + PLAN_LLM_SHARE * self.config.time_budget_s,
                                               "in the plan phase (its share of the time budget is used)"))
        return llm

    def _plan(self, agents: RunAgents, llm, rundir: RunDir, state: dict, task_root: str) -> Planned:
        import ray

        # The analysis reads all the data and may still find it unusable (a constant target, ...):
        # it runs before the output directory is touched.
        analysis = self._analyze(agents, state, task_root)
        rundir.prepare(force=self.force)
        state["config"] = self.config.to_json()
        state["task_dir"] = task_root
        rundir.save_state(state)
        stages = Stages(rundir, state, self.progress, self.timings)
        summary = stages.stage("task_summary", lambda: analysis, TaskSummary.to_json, TaskSummary.from_json)
        for field_name, how in summary.inferred.items():
            log.info("%s — %s", field_name, how)
        profile = stages.stage("profile", lambda: ray.get(agents["profiler"].profile.remote(
            summary, str(rundir.plan / "profiling"))), Profile.to_json, Profile.from_json)
        knowledge = stages.stage("knowledge", lambda: ray.get(agents["knowledge_retriever"].retrieve.remote(
            summary, profile, self.config.tracks)), Knowledge.to_json, Knowledge.from_json)
        resources = self._track_resources(llm)
        threads = min(r.threads for r in resources.values())
        # What one track holds once the others have stopped: all the competition's CPUs, unless the configuration
        # fixes each track's.
        alone = None if self.config.cpus_per_track else sum(r.num_cpus for r in resources.values())
        planned: list = []

        def plan_once() -> list:
            if not planned:
                planned.extend(ray.get(agents["guideline"].plan.remote(
                    summary, profile, knowledge, self.config.tracks, self.config.seed, self.config.holdout_fraction,
                    threads, self.config.plan_budget, self.config.allow_network,
                    max((r.num_gpus for r in resources.values()), default=0.0),
                    min(r.num_cpus for r in resources.values()), alone)))
            return planned

        blueprint = stages.stage("blueprint", lambda: plan_once()[0], Blueprint.to_json, Blueprint.from_json)
        contract = stages.stage("contract", lambda: plan_once()[1], InterfaceContract.to_json, InterfaceContract.from_json)
        stages.stage("holdout", lambda: _holdout(summary, blueprint), lambda held: held, lambda held: held)
        running = tuple(plan.track for plan in blueprint.tracks)
        trees_lead = trees_lead_on(blueprint.prep)
        deferred = tuple(plan.track for plan in blueprint.tracks if plan.deferred_encode_s)
        if running and (set(running) != set(resources) or trees_lead or deferred):
            # A track the blueprint skipped (no text or images for a pretrained encoder) leaves its share to the
            # others; where the trees and the linear model lead, with few CPUs the network waits for them; a track
            # too costly beside the others waits for them all.
            resources = self._track_resources(llm, running, trees_lead, deferred)
        return Planned(summary, profile, knowledge, blueprint, contract, rundir.plan / "holdout.json", resources)

    def _analyze(self, agents: RunAgents, state: dict, task_root: str) -> TaskSummary | None:
        """The TaskAnalyzer's summary; None when a resumed run has one already."""
        if "task_summary" in state["stages"]:
            return None
        import ray

        from iml_ray.task.inference import STRIPPED_DESCRIPTION

        description = STRIPPED_DESCRIPTION if self.config.strip_description else None
        self.progress.phase("task summary")
        t0 = time.time()
        ref = agents["task_analyzer"].analyze.remote(task_root, description)
        # The agents' processes start in the order the run needs them: the plan's while the task is analysed, the
        # PreprocessingCoder (a track's first call) while it is planned, the other track agents as the tracks launch
        # (their first calls come after the prep module has run). On a small machine processes starting at once
        # hold up the one the run waits for.
        agents.started("task_analyzer")
        agents.start_all(PLAN_AGENTS)
        analysis = ray.get(ref)
        agents.start_all(PLAN_AGENTS + TRACK_AGENTS[:1])
        self.timings["task_summary"] = round(time.time() - t0, 2)
        return analysis

    def _track_resources(self, llm, tracks: tuple[str, ...] | None = None, trees_lead: bool = False,
                         deferred: tuple[str, ...] = ()) -> dict[str, TrackResources]:
        """Each track's share of this competition's part of the cluster, net of what local model servers hold
        (tracks: those that will run; the configured ones by default; trees_lead: trees_lead_on(the prep);
        deferred: tracks planned to wait for all the others)."""
        import ray

        from actors.llm import llm_server_resources

        cluster = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        for held in llm_server_resources(llm, cluster):
            # A local model's server holds its share for the whole job: planning with it would queue a track.
            cluster["CPU"] = max(0.01, cluster.get("CPU", 1.0) - held["num_cpus"])
            cluster["GPU"] = max(0.0, cluster.get("GPU", 0.0) - held["num_gpus"])
        cluster = {k: v * self.cluster_share for k, v in cluster.items()}
        tracks = tracks or self.config.tracks
        waiting = waiting_tracks(tracks, self.config, cluster, trees_lead, deferred)
        return plan_resources(tracks, self.config, cluster, self.cluster_share, waiting)

    def _finish(self, planned: Planned, explorer: Explorer, rundir: RunDir) -> Finished:
        """The best verified candidate (or a stacked blend that beats it) becomes the run's answer."""
        self.progress.phase("finishing")
        leaderboard, best = explorer.standings()
        if best is None:
            return Finished("failed", leaderboard, None)
        problems = check_submission(Path(best.submission_path), planned.summary)
        if problems:
            log.error("the chosen candidate's submission fails verification: %s", problems[0])
            return Finished("failed", leaderboard, best)
        ensemble = self._stack(planned, explorer, rundir) if self.config.ensemble == "stack" else None
        if ensemble is None or not ensemble.kept:
            atomic_copy(Path(best.pipeline_path), rundir.root / "pipeline.py")
            atomic_copy(Path(best.submission_path), rundir.root / "submission.csv")
        return Finished("ok", leaderboard, best, ensemble)

    def _stack(self, planned: Planned, explorer: Explorer, rundir: RunDir):
        """The Coordinator's stacked ensemble (a Ray task it launches with one track's CPUs), timed as its own phase."""
        import ray

        self.progress.phase("stacking")
        t0 = time.time()
        cpus = min(r.num_cpus for r in planned.resources.values()) if planned.resources else 1.0
        fit = ray.get(explorer.coordinator.stack.remote(planned.summary, str(rundir.root), self.config.seed,
                                                        num_cpus=cpus))
        self.timings["stack"] = round(time.time() - t0, 2)
        return fit

    def _report(self, planned: Planned, finished: Finished, llm, agents: RunAgents, rundir: RunDir, state: dict,
                started: float) -> RunResult:
        from iml_ray.safety.sandbox import containment

        status = finished.status
        best = finished.best if status == "ok" else None
        self.timings["total"] = round(time.time() - started, 2)
        report = build_report(status, planned.summary, planned.profile, planned.knowledge, planned.blueprint,
                              finished.leaderboard, best, self.timings, self.config, rundir, started)
        tracks = {p.track for p in planned.blueprint.tracks}
        report["resources"] = {t: r.to_json() for t, r in planned.resources.items() if t in tracks}
        report["sandbox"] = {"containment": containment().describe(), "network_allowed": self.config.allow_network}
        report["actors"] = {**agents.report(), "coordinator": finished.coordinator}
        if llm is not None:
            from actors.llm import llm_report

            report["llm"] = llm_report(llm)
        if finished.ensemble is not None:
            report["ensemble"] = finished.ensemble.to_json()
            if finished.ensemble.kept and status == "ok":
                report["chosen"] = _ensemble_choice(planned.summary, finished.ensemble, rundir)
        report["started_at"] = started        # epoch seconds: the tracks' started_s count from here
        atomic_write_json(rundir.root / "report.json", report)
        state["finished"] = time.time()
        state["status"] = status
        rundir.save_state(state)
        write_html_report(rundir.root)
        self.progress.phase(f"done: {status}")
        return RunResult(rundir.root, status, planned.summary, best, finished.leaderboard, report)


def _ensemble_choice(summary: TaskSummary, ensemble, rundir: RunDir) -> dict[str, Any]:
    from iml_ray.scoring.evaluate import aps

    return {"track": "ensemble", "valid_score": ensemble.blend_score, "aps": aps(summary.metric, ensemble.blend_score),
            "weights": ensemble.weights, "pipeline": str(rundir.root / "pipeline.py"), "scored": "cross-fitted on the holdout"}


def _holdout(summary: TaskSummary, blueprint: Blueprint) -> list[int] | dict:
    """holdout.json: the rows of one holdout, or a small table's k folds (in the driver: a call to an agent whose
    process is still starting took 37 s on a loaded 2-core machine, against 0.1 s here)."""
    from iml_ray.scoring.evaluate import holdout_json, make_validation

    train = blueprint.train
    return holdout_json(make_validation(summary, train.holdout_fraction, train.seed, train.holdout_folds))


def run_competition(task_dir: str | Path, out: str | Path, config: RunConfig | None = None, **kwargs: Any) -> RunResult:
    return Run(task_dir, out, config or RunConfig(), **kwargs).execute()
