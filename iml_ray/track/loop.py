"""One track's anytime loop: attempt a round, and when it fails, repair the blamed module; ends in a Candidate.

Plain Python: the agents it talks to are passed in (Ray actor proxies in a run,
plain objects in tests). Every round leaves its modules, logs and the
Debugger's diff in `candidates/<track>/round_<n>/`.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from iml_ray.blueprint import Candidate, RepairRound
from iml_ray.codegen.render import standalone_script, with_tuned_params
from iml_ray.plan.repairs import Diagnosis, Failure, Plans
from iml_ray.plan.resources import LLM_TRACK_SHARE
from iml_ray.safety.sandbox import SandboxResult, run_python
from iml_ray.scoring.evaluate import aps
from iml_ray.track import checks
from iml_ray.track.checks import (
    cache_env,
    failing_section,
    prep_output,
    read_json,
    verify,
)
from iml_ray.track.improve import Verified, authors, improve, restore, snapshot
from iml_ray.track.job import ModuleSlot, TrackAgents, TrackJob, search_pays_off
from iml_ray.track.llm_improve import improve_with_llm
from iml_ray.track.waiting import wait_for_peers

log = logging.getLogger(__name__)


@dataclass
class Track:
    """The loop's state: the modules as they stand, the plans they follow, the rounds so far."""

    job: TrackJob
    agents: TrackAgents
    plans: Plans
    prep: ModuleSlot
    model: ModuleSlot = field(default_factory=lambda: ModuleSlot("model"))
    rounds: list[RepairRound] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    peak_mb: float = 0.0
    prep_verified: str | None = None      # the prep code the contract check last passed
    prep_output: dict = field(default_factory=dict)
    # The last prep check's seconds (its encoding, if any: what fine-tuning is sized by). Not in prep_output, which
    # the LLM's prompts show: a time differs between runs and would defeat the response cache.
    prep_check_s: float = 0.0
    tuning: bool = False
    improving: bool = False             # an improvement round: it may use all the time left
    tuned_params: dict = field(default_factory=dict)   # a kept search's parameters, written into later rounds
    search_s: float | None = None       # an improvement round's search: this long, whatever the first rounds' rule
    threads: int = 0                    # the round's threads: the track's own (0), or more its finished peers freed

    @property
    def name(self) -> str:
        return self.job.plans.track.track

    @property
    def code_dir(self) -> Path:
        return Path(self.job.code_dir)

    @property
    def slots(self) -> dict[str, ModuleSlot]:
        return {"prep": self.prep, "model": self.model}

    @property
    def max_attempts(self) -> int:
        # An LLM-written module gets up to max_rounds rewrites, then the rules module takes its slot
        # and has its own max_rounds repairs: the loop allows both.
        return self.job.max_rounds + 1 + (self.job.max_rounds + 1 if agents_use_llm(self.agents) else 0)

    def notify(self, phase: str, number: int, detail: str = "", score: float | None = None) -> None:
        """The Coordinator's live status of this track; best effort, never a failure of the track."""
        if self.agents.coordinator is None:
            return
        try:
            self.agents.coordinator.update(self.name, phase, number, detail[:200], score)
        except Exception:
            log.debug("progress update failed", exc_info=True)

    def module_file(self, role: str) -> str:
        return "prep.py" if role == "prep" else f"model_{self.name}.py"


@dataclass(frozen=True)
class Attempt:
    """What one round's run came to: verified with a score, or a failure to diagnose."""

    failure: Failure | None
    score: float | None = None


def run_track(job: TrackJob, agents: TrackAgents) -> Candidate:
    job, not_run = wait_for_peers(job, agents.coordinator)     # a track that waits for others' CPUs
    try:
        return not_run or _run_track(job, agents)
    finally:
        # The fits the rounds shared served their purpose; pipeline.py never reads them, and they can be large.
        shutil.rmtree(cache_env(job)["IML_FIT_CACHE"], ignore_errors=True)


