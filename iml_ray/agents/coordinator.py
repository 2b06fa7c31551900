"""The Coordinator of one competition: the live status of every track, the leaderboard of verified candidates,
and the stacked ensemble built from them (agents/stacking.py; on Ray the actor runs it as a task of its own)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iml_ray.blueprint import Candidate

if TYPE_CHECKING:
    from iml_ray.agents.stacking import EnsembleFit
    from iml_ray.task.files import TaskSummary


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
        self.ensemble: EnsembleFit | None = None
        self.shares: dict[str, float] = {}     # each track's CPUs, as Ray granted them
        self.waits: dict[str, tuple[str, ...]] = {}     # a waiting track → the tracks it waits for

    def set_eval(self, metric: str, higher_is_better: bool) -> None:
        """The blueprint's metric (the actor is started before the plan has it, so its process is up by then)."""
        self.metric, self.higher_is_better = metric, higher_is_better

    def track_shares(self, shares: dict[str, float], waits: dict[str, tuple[str, ...]] | None = None) -> None:
        """The CPUs each of the competition's tracks holds, and which tracks wait for which (set when they are
        launched)."""
        self.shares = dict(shares)
        self.waits = {t: tuple(others) for t, others in (waits or {}).items() if others}

    def cpus_for(self, track: str, as_free: bool = True) -> float:
        """The CPUs a track's next round may use: its own share, and an even part of what the competition's
        finished tracks held, as far as the cluster still has it free (as_free=False: had the cluster freed all
        of it, which Ray's view of free CPUs shows a moment after a track's task has returned).

        A track that has stopped (out of improvements, or failed) leaves its CPUs idle until the run ends; on two
        cores that was half the machine for the last 40 s of a 90 s run. Only the competition's own finished
        shares are handed on, so a batch's other competitions are not crowded out.
        """
        own = self.shares.get(track, 0.0)
        # A track still waiting for others takes no part of what they free until it starts.
        running = [t for t in self.shares if t not in self.candidates and self.finished(list(self.waits.get(t, ())))]
        freed = sum(share for t, share in self.shares.items() if t in self.candidates)
        if track not in running or freed <= 0:
            return own
        free = self._free_cpus() if as_free else freed
        return own + max(0.0, min(freed, free)) / len(running)

    def _free_cpus(self) -> float:
        """The cluster's CPUs no task holds now (Ray's view on Ray); no cap off Ray."""
        return float("inf")

    def finished(self, tracks: list[str]) -> bool:
        """Whether every one of these tracks has reported its candidate (verified or failed)."""
        return all(t in self.candidates for t in tracks)

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

    def stack(self, summary: TaskSummary, root: str, seed: int = 0, **resources: float) -> EnsembleFit | None:
        """The stacked ensemble of the verified candidates and the rounds each track could not tell from its best,
        kept only when it beats the best one on rows it was not fitted on (a kept blend is written to
        <root>/pipeline.py and submission.csv); None when there is nothing to blend. `resources` are for the Ray
        task the actor runs it in."""
        verified = [c for c in self.leaderboard() if c.status == "verified"]
        if len(verified) < 2 and not any(c.within_noise_rounds() for c in verified):
            return None
        self.ensemble = self._stack(summary, tuple(verified), root, seed, resources)
        return self.ensemble

    def _stack(self, summary: TaskSummary, verified: tuple[Candidate, ...], root: str, seed: int,
               resources: dict[str, float]) -> EnsembleFit | None:
        from iml_ray.agents.stacking import stack_candidates

        return stack_candidates(summary, verified, Path(root), seed)
