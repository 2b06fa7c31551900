"""The agents of a run, as plain classes (no Ray here; `actors/` wraps them).

Each agent has the same inputs and typed output whichever policy drives it:
`rules` (deterministic, from the data) or an LLM (`openai`: any OpenAI-compatible
endpoint), which falls back to rules whenever it cannot help. Constructors only
store configuration.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .blueprint import Blueprint, Candidate, InterfaceContract, PrepPlan, TrackPlan, TrainPlan

T = TypeVar("T")

# Agents import their heavy dependencies (pandas, sklearn) inside their methods:
# each agent is an actor with a process of its own, and ten processes importing
# pandas at once on a small machine cost more than the whole plan phase.
if TYPE_CHECKING:
    from .knowledge.retriever import Knowledge
    from .profile import Profile
    from .rules.debugger import Diagnosis, Failure, Plans, Repair
    from .task import TaskSummary


class Agent:
    """The policy switch every agent shares: rules always work; with an LLM policy a Brain is tried first."""

    name = "agent"

    def __init__(self, policy: str = "rules", llm: dict | None = None):
        self.policy = policy
        self.llm = llm                  # {"settings": LLMSettings JSON, "ledger", "limiter", "servers": handles}
        self._brain = None

    @property
    def brain(self):
        driven = (self.llm or {}).get("settings", {}).get("agents") or ()
        if self.policy == "rules" or not self.llm or (driven and self.name not in driven):
            return None         # no LLM policy, or this agent is not one the LLM drives
        if self._brain is None:
            from .llm.brain import Brain

            self._brain = Brain(self.name, self.llm["settings"], self.llm.get("ledger"), self.llm.get("limiter"),
                                self.llm.get("servers"))
        return self._brain

    def events(self) -> list[dict]:
        """What came from the LLM and what fell back to rules (and why), for the report."""
        return list(self._brain.events) if self._brain is not None else []

    def _with_llm(self, what: str, ask: Callable[[Any, Any], T], deadline: float | None = None) -> T | None:
        """ask(policy, brain)'s answer; None when no LLM drives this agent or it could not help (then the
        fallback to the rules' `what` is logged and noted for the report). No ask starts after `deadline`."""
        if self.brain is None:
            return None
        from .llm import policy
        from .llm.errors import LLMError

        try:
            with self.brain.until(deadline):
                return ask(policy, self.brain)
        except LLMError as exc:
            self._fell_back(exc, what)
            return None

    def _fell_back(self, exc: Exception, what: str) -> None:
        """Note that the rules stand in for the LLM here; in strict replay a cache miss is an error instead."""
        import logging

        from .llm.errors import CacheMiss

        if isinstance(exc, CacheMiss):
            raise exc

        logging.getLogger(__name__).warning("%s: %s from rules (LLM: %s)", self.name, what, exc)
        self.brain.note("rules", f"{what}: {type(exc).__name__}: {exc}")


class TaskAnalyzer(Agent):
    name = "task_analyzer"

    def analyze(self, task_dir: str, description: str | None = None) -> TaskSummary:
        from .errors import TaskError
        from .task_inference import analyze_task

        try:
            summary, problem = analyze_task(task_dir, description=description), None
        except TaskError as exc:
            # The rules cannot read the task (e.g. two columns could be the target): the LLM may, from the
            # description; when it cannot either, the user gets the rules' error.
            if self.brain is None or "task.yaml" not in exc.fix:
                raise
            summary, problem = None, exc
        answer = self._with_llm("task summary", lambda policy, brain: policy.analyze_task(brain, task_dir, summary,
                                                                                            description, problem))
        if answer is None and problem is not None:
            raise problem
        return summary if answer is None else answer


class Profiler(Agent):
    name = "profiler"

    def profile(self, summary: TaskSummary, work_dir: str | None = None) -> Profile:
        from .profile import profile_task

        profile = profile_task(summary)
        findings = self._with_llm("no extra findings", lambda policy, brain: policy.profile_findings(
            brain, summary, profile, work_dir)) if work_dir else None
        if findings is None:
            return profile
        import dataclasses

        return dataclasses.replace(profile, findings=findings)


class KnowledgeRetriever(Agent):
    name = "knowledge_retriever"

    def retrieve(self, summary: TaskSummary, profile: Profile, tracks: tuple[str, ...]) -> Knowledge:
        from .knowledge.retriever import retrieve

        knowledge = retrieve(summary, profile, tracks)
        chosen = self._with_llm("cards as matched",
                                lambda policy, brain: policy.choose_cards(brain, summary, profile, knowledge))
        return knowledge if chosen is None else chosen