def _run_track(job: TrackJob, agents: TrackAgents) -> Candidate:
    track = Track(job, agents, job.plans, ModuleSlot("prep", *_draft_prep(agents, job, job.plans)),
                  tuning=job.tune is not None)
    track.code_dir.mkdir(parents=True, exist_ok=True)
    failure_line = None
    for number in range(1, track.max_attempts + 1):
        remaining = job.deadline - time.time()
        if remaining < (5.0 if number == 1 else job.min_round_s):
            failure_line = f"out of time before round {number} ({remaining:.0f} s left)"
            break
        round_dir = track.code_dir / f"round_{number}"
        round_dir.mkdir(parents=True, exist_ok=True)
        (round_dir / "prep.py").write_text(track.prep.code)
        round_started = time.time()
        attempt = attempt_round(track, number, round_dir)
        if attempt.failure is None:
            seconds = round(time.time() - round_started, 2)
            track.notify("verified", number, score=attempt.score)
            track.rounds.append(RepairRound(number, "ok", seconds, score=attempt.score, author=authors(track)))
            first = snapshot(track, number, round_dir, attempt.score, seconds)
            # A model module the LLM wrote is improved by the LLM; the rules re-plan their own modules.
            llm_model = track.job.improve and track.model.source == "llm" and agents_use_llm(agents)
            best, stopped = (improve_with_llm if llm_model else improve)(track, first, attempt_round)
            return _verified(track, best, stopped)
        failure_line = repair_round(track, number, round_dir, attempt.failure, round_started)
        if failure_line is not None:
            break
    return _failed(track, failure_line)


def attempt_round(track: Track, number: int, round_dir: Path) -> Attempt:
    """Check the prep module (when it changed), have the model module written (when there is none yet),
    assemble the pipeline, run it in the sandbox and verify what it wrote."""
    job, agents = track.job, track.agents
    if track.prep.code != track.prep_verified:
        track.notify("prep check", number)
        failure, result, report = checks.probe_prep(job, round_dir, track.prep.code)
        track.peak_mb = max(track.peak_mb, result.peak_rss_mb)
        if failure is not None:
            _write_model(track, round_dir)
            return Attempt(failure)
        track.prep_verified, track.prep_output = track.prep.code, prep_output(report)
        track.prep_check_s = float(report.get("seconds") or 0.0)
    if track.model.code is None:
        # The model module is written for a prep module that the contract check has passed.
        track.notify("writing model", number)
        track.model.code, track.model.source = _draft_model(agents, job, track.plans, track.prep_output, track.prep)
    _write_model(track, round_dir)
    track.notify("running", number)
    try:
        script, sections = agents.assembler.assemble(job.summary, job.contract, track.name, track.prep.code,
                                                     track.model.code)
    except ValueError as exc:
        return Attempt(Failure("assemble", "invalid", str(exc), failing_section=getattr(exc, "module", None)))
    if track.tuned_params:
        # Earlier searches' parameters; a search in this round starts from them and adds its own.
        script = with_tuned_params(script, track.tuned_params)
    pipeline = round_dir / f"pipeline_{track.name}.py"
    pipeline.write_text(script)
    out = round_dir / "output"
    if out.exists():
        shutil.rmtree(out)   # an old submission must never pass for a new one
    result = _run_pipeline(track, number, round_dir, pipeline, out)
    track.peak_mb = max(track.peak_mb, result.peak_rss_mb)
    if result.status != "ok" and not checks.finished_before_stopped(result, out):
        return Attempt(Failure("pipeline", result.status, result.describe(), result.stderr_tail(),
                               failing_section=failing_section(result.stderr_tail(), pipeline.name, sections)))
    failure, score = verify(job, agents, out)
    return Attempt(failure, score)


def _write_model(track: Track, round_dir: Path) -> None:
    if track.model.code is not None:
        (round_dir / track.module_file("model")).write_text(track.model.code)


