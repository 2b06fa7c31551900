"""The Coordinator of one competition: the live status of every track and the leaderboard of verified candidates."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from iml_ray.blueprint import Candidate


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
