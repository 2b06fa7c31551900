"""A track after its first verified candidate: improvement rounds while time is left (issue 18's anytime tracks).

Each round takes the next step of plan/improvements.py on the best verified candidate's plans, re-renders
the rules modules, and runs them through the same checks as any round. The round's candidate replaces the
best only when the framework's holdout score is better; otherwise (worse, failed or out of time) the track
goes back to the best candidate's modules, so an improvement can never lose what the track had.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from iml_ray.blueprint import RepairRound
from iml_ray.metrics.registry import get_metric
from iml_ray.plan.improvements import REPEATABLE, RoundFacts, next_improvement
from iml_ray.plan.repairs import Plans
from iml_ray.track.checks import read_json
from iml_ray.track.job import ModuleSlot, search_pays_off

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verified:
    """A verified round and the track's state that produced it (to go back to)."""

    number: int
    round_dir: Path
    score: float
    seconds: float
    plans: Plans
    prep: ModuleSlot
    model: ModuleSlot
    prep_verified: str | None
    prep_output: dict


def snapshot(track, number: int, round_dir: Path, score: float, seconds: float) -> Verified:
    return Verified(number, round_dir, score, seconds, track.plans, dataclasses.replace(track.prep),
                    dataclasses.replace(track.model), track.prep_verified, dict(track.prep_output))


def restore(track, best: Verified) -> None:
    track.plans = best.plans
    track.prep, track.model = dataclasses.replace(best.prep), dataclasses.replace(best.model)
    track.prep_verified, track.prep_output = best.prep_verified, dict(best.prep_output)


def improve(track, best: Verified, attempt_round) -> tuple[Verified, str]:
    """Improvement rounds until none is left or fits the time; the best verified round and why it stopped.

    attempt_round: the loop's round runner (track, number, round_dir) -> Attempt."""
    job = track.job
    if not job.improve:
        return best, "stopped: improvements are off for this track"
    if any(slot.source != "rules" for slot in track.slots.values()):
        return best, "stopped: the rules do not re-plan a module the LLM wrote"
    higher = get_metric(job.summary.metric).higher_is_better
    exhausted: set[str] = set()
    if (read_json(best.round_dir / "output" / "run_info.json").get("validation") or {}).get("tuning"):
        exhausted.add("search")         # the first round searched already (whether or not it beat the defaults)
    number = best.number + 1
    while True:
        left = job.deadline - time.time()
        facts = RoundFacts(best.seconds, read_json(best.round_dir / "output" / "run_info.json"), job.summary.n_train,
                           can_search=job.tune is not None and search_pays_off(track.plans, job.gpu_ids))
        step = next_improvement(best.plans, facts, left, frozenset(exhausted))
        if step is None:
            waiting = next_improvement(best.plans, facts, float("inf"), frozenset(exhausted))
            if waiting is None:
                return best, "out of improvements: every step was tried or does not apply"
            return best, (f"out of time for improvements: the next step ({waiting.step}, about {waiting.expected_s:.0f} s) "
                          f"does not fit the {left:.0f} s left")
        _apply(track, step.plans, best)
        track.tuned_params = dict(facts.run_info.get("tuned_params") or {})
        track.tuning, track.improving, track.search_s = step.search_s is not None, True, step.search_s
        round_dir = track.code_dir / f"round_{number}"
        round_dir.mkdir(parents=True, exist_ok=True)
        (round_dir / "prep.py").write_text(track.prep.code)
        track.notify("improving", number, detail=step.change)
        started = time.time()
        attempt = attempt_round(track, number, round_dir)
        seconds = round(time.time() - started, 2)
        kept = attempt.failure is None and (attempt.score > best.score if higher else attempt.score < best.score)
        failure = attempt.failure
        track.rounds.append(RepairRound(number, "ok" if failure is None else failure.status, seconds,
                                        None if failure is None else failure.message, change=step.change,
                                        score=attempt.score, step=step.step, kept=kept))
        log.info("track %s improvement %s: %s (%s)", track.name, step.step, "kept" if kept else "not kept",
                 f"{attempt.score:.5g} vs {best.score:.5g}" if failure is None else failure.message)
        if kept:
            best = snapshot(track, number, round_dir, attempt.score, seconds)
            track.notify("verified", number, score=attempt.score)
        else:
            restore(track, best)
            track.notify("verified", best.number, detail=f"kept round {best.number}", score=best.score)
        if not kept or step.step not in REPEATABLE:
            exhausted.add(step.step)
        number += 1


def _apply(track, plans: Plans, best: Verified) -> None:
    """The step's plans, with the rules modules written for them (the prep only when its plan changed)."""
    agents, job = track.agents, track.job
    track.plans = plans
    if plans.prep != best.plans.prep:
        track.prep.code = agents.prep_coder.write(job.summary, plans.prep)
    track.model.code = agents.model_coder.write(job.summary, plans.track, plans.train, job.contract)
