"""One track's run → verify → repair loop, ending in a Candidate.

Plain Python: the agents it talks to are passed in (Ray actor proxies in a run,
plain objects in tests). Every round leaves its modules, logs and the
Debugger's diff in `candidates/<track>/round_<n>/`.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .blueprint import Candidate, InterfaceContract, RepairRound
from .contract import PREP_PROBE, check_prep_report, check_submission, check_valid_predictions, prep_probe_spec, read_prep_report
from .evaluate import aps
from .resources import LLM_TRACK_SHARE
from .rules.debugger import Failure, Plans
from .sandbox import SandboxLimits, SandboxResult, run_python
from .tracks.render import with_tuned_params
from .task import TaskSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackJob:
    """Everything a track needs, picklable so it can travel to a Ray worker."""

    summary: TaskSummary
    contract: InterfaceContract
    plans: Plans
    code_dir: str
    holdout_path: str
    deadline: float                 # time.time() by which the track must be finished
    memory_mb: int
    cpus: int
    gpu_ids: tuple[int, ...] = ()
    resources: dict = field(default_factory=dict)     # Ray's share, for the report
    # Ray Tune inside the generated code: the cluster to join and how (see tune_settings()); None: no tuning
    tune: dict | None = None
    max_rounds: int = 10
    columns: str = ""               # one line per column (the profile's view), for LLM coders and the Debugger
    allow_network: bool = False     # --allow-network: generated code keeps the host's network (e.g. a model hub)
    max_log_bytes: int = 20_000_000
    max_disk_mb: int = 5000
    min_round_s: float = 15.0       # a repair round is not started with less time than this
    # Share of the remaining time one attempt may use while repairs are still
    # possible, so a timeout leaves room to try faster settings.
    attempt_share: float = 0.7


class TrackAgents:
    """The agents the loop talks to; attributes are objects with the agents' methods."""

    def __init__(self, prep_coder: Any, model_coder: Any, assembler: Any, error_analyzer: Any, debugger: Any,
                 evaluator: Any, coordinator: Any = None, llm: bool = False):
        self.prep_coder = prep_coder
        self.model_coder = model_coder
        self.assembler = assembler
        self.error_analyzer = error_analyzer
        self.debugger = debugger
        self.evaluator = evaluator
        self.coordinator = coordinator
        self.llm = llm          # the coders may write with an LLM: ask them for drafts


@dataclass
class ModuleSlot:
    """One module of the pipeline (prep or model): its code, who wrote it, how often the LLM rewrote it."""

    role: str                      # "prep" | "model"
    code: str | None = None
    source: str = "rules"          # "llm" | "rules" | "rules (fallback: ...)"
    llm_rewrites: int = 0
    rounds_failed: int = 0         # rounds in which this module was blamed

    def to_json(self) -> dict:
        return {"source": self.source, "llm_rewrites": self.llm_rewrites, "rounds_blamed": self.rounds_failed}