def _run_pipeline(track: Track, number: int, round_dir: Path, pipeline: Path, out: Path) -> SandboxResult:
    """The assembled pipeline in the sandbox, with a Ray Tune search when this round has time for one."""
    job = track.job
    args = ["--data", job.summary.task_dir, "--out", str(out), "--holdout", job.holdout_path]
    # The rules model modules define their search space in the plan; an LLM's module may declare its own.
    own_space = track.model.source != "rules" and checks.declares_search_space(track.model.code)
    tune = _tune_search(job, round_dir, track.search_s, track.threads, own_space) \
        if track.tuning and (track.model.source == "rules" or own_space) else None
    sandbox = checks.limits(job, last_chance=number >= track.max_attempts or track.improving, cpus=track.threads or None)
    extra_env = cache_env(job)
    if tune is not None:
        tune_file = round_dir / "tune.json"
        tune_file.write_text(json.dumps(tune, indent=1))
        args += ["--tune", str(tune_file)]
        track.notify("tuning", number)
        # Ray Tune's trials join the cluster over the host's network, and its driver logs under the node's Ray temp dir.
        temp_dir = job.tune.temp_dir
        sandbox = dataclasses.replace(sandbox, network=True, writable=sandbox.writable + ((temp_dir,) if temp_dir else ()))
        extra_env = {**extra_env, **job.tune.env}
    return run_python(pipeline, args, round_dir, sandbox, log_prefix="pipeline", extra_env=extra_env)


def _tune_search(job: TrackJob, round_dir: Path, seconds: float | None = None, threads: int = 0,
                 own_space: bool = False) -> dict | None:
    """What the generated code's tune_model() gets (tune.json); None when this round should not search.
    seconds: an improvement round's search, sized by its step rather than by the first rounds' share;
    threads: the round's threads, when more than the track's own (as many trials run at once);
    own_space: the module declares its own SEARCH_SPACE (the plan's does not apply)."""
    if job.tune is None or not (own_space or job.plans.track.tune.get("space")) or not search_pays_off(job.plans, job.gpu_ids):
        return None
    tune = job.tune if seconds is None else dataclasses.replace(job.tune, share=1.0, min_seconds=0.0, max_seconds=seconds)
    if threads > tune.concurrency:
        tune = dataclasses.replace(tune, concurrency=threads)
    return tune.search(job.deadline - time.time(), str(round_dir / "tune"), job.gpu_ids)


def repair_round(track: Track, number: int, round_dir: Path, failure: Failure, round_started: float) -> str | None:
    """Diagnose the failure and repair the blamed module for the next round; the track's failure line
    when no repair is known (or no round is left), None when the next round may run."""
    job, agents = track.job, track.agents
    track.notify("repairing", number, detail=failure.message)
    if failure.status == "timeout":
        track.tuning = False         # the next round must be faster, not spend time searching again
    change = checks.resumed_encoding(job, track.plans.prep, failure, round_started) if number < track.max_attempts else None
    if change is not None:
        # Nothing to repair: the next check starts from the vectors this one saved.
        track.rounds.append(RepairRound(number, failure.status, round(time.time() - round_started, 2), failure.message,
                                        "resources", f"timeout (rules): {failure.message}"[:500], change, None,
                                        module="prep"))
        log.info("track %s round %d: %s", track.name, number, change)
        return None
    sources = {r: s.source for r, s in track.slots.items() if s.code is not None}
    diagnosis = agents.error_analyzer.analyze(failure, job.contract, sources, deadline=llm_deadline(job))
    role = diagnosis.module(failure.failing_section, failure.stage)
    slot = track.slots[role] if track.slots[role].code is not None else track.prep
    slot.rounds_blamed += 1
    before = {r: s.code for r, s in track.slots.items()}
    change = None
    if number < track.max_attempts:
        change, role = _repair(track, slot, role, failure, diagnosis)
    diff_file = _write_diff(track, round_dir, role, before) if change is not None else None
    track.rounds.append(RepairRound(number, failure.status, round(time.time() - round_started, 2), failure.message,
                                    diagnosis.blamed, f"{diagnosis.kind} ({diagnosis.by}): {diagnosis.explanation}"[:500],
                                    change, diff_file, module=role if change else None))
    log.info("track %s round %d failed (%s, blamed %s); %s", track.name, number, failure.message, diagnosis.blamed,
             change or "no repair")
    if change is not None:
        return None
    if number < track.max_attempts:
        return f"{failure.message} (blamed {diagnosis.blamed}; no repair known for {diagnosis.kind})"
    return f"{failure.message} (still failing after {len(track.rounds) - 1} repair rounds)"