class GuidelineAgent(Agent):
    name = "guideline"

    def plan(self, summary: TaskSummary, profile: Profile, knowledge: Knowledge, tracks: tuple[str, ...],
             seed: int, holdout_fraction: float, num_threads: int,
             time_budget_s: float | None = None, allow_hub: bool = False) -> tuple[Blueprint, InterfaceContract]:
        """allow_hub: a model hub id may be chosen when no local encoder exists (the generated code then
        downloads it, so it must run with the network: --allow-network)."""
        from .rules.guideline import make_blueprint, make_contract

        pretrained = find_encoders(summary, profile, allow_hub) if "pretrained" in tracks else {}
        blueprint = make_blueprint(summary, profile, knowledge, tracks, seed, holdout_fraction, num_threads, time_budget_s,
                                   pretrained)
        contract = make_contract(summary, blueprint.prep)
        revised = self._with_llm("the rules blueprint",
                                 lambda policy, brain: policy.plan(brain, summary, profile, knowledge, blueprint, contract))
        return (blueprint, contract) if revised is None else revised


def find_encoders(summary: TaskSummary, profile: Profile, allow_hub: bool = False) -> dict[str, dict | None]:
    """The Pretrained Model Retriever's answer for each modality the task has."""
    import logging

    from .pretrained import find_pretrained

    found: dict[str, dict | None] = {}
    wanted = []
    if profile.columns_with_role("text"):
        wanted.append("text")
    if summary.images:
        wanted.append("image")
    for modality in wanted:
        model = find_pretrained(modality, allow_hub=allow_hub)
        found[modality] = None if model is None else model.to_json()
        logging.getLogger(__name__).info("pretrained %s encoder: %s", modality,
                                         "none found" if model is None else f"{model.name} ({model.source})")
    return found


class PreprocessingCoder(Agent):
    name = "preprocessing_coder"

    def write(self, summary: TaskSummary, plan: PrepPlan) -> str:
        """The rules module for this plan (the template filled from the data)."""
        from .tracks.render import render_prep

        return render_prep(summary, plan)

    def draft(self, summary: TaskSummary, plan: PrepPlan, contract: InterfaceContract, columns: str,
              deadline: float | None = None) -> tuple[str, str]:
        """The module for the track's first round and who wrote it: "llm" or "rules"."""
        if self.brain is not None and ((plan.text and plan.text_mode == "pretrained")
                                       or (plan.image and plan.image_mode == "pretrained")):
            # The encoder code loads local checkpoints with pinned hashes: it stays the framework's.
            self.brain.note("rules", "pretrained encoders: the framework's module")
            return self.write(summary, plan), "rules"
        code = self._with_llm("prep module", lambda policy, brain: policy.write_prep(brain, summary, plan, contract, columns),
                              deadline)
        return (self.write(summary, plan), "rules") if code is None else (code, "llm")


class ModelingCoder(Agent):
    name = "modeling_coder"

    def write(self, summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract) -> str:
        from .tracks.render import render_model

        return render_model(summary, plan, train, contract)

    def draft(self, summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract,
              prep_output: dict, threads: int, deadline: float | None = None) -> tuple[str, str]:
        code = self._with_llm(f"model module for {plan.track}", lambda policy, brain: policy.write_model(
            brain, summary, plan, contract, prep_output, threads), deadline) \
            if plan.model_template in ("traditional", "custom_nn") else None
        return (self.write(summary, plan, train, contract), "rules") if code is None else (code, "llm")


class Assembler(Agent):
    name = "assembler"

    def assemble(self, summary: TaskSummary, contract: InterfaceContract, track: str, prep_code: str,
                 model_code: str) -> tuple[str, dict[str, tuple[int, int]]]:
        """The standalone pipeline and the line range of each section (to localise tracebacks)."""
        from .assemble import ModuleSource, assemble, bind_model, section_lines
        from .tracks.render import render_runner

        modules = [ModuleSource("prep", prep_code), ModuleSource("model", bind_model(model_code)),
                   ModuleSource("runner", render_runner(summary, contract))]
        script = assemble(modules, name=summary.name, problem_type=summary.problem_type, metric=summary.metric, track=track)
        return script, section_lines(script)


class ErrorAnalyzer(Agent):
    name = "error_analyzer"

    def analyze(self, failure: Failure, contract: InterfaceContract | None = None,
                sources: dict[str, str] | None = None, deadline: float | None = None) -> Diagnosis:
        """Rules localise every failure; the LLM is asked when a module it wrote may be at fault."""
        from .rules.debugger import Diagnosis, diagnose

        rules = diagnose(failure)
        if contract is None or "llm" not in (sources or {}).values():
            return rules
        answer = self._with_llm("diagnosis", lambda policy, brain: policy.diagnose(brain, failure, contract, sources or {}),
                                deadline)
        return rules if answer is None else Diagnosis(answer[0], rules.kind, answer[1], by="llm")