def run_track(job: TrackJob, agents: TrackAgents) -> Candidate:
    started = time.time()
    track = job.plans.track.track
    code_dir = Path(job.code_dir)
    code_dir.mkdir(parents=True, exist_ok=True)
    notify = _notifier(agents.coordinator, track)
    plans = job.plans
    prep = ModuleSlot("prep", *_draft_prep(agents, job, plans))
    model = ModuleSlot("model")
    slots = {"prep": prep, "model": model}
    rounds: list[RepairRound] = []
    peak = 0.0
    prep_verified_code: str | None = None
    prep_output: dict = {}
    failure_line = None
    tuning = job.tune is not None
    # An LLM-written module gets up to max_rounds rewrites, then the rules module takes its slot
    # and has its own max_rounds repairs: the loop allows both.
    max_attempts = job.max_rounds + 1 + (job.max_rounds + 1 if agents_use_llm(agents) else 0)

    for number in range(1, max_attempts + 1):
        remaining = job.deadline - time.time()
        if remaining < (5.0 if number == 1 else job.min_round_s):
            failure_line = f"out of time before round {number} ({remaining:.0f} s left)"
            break
        round_dir = code_dir / f"round_{number}"
        round_dir.mkdir(parents=True, exist_ok=True)
        (round_dir / "prep.py").write_text(prep.code)
        round_started = time.time()
        failure: Failure | None = None
        result: SandboxResult | None = None

        if prep.code != prep_verified_code:
            notify("prep check", number)
            failure, result, report = _probe_prep(job, round_dir, prep.code)
            peak = max(peak, result.peak_rss_mb)
            if failure is None:
                prep_verified_code = prep.code
                prep_output = _prep_output(report)

        score = None
        if failure is None and model.code is None:
            # The model module is written for a prep module that the contract check has passed.
            notify("writing model", number)
            model.code, model.source = _draft_model(agents, job, plans, prep_output)
        if model.code is not None:
            (round_dir / f"model_{track}.py").write_text(model.code)
        if failure is None:
            notify("running", number)
            try:
                script, sections = agents.assembler.assemble(job.summary, job.contract, track, prep.code, model.code)
            except ValueError as exc:
                failure = Failure("assemble", "invalid", str(exc), failing_section=getattr(exc, "module", None))
                script, sections = None, {}
            if script is not None:
                pipeline = round_dir / f"pipeline_{track}.py"
                pipeline.write_text(script)
                out = round_dir / "output"
                if out.exists():
                    shutil.rmtree(out)   # an old submission must never pass for a new one
                args = ["--data", job.summary.task_dir, "--out", str(out), "--holdout", job.holdout_path]
                # Only the rules model modules define a search space.
                tune = _tune_settings(job, round_dir, tuning) if tuning and model.source == "rules" else None
                if tune is not None:
                    tune_file = round_dir / "tune.json"
                    tune_file.write_text(json.dumps(tune, indent=1))
                    args += ["--tune", str(tune_file)]
                    notify("tuning", number)
                last_chance = number >= max_attempts
                limits = _limits(job, last_chance)
                if tune is not None:
                    # Ray Tune's trials join the cluster over the host's network, and its driver logs under
                    # the node's Ray temp dir.
                    temp_dir = (job.tune or {}).get("temp_dir")
                    limits = dataclasses.replace(limits, network=True,
                                                 writable=limits.writable + ((temp_dir,) if temp_dir else ()))
                result = run_python(pipeline, args, round_dir, limits, log_prefix="pipeline",
                                    extra_env={**_encoder_cache_env(job),
                                               **((job.tune or {}).get("env", {}) if tune is not None else {})})
                peak = max(peak, result.peak_rss_mb)
                if result.status != "ok":
                    failure = Failure("pipeline", result.status, result.describe(), result.stderr_tail(),
                                      failing_section=_failing_section(result.stderr_tail(), pipeline.name, sections))
                else:
                    failure, score = _verify(job, agents, out)

        modules = {role: slot.to_json() for role, slot in slots.items()}
        if failure is None:
            notify("verified", number, score=score)
            rounds.append(RepairRound(number, "ok", round(time.time() - round_started, 2)))
            final = code_dir / f"pipeline_{track}.py"
            details = _read_json(round_dir / "output" / "run_info.json")
            # The parameters tuning found go into the script, so a rerun reproduces the submission without Ray.
            final.write_text(with_tuned_params((round_dir / f"pipeline_{track}.py").read_text(),
                                               details.get("tuned_params") or {}))
            shutil.copyfile(round_dir / "prep.py", code_dir / "prep.py")
            shutil.copyfile(round_dir / f"model_{track}.py", code_dir / f"model_{track}.py")
            return Candidate(track=track, code_dir=str(code_dir), status="verified", metric=job.summary.metric,
                             valid_score=score, aps=aps(job.summary.metric, score), repair_rounds=number - 1,
                             rounds=tuple(rounds), wall_s=round(time.time() - started, 2), peak_rss_mb=round(peak, 1),
                             pipeline_path=str(final), submission_path=str(round_dir / "output" / "submission.csv"),
                             details={"run_info": details, "plans": _plans_json(plans), "modules": modules},
                             started_at=started, finished_at=time.time(), resources=job.resources)

        notify("repairing", number, detail=failure.message)
        if failure.status == "timeout":
            # The next round must be faster, not spend time searching again.
            tuning = False
        diagnosis = agents.error_analyzer.analyze(failure, job.contract, {r: s.source for r, s in slots.items()
                                                                          if s.code is not None},
                                                  deadline=llm_deadline(job))
        role = diagnosis.module(failure.failing_section, failure.stage)
        slot = slots[role] if slots[role].code is not None else prep
        slot.rounds_failed += 1
        olds = {r: s.code for r, s in slots.items()}
        change = None
        if number < max_attempts:
            if slot.source == "llm":
                change, plans = _repair_llm_module(agents, job, plans, slot, failure, diagnosis, number, track)
            else:
                repair = agents.debugger.repair(diagnosis, plans, job.summary.n_train)
                if repair is not None:
                    plans = repair.plans
                    # Rules modules follow the new plans; a module the LLM wrote stays as it is.
                    if prep.source != "llm" and (repair.module == "prep" or prep.code is None):
                        prep.code = agents.prep_coder.write(job.summary, plans.prep)
                    if model.source != "llm" and model.code is not None:
                        model.code = agents.model_coder.write(job.summary, plans.track, plans.train, job.contract)
                    change = repair.change
                    role = repair.module
        diff_file = None
        if change is not None:
            name = "prep.py" if role == "prep" else f"model_{track}.py"
            old, new = olds[role] or "", slots[role].code or ""
            diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}"))
            (round_dir / "repair.diff").write_text(diff)
            diff_file = str(round_dir / "repair.diff")
        rounds.append(RepairRound(number, failure.status, round(time.time() - round_started, 2), failure.message,
                                  diagnosis.blamed, f"{diagnosis.kind} ({diagnosis.by}): {diagnosis.explanation}"[:500],
                                  change, diff_file, module=role if change else None))
        log.info("track %s round %d failed (%s, blamed %s); %s", track, number, failure.message, diagnosis.blamed,
                 change or "no repair")
        if change is None:
            failure_line = f"{failure.message} (blamed {diagnosis.blamed}; no repair known for {diagnosis.kind})" \
                if number < max_attempts else \
                f"{failure.message} (still failing after {len(rounds) - 1} repair rounds)"
            break

    notify("failed", len(rounds), detail=failure_line or "")
    return Candidate(track=track, code_dir=str(code_dir), status="failed", metric=job.summary.metric,
                     repair_rounds=max(0, len(rounds) - 1), rounds=tuple(rounds), failure=failure_line,
                     wall_s=round(time.time() - started, 2), peak_rss_mb=round(peak, 1),
                     details={"plans": _plans_json(plans), "modules": {r: s.to_json() for r, s in slots.items()}},
                     started_at=started, finished_at=time.time(), resources=job.resources)


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
    return draft(job.summary, plans.prep, job.contract, job.columns, deadline=llm_deadline(job))


