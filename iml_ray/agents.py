"""The agents of a run, as plain classes (no Ray here; `actors/` wraps them).

Each agent has the same inputs and typed output whichever policy drives it;
today the policy is `rules`. Constructors only store configuration.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .blueprint import Blueprint, Candidate, InterfaceContract, PrepPlan, TrackPlan, TrainPlan

# Agents import their heavy dependencies (pandas, sklearn) inside their methods:
# each agent is an actor with a process of its own, and ten processes importing
# pandas at once on a small machine cost more than the whole plan phase.
if TYPE_CHECKING:
    from .knowledge.retriever import Knowledge
    from .profile import Profile
    from .rules.debugger import Diagnosis, Failure, Plans, Repair
    from .task import TaskSummary


class TaskAnalyzer:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def analyze(self, task_dir: str) -> TaskSummary:
        from .task_inference import analyze_task

        return analyze_task(task_dir)


class Profiler:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def profile(self, summary: TaskSummary) -> Profile:
        from .profile import profile_task

        return profile_task(summary)


class KnowledgeRetriever:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def retrieve(self, summary: TaskSummary, profile: Profile, tracks: tuple[str, ...]) -> Knowledge:
        from .knowledge.retriever import retrieve

        return retrieve(summary, profile, tracks)


class GuidelineAgent:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def plan(self, summary: TaskSummary, profile: Profile, knowledge: Knowledge, tracks: tuple[str, ...],
             seed: int, holdout_fraction: float, num_threads: int,
             time_budget_s: float | None = None) -> tuple[Blueprint, InterfaceContract]:
        from .rules.guideline import make_blueprint, make_contract

        pretrained = find_encoders(summary, profile) if "pretrained" in tracks else {}
        blueprint = make_blueprint(summary, profile, knowledge, tracks, seed, holdout_fraction, num_threads, time_budget_s,
                                   pretrained)
        return blueprint, make_contract(summary, blueprint.prep)


def find_encoders(summary: TaskSummary, profile: Profile) -> dict[str, dict | None]:
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
        model = find_pretrained(modality)
        found[modality] = None if model is None else model.to_json()
        logging.getLogger(__name__).info("pretrained %s encoder: %s", modality,
                                         "none found" if model is None else f"{model.name} ({model.source})")
    return found


class PreprocessingCoder:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def write(self, summary: TaskSummary, plan: PrepPlan) -> str:
        from .tracks.render import render_prep

        return render_prep(summary, plan)


class ModelingCoder:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def write(self, summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract) -> str:
        from .tracks.render import render_model

        return render_model(summary, plan, train, contract)


class Assembler:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def assemble(self, summary: TaskSummary, contract: InterfaceContract, track: str, prep_code: str,
                 model_code: str) -> tuple[str, dict[str, tuple[int, int]]]:
        """The standalone pipeline and the line range of each section (to localise tracebacks)."""
        from .assemble import ModuleSource, assemble, section_lines
        from .tracks.render import render_runner

        modules = [ModuleSource("prep", prep_code), ModuleSource("model", model_code),
                   ModuleSource("runner", render_runner(summary, contract))]
        script = assemble(modules, name=summary.name, problem_type=summary.problem_type, metric=summary.metric, track=track)
        return script, section_lines(script)


class ErrorAnalyzer:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def analyze(self, failure: Failure) -> Diagnosis:
        from .rules.debugger import diagnose

        return diagnose(failure)


class Debugger:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def repair(self, diagnosis: Diagnosis, plans: Plans, n_rows: int) -> Repair | None:
        from .rules.debugger import repair

        return repair(diagnosis, plans, n_rows)


class Evaluator:
    def __init__(self, policy: str = "rules"):
        self.policy = policy

    def score(self, valid_predictions_csv: str, summary: TaskSummary) -> float:
        import pandas as pd

        from .evaluate import score_valid_predictions

        frame = pd.read_csv(valid_predictions_csv, low_memory=False)
        frame.columns = [str(c) for c in frame.columns]
        return score_valid_predictions(frame, summary)


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