def _repair(track: Track, slot: ModuleSlot, role: str, failure: Failure, diagnosis: Diagnosis) -> tuple[str | None, str]:
    """The change made for the next round and the module it changed: an LLM module is rewritten by the
    Debugger, a rules module re-rendered from the plans the Debugger's rules re-planned."""
    job, agents = track.job, track.agents
    if slot.source == "llm":
        return _repair_llm_module(track, slot, failure, diagnosis), role
    repair = agents.debugger.repair(diagnosis, track.plans, job.summary.n_train, failure.stage)
    if repair is None:
        return None, role
    track.plans = repair.plans
    # Rules modules follow the new plans; a module the LLM wrote stays as it is.
    if track.prep.source != "llm" and (repair.module == "prep" or track.prep.code is None):
        track.prep.code = agents.prep_coder.write(job.summary, track.plans.prep)
    if track.model.source != "llm" and track.model.code is not None:
        track.model.code = agents.model_coder.write(job.summary, track.plans.track, track.plans.train, job.contract)
    return repair.change, repair.module


def _write_diff(track: Track, round_dir: Path, role: str, before: dict[str, str | None]) -> str:
    name = track.module_file(role)
    old, new = before[role] or "", track.slots[role].code or ""
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}"))
    (round_dir / "repair.diff").write_text(diff)
    return str(round_dir / "repair.diff")


def _verified(track: Track, best: Verified, stopped: str) -> Candidate:
    """The track's candidate: its best verified round, whose files become the track's own."""
    job, name, code_dir, round_dir = track.job, track.name, track.code_dir, best.round_dir
    restore(track, best)
    modules = {role: slot.to_json() for role, slot in track.slots.items()}
    final = code_dir / f"pipeline_{name}.py"
    details = read_json(round_dir / "output" / "run_info.json")
    search = _search_in_effect(track, best)
    if search and "tuning" not in (details.get("validation") or {}):
        # A later round ran with the parameters an earlier round's search found: that search is what they came from.
        details.setdefault("validation", {})["tuning"] = search
    final.write_text(standalone_script((round_dir / f"pipeline_{name}.py").read_text(), details))
    shutil.copyfile(round_dir / "prep.py", code_dir / "prep.py")
    shutil.copyfile(round_dir / track.module_file("model"), code_dir / track.module_file("model"))
    repairs = sum(1 for r in track.rounds if r.step is None and r.status != "ok")
    candidate = Candidate(track=name, code_dir=str(code_dir), status="verified", metric=job.summary.metric,
                          valid_score=best.score, aps=aps(job.summary.metric, best.score), repair_rounds=repairs,
                          rounds=tuple(track.rounds), wall_s=round(time.time() - track.started, 2),
                          peak_rss_mb=round(track.peak_mb, 1), pipeline_path=str(final),
                          submission_path=str(round_dir / "output" / "submission.csv"),
                          details={"run_info": details, "plans": track.plans.to_json(), "modules": modules,
                                   "best_round": best.number, "stopped": stopped},
                          started_at=track.started, finished_at=time.time(), resources=job.resources)
    for r in candidate.within_noise_rounds():
        # The Coordinator may blend these with the best (agents/stacking.py): each gets its standalone script too.
        script, info = code_dir / f"round_{r.round}" / f"pipeline_{name}.py", code_dir / f"round_{r.round}" / "output"
        if script.is_file():
            candidate.round_pipeline(r.round).write_text(standalone_script(script.read_text(), read_json(info / "run_info.json")))
    return candidate


def _search_in_effect(track: Track, best: Verified) -> dict | None:
    """The Ray Tune search whose parameters the best round ran with: the last search among the rounds the best one
    descends from (the first verified round and the kept improvements up to it)."""
    lineage = [r.round for r in track.rounds if r.status == "ok" and (r.step is None or r.kept) and r.round <= best.number]
    found = None
    for number in lineage:
        tuning = (read_json(track.code_dir / f"round_{number}" / "output" / "run_info.json").get("validation") or {})
        found = tuning.get("tuning") or found
    return found