def _draft_model(agents: TrackAgents, job: TrackJob, plans: Plans, prep_output: dict) -> tuple[str, str]:
    draft = getattr(agents.model_coder, "draft", None)
    if draft is None or not agents_use_llm(agents):
        return agents.model_coder.write(job.summary, plans.track, plans.train, job.contract), "rules"
    return draft(job.summary, plans.track, plans.train, job.contract, prep_output, job.cpus, deadline=llm_deadline(job))


def _repair_llm_module(agents: TrackAgents, job: TrackJob, plans: Plans, slot: ModuleSlot, failure: Failure,
                       diagnosis, number: int, track: str) -> tuple[str, Plans]:
    """The Debugger rewrites the LLM's module; past max_rounds rewrites (or when the LLM cannot), the rules
    module takes the slot."""
    name = "prep.py" if slot.role == "prep" else f"model_{track}.py"
    why = f"{slot.llm_rewrites} LLM rewrites did not fix it"
    if slot.llm_rewrites < job.max_rounds:
        code, why_not = agents.debugger.rewrite(slot.role, slot.code, failure, diagnosis, job.contract, job.columns, name,
                                                deadline=llm_deadline(job))
        if code is not None:
            slot.code = code
            slot.llm_rewrites += 1
            return f"LLM Debugger rewrote {name} (rewrite {slot.llm_rewrites} of at most {job.max_rounds})", plans
        why = f"the LLM could not rewrite it ({why_not})"
    if slot.role == "prep":
        slot.code = agents.prep_coder.write(job.summary, plans.prep)
    else:
        slot.code = agents.model_coder.write(job.summary, plans.track, plans.train, job.contract)
    slot.source = f"rules (fallback: {why})"[:200]
    return f"{name} replaced by the rules module: {why}", plans