class Debugger(Agent):
    name = "debugger"

    def __init__(self, policy: str = "rules", llm: dict | None = None):
        import threading

        super().__init__(policy, llm)
        self._rewrites = 0                   # over every track of the competition: the repair work is capped
        self._count_lock = threading.Lock()

    def repair(self, diagnosis: Diagnosis, plans: Plans, n_rows: int) -> Repair | None:
        """The rules repair: the failing module re-planned with safer or smaller settings."""
        from .rules.debugger import repair

        return repair(diagnosis, plans, n_rows)

    def rewrite(self, role: str, code: str, failure: Failure, diagnosis: Diagnosis, contract: InterfaceContract,
                columns: str, module_name: str, deadline: float | None = None) -> tuple[str | None, str]:
        """The LLM's rewrite of one module (only that one), or None and why not."""
        if self.brain is None:
            return None, "no LLM policy"
        from .llm import policy
        from .llm.errors import LLMError

        cap = int(self.llm.get("max_rewrites", 30))
        with self._count_lock:
            if self._rewrites >= cap:
                self.brain.note("rules", f"rewrite of {module_name}: the competition's {cap} LLM rewrites are spent")
                return None, f"the competition's {cap} LLM rewrites are spent"
            self._rewrites += 1
        try:
            with self.brain.until(deadline):
                return policy.rewrite(self.brain, role, code, failure, diagnosis.blamed, diagnosis.explanation, contract,
                                      columns, module_name), ""
        except LLMError as exc:
            self._fell_back(exc, f"rewrite of {module_name}")
            return None, f"{type(exc).__name__}: {exc}"


class Evaluator(Agent):
    name = "evaluator"

    def score(self, valid_predictions_csv: str, summary: TaskSummary) -> float:
        import pandas as pd

        from .evaluate import score_valid_predictions

        frame = pd.read_csv(valid_predictions_csv, low_memory=False)
        frame.columns = [str(c) for c in frame.columns]
        return score_valid_predictions(frame, summary)


# Every agent of a competition, by the name its LLM calls are booked under.
AGENTS: dict[str, type[Agent]] = {cls.name: cls for cls in (
    TaskAnalyzer, Profiler, KnowledgeRetriever, GuidelineAgent, PreprocessingCoder, ModelingCoder, Assembler,
    ErrorAnalyzer, Debugger, Evaluator)}


class AgentHost:
    """All the agents of one competition in one process.

    On Ray this is one actor per competition instead of one per agent: an actor
    is a process of its own, and ten of them starting (Python, Ray, the agents'
    imports) cost a small machine more CPU than the whole plan phase, once per
    competition. The agents keep their own classes and state; calls from the
    tracks run in the actor's threads.
    """

    def __init__(self, policy: str = "rules", llm: dict | None = None):
        self.agents = {name: cls(policy, llm) for name, cls in AGENTS.items()}

    def call(self, agent: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.agents[agent], method)(*args, **kwargs)


@dataclass
class TrackStatus:
    track: str
    phase: str = "waiting"
    round: int = 0
    score: float | None = None
    started: float = field(default_factory=time.time)
    detail: str = ""


class Coordinator:
    """Holds the leaderboard and the live status of every track; picks the winner."""

    def __init__(self, metric: str, higher_is_better: bool):
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.candidates: dict[str, Candidate] = {}
        self.status: dict[str, TrackStatus] = {}

    def update(self, track: str, phase: str, round: int = 0, detail: str = "", score: float | None = None) -> None:
        status = self.status.setdefault(track, TrackStatus(track))
        status.phase, status.round, status.detail = phase, round, detail
        if score is not None:
            status.score = score

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: {"phase": s.phase, "round": s.round, "score": s.score, "elapsed": time.time() - s.started,
                    "detail": s.detail} for k, s in self.status.items()}

    def report(self, candidate: Candidate) -> None:
        self.candidates[candidate.track] = candidate
        self.update(candidate.track, candidate.status, len(candidate.rounds), candidate.failure or "", candidate.valid_score)

    def leaderboard(self) -> list[Candidate]:
        verified = [c for c in self.candidates.values() if c.status == "verified" and c.valid_score is not None]
        ordered = sorted(verified, key=lambda c: c.valid_score, reverse=self.higher_is_better)
        return ordered + [c for c in self.candidates.values() if c not in ordered]

    def best(self) -> Candidate | None:
        board = self.leaderboard()
        return board[0] if board and board[0].status == "verified" else None