def _failed(track: Track, failure_line: str | None) -> Candidate:
    job = track.job
    track.notify("failed", len(track.rounds), detail=failure_line or "")
    return Candidate(track=track.name, code_dir=str(track.code_dir), status="failed", metric=job.summary.metric,
                     repair_rounds=max(0, len(track.rounds) - 1), rounds=tuple(track.rounds), failure=failure_line,
                     wall_s=round(time.time() - track.started, 2), peak_rss_mb=round(track.peak_mb, 1),
                     details={"plans": track.plans.to_json(), "modules": {r: s.to_json() for r, s in track.slots.items()}},
                     started_at=track.started, finished_at=time.time(), resources=job.resources)


def llm_deadline(job: TrackJob) -> float:
    """Until when an LLM call of this track may run: a share of the time left, the rest is for running its code."""
    now = time.time()
    return now + LLM_TRACK_SHARE * max(0.0, job.deadline - now)


def agents_use_llm(agents: TrackAgents) -> bool:
    return getattr(agents, "llm", False)


def _draft_prep(agents: TrackAgents, job: TrackJob, plans: Plans) -> tuple[str, str]:
    draft = getattr(agents.prep_coder, "draft", None)
    if draft is None or not agents_use_llm(agents):
        return agents.prep_coder.write(job.summary, plans.prep), "rules"
    return draft(job.summary, plans.prep, job.contract, job.columns, deadline=llm_deadline(job),
                 context={**job.context, "consumers": consumers(plans)})


def _draft_model(agents: TrackAgents, job: TrackJob, plans: Plans, prep_output: dict, prep: ModuleSlot
                 ) -> tuple[str, str]:
    draft = getattr(agents.model_coder, "draft", None)
    if draft is None or not agents_use_llm(agents):
        return agents.model_coder.write(job.summary, plans.track, plans.train, job.contract), "rules"
    # How the framework will run the module: the fits of a round and the time the sandbox gives the first one.
    left = job.deadline - time.time()
    context = {**job.context, "fits": plans.train.pipeline_fits, "prep_source": prep.source,
               "round_limit_s": max(job.min_round_s, left * job.attempt_share) if left > 0 else None}
    return draft(job.summary, plans.track, plans.train, job.contract, prep_output, job.cpus, deadline=llm_deadline(job),
                 prep_source=prep.code or "", context=context)


def consumers(plans: Plans) -> str:
    """Who reads the prep module's matrix, for its coder: the track's models."""
    track = plans.track
    if track.model_template == "custom_nn":
        return (f"the {track.track} track's neural network (an MLP over the numbers, an embedding per categorical code "
                "column, a bag of the text block's terms, a CNN over an image block): it scales numbers itself")
    return (f"the {track.track} track's models: {', '.join(track.models)} (the trees read categorical codes as "
            "categories and skip a sparse text block; the linear model scales the numbers and one-hot encodes the codes)")


def _repair_llm_module(track: Track, slot: ModuleSlot, failure: Failure, diagnosis: Diagnosis) -> str:
    """The Debugger rewrites the LLM's module; past max_rounds rewrites (or when the LLM cannot), the rules
    module takes the slot."""
    job, agents = track.job, track.agents
    name = track.module_file(slot.role)
    why = f"{slot.llm_rewrites} LLM rewrites did not fix it"
    if slot.llm_rewrites < job.max_rounds:
        code, why_not = agents.debugger.rewrite(slot.role, slot.code, failure, diagnosis, job.contract, job.columns, name,
                                                deadline=llm_deadline(job))
        if code is not None:
            slot.code = code
            slot.llm_rewrites += 1
            return f"LLM Debugger rewrote {name} (rewrite {slot.llm_rewrites} of at most {job.max_rounds})"
        why = f"the LLM could not rewrite it ({why_not})"
    if slot.role == "prep":
        slot.code = agents.prep_coder.write(job.summary, track.plans.prep)
    else:
        slot.code = agents.model_coder.write(job.summary, track.plans.track, track.plans.train, job.contract)
    slot.source = f"rules (fallback: {why})"[:200]
    return f"{name} replaced by the rules module: {why}"