def _prep_output(report: dict) -> dict:
    """What the verified prep module returned, for the model coder: shapes, types, layout."""
    keep = ("shape", "sparse", "dtype")
    return {"train": {k: report.get("train", {}).get(k) for k in keep},
            "test": {k: report.get("test", {}).get(k) for k in keep}, "layout": report.get("layout")}


def _encoder_cache_env(job: TrackJob) -> dict[str, str]:
    """The prep check, every round and the pipeline share the pretrained encoders' vectors: encoding is done once."""
    return {"IML_ENCODER_CACHE": str(Path(job.code_dir) / "encoder_cache")}


def _tune_settings(job: TrackJob, round_dir: Path, tuning: bool) -> dict | None:
    """What the generated code's tune_model() gets: the cluster, the seconds it may search,
    how many trials at once; None when too little time is left for a search to pay off."""
    if not tuning or not job.tune or not job.plans.track.tune.get("space"):
        return None
    if job.plans.track.model_template == "custom_nn" and job.plans.prep.image and not job.gpu_ids:
        # A CNN's epoch on a CPU takes seconds: a search would buy a handful of trials with the
        # time the network itself needs to train.
        return None
    remaining = job.deadline - time.time()
    seconds = min(float(job.tune.get("max_seconds", 900.0)), float(job.tune.get("share", 0.25)) * remaining)
    if seconds < float(job.tune.get("min_seconds", 15.0)):
        return None
    settings = {k: v for k, v in job.tune.items() if k not in ("share", "min_seconds", "max_seconds", "env")}
    settings.update(seconds=round(seconds, 1), storage=str(round_dir / "tune"),
                    cuda_visible_devices=",".join(str(i) for i in job.gpu_ids),
                    # One network training may take at most a third of the search.
                    trial_seconds=round(seconds / 3.0, 1))
    return settings


def _limits(job: TrackJob, last_chance: bool = False) -> SandboxLimits:
    remaining = max(1.0, job.deadline - time.time())
    timeout = remaining if last_chance else min(remaining, max(job.min_round_s, remaining * job.attempt_share))
    return SandboxLimits(timeout_s=timeout, memory_mb=job.memory_mb, max_log_bytes=job.max_log_bytes,
                         max_disk_bytes=job.max_disk_mb * 2**20, cpus=job.cpus, gpu_ids=job.gpu_ids,
                         network=job.allow_network, read_only=(job.summary.task_dir, str(_run_root(job))),
                         writable=(_encoder_cache_env(job)["IML_ENCODER_CACHE"],),
                         # Other tracks' code and outputs are not this track's business.
                         hidden=_candidates_root(job), exposed=(str(Path(job.code_dir).resolve()),))


def _candidates_root(job: TrackJob) -> str | None:
    """<out>/candidates, which holds only the tracks' directories; None outside that layout (hiding
    anything else could hide the task's data or the holdout)."""
    parent = Path(job.code_dir).resolve().parent
    return str(parent) if parent.name == "candidates" else None


def _run_root(job: TrackJob) -> Path:
    """The run directory (<out>): read-only for generated code but for its own round's directory."""
    return Path(job.code_dir).resolve().parent.parent


def _probe_prep(job: TrackJob, round_dir: Path, prep_code: str) -> tuple[Failure | None, SandboxResult, dict]:
    probe_dir = round_dir / "prep_check"
    probe_dir.mkdir(exist_ok=True)
    (probe_dir / "spec.json").write_text(json.dumps(prep_probe_spec(job.summary, job.contract)))
    (probe_dir / "probe.py").write_text(PREP_PROBE)
    report_path = probe_dir / "report.json"
    report_path.unlink(missing_ok=True)
    result = run_python(probe_dir / "probe.py", [str(probe_dir / "spec.json"), str(round_dir / "prep.py"), str(report_path)],
                        probe_dir, _limits(job), log_prefix="probe", extra_env=_encoder_cache_env(job))
    if result.status not in ("ok", "error"):
        return Failure("prep_probe", result.status, "prep check " + result.describe(), result.stderr_tail(),
                       failing_section="prep"), result, {}
    report = read_prep_report(report_path)
    violations = check_prep_report(report, job.contract)
    if not report.get("ok"):
        # The prep module crashed: a code failure, not a contract violation.
        return Failure("prep_probe", "error", f"prep failed: {report.get('error', result.describe())}",
                       report.get("traceback", result.stderr_tail()), (), "prep"), result, report
    if violations:
        return Failure("prep_probe", "invalid", violations[0], "", tuple(violations), "prep"), result, report
    return None, result, report


def _verify(job: TrackJob, agents: TrackAgents, out: Path) -> tuple[Failure | None, float | None]:
    rows = np.asarray(json.loads(Path(job.holdout_path).read_text()), dtype=np.int64)
    problems, _ = check_valid_predictions(out / "valid_predictions.csv", job.summary, rows)
    problems += check_submission(out / "submission.csv", job.summary)
    if problems:
        return Failure("verify", "invalid", problems[0], violations=tuple(problems), failing_section="runner"), None
    try:
        score = float(agents.evaluator.score(str(out / "valid_predictions.csv"), job.summary))
    except ValueError as exc:
        return Failure("verify", "invalid", f"validation predictions cannot be scored: {exc}", failing_section="model"), None
    if not np.isfinite(score):
        return Failure("verify", "invalid", f"validation score is {score}", failing_section="model"), None
    return None, score


TRACE_LINE = re.compile(r'File "([^"]+)", line (\d+)')


def _failing_section(stderr: str, script_name: str, sections: dict[str, tuple[int, int]]) -> str | None:
    """The section of the pipeline holding the innermost traceback frame in the script itself."""
    hits = [int(line) for path, line in TRACE_LINE.findall(stderr) if path.endswith(script_name)]
    if not hits:
        return None
    line = hits[-1]
    for role, (start, end) in sections.items():
        if start <= line <= end:
            return role
    return None


def _notifier(coordinator: Any, track: str) -> Callable[..., None]:
    def notify(phase: str, number: int, detail: str = "", score: float | None = None) -> None:
        if coordinator is not None:
            try:
                coordinator.update(track, phase, number, detail[:200], score)
            except Exception:  # progress is best effort; never fail a track over it
                log.debug("progress update failed", exc_info=True)
    return notify


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _plans_json(plans: Plans) -> dict:
    from dataclasses import asdict

    return {"prep": plans.prep.to_json(), "track": plans.track.to_json(), "train": asdict(plans.train)}



