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
from iml_ray.plan.fine_tuning import fine_tune_note
from iml_ray.plan.improvements import REPEATABLE, SAME_VALIDATION, RoundFacts, next_improvement
from iml_ray.plan.repairs import Plans
from iml_ray.scoring.noise import gain_deviation
from iml_ray.track.checks import read_json
from iml_ray.track.job import ModuleSlot, search_pays_off

log = logging.getLogger(__name__)

# Of a round's wall time, the part more threads speed up (Amdahl's law): starting the process, reading the data and
# the prep's single-threaded steps stay as they were, and the fits themselves do not scale perfectly.
PARALLEL_PART = 0.5
# A round that scores better is kept when its gain is more than this many paired-bootstrap deviations of the score
# difference on the validation rows (about five chances in six that it is no accident).
NOISE_DEVIATIONS = 1.0


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
    threads: int = 1                # the round ran with this many threads
    prep_check_s: float = 0.0       # its prep's check took this long (the encoding of every row, if any)


def snapshot(track, number: int, round_dir: Path, score: float, seconds: float) -> Verified:
    return Verified(number, round_dir, score, seconds, track.plans, dataclasses.replace(track.prep),
                    dataclasses.replace(track.model), track.prep_verified, dict(track.prep_output),
                    track.threads or track.job.cpus, track.prep_check_s)


def restore(track, best: Verified) -> None:
    track.plans = best.plans
    track.prep, track.model = dataclasses.replace(best.prep), dataclasses.replace(best.model)
    track.prep_verified, track.prep_output = best.prep_verified, dict(best.prep_output)
    track.prep_check_s = best.prep_check_s


def improve(track, best: Verified, attempt_round) -> tuple[Verified, str]:
    """Improvement rounds until none is left or fits the time; the best verified round and why it stopped.

    attempt_round: the loop's round runner (track, number, round_dir) -> Attempt."""
    job = track.job
    if not job.improve:
        return best, "stopped: improvements are off for this track"
    if any(slot.source != "rules" for slot in track.slots.values()):
        return best, "stopped: the rules do not re-plan a module the LLM wrote"
    exhausted: set[str] = set()
    if (read_json(best.round_dir / "output" / "run_info.json").get("validation") or {}).get("tuning"):
        exhausted.add("search")         # the first round searched already (whether or not it beat the defaults)
    number = best.number + 1
    while True:
        left = job.deadline - time.time()
        threads = round_threads(track)
        track.threads = threads if threads != job.cpus else 0
        run_info = read_json(best.round_dir / "output" / "run_info.json")
        facts = RoundFacts(scaled_seconds(fit_seconds(best.seconds, run_info), best.threads, threads), run_info,
                           job.summary.n_train,
                           can_search=job.tune is not None and search_pays_off(track.plans, job.gpu_ids),
                           scale=scaled_seconds(1.0, best.threads, threads),
                           prep_check_s=best.prep_check_s,
                           n_test=int(((best.prep_output.get("test") or {}).get("shape") or [0])[0] or 0),
                           gpus=len(job.gpu_ids))
        step = next_improvement(best.plans, facts, left, frozenset(exhausted))
        if step is None:
            return best, _stop_message(best, facts, left, frozenset(exhausted))
        _apply(track, step.plans, best, threads)
        # The step's own searched settings (finer boosting halves a searched rate), else the best round's.
        searched = step.tuned_params if step.tuned_params is not None else facts.run_info.get("tuned_params")
        track.tuned_params = dict(searched or {})
        track.tuning, track.improving, track.search_s = step.search_s is not None, True, step.search_s
        best, kept = run_step(track, best, number, step.step, step.change, attempt_round)
        if not kept or step.step not in REPEATABLE:
            exhausted.add(step.step)
        number += 1


def run_step(track, best: Verified, number: int, step: str, change: str, attempt_round) -> tuple[Verified, bool]:
    """One improvement round on the track's modules as they stand: run and score it; it becomes the best only when
    the framework's score is better, else the track goes back to the best. The best after it, and whether it was kept."""
    higher = get_metric(track.job.summary.metric).higher_is_better
    round_dir = track.code_dir / f"round_{number}"
    round_dir.mkdir(parents=True, exist_ok=True)
    (round_dir / "prep.py").write_text(track.prep.code)
    track.notify("improving", number, detail=change)
    started = time.time()
    attempt = attempt_round(track, number, round_dir)
    seconds = round(time.time() - started, 2)
    # A step whose validation is the best round's (its fits read back) is kept when it verifies at the same score.
    kept = attempt.failure is None and ((attempt.score > best.score if higher else attempt.score < best.score)
                                        or (step in SAME_VALIDATION and attempt.score == best.score))
    noise = _within_noise(track, round_dir, best, step, attempt.score) if kept and step not in SAME_VALIDATION else None
    kept = kept and noise is None
    failure = attempt.failure
    track.rounds.append(RepairRound(number, "ok" if failure is None else failure.status, seconds,
                                    None if failure is None else failure.message, change=change, diagnosis=noise,
                                    score=attempt.score, step=step, kept=kept, threads=track.threads or None,
                                    author=authors(track), within_noise=noise is not None))
    log.info("track %s improvement %s: %s (%s)", track.name, step, "kept" if kept else "not kept",
             f"{attempt.score:.5g} vs {best.score:.5g}" if failure is None else failure.message)
    if kept:
        track.notify("verified", number, score=attempt.score)
        return snapshot(track, number, round_dir, attempt.score, seconds), True
    restore(track, best)
    track.notify("verified", best.number, detail=f"kept round {best.number}", score=best.score)
    return best, False


def _within_noise(track, round_dir: Path, best: Verified, step: str, score: float) -> str | None:
    """Why a round that scored better is not kept: its gain is within NOISE_DEVIATIONS paired-bootstrap deviations
    of the validation rows (scoring/noise.py), so the track would keep a change that is as likely worse on other
    rows, and every later step would build on it. None: kept. A step that gives the same model more rows or more
    time (REPEATABLE) is expected to help and is kept on any gain."""
    if step in REPEATABLE:
        return None
    try:
        deviation = gain_deviation(round_dir / "output" / "valid_predictions.csv",
                                   best.round_dir / "output" / "valid_predictions.csv", track.job.summary)
    except (OSError, ValueError, KeyError):
        log.debug("no paired bootstrap of round %s against round %s", round_dir.name, best.number, exc_info=True)
        return None
    gain = abs(score - best.score)
    if deviation is None or gain > NOISE_DEVIATIONS * deviation:
        return None
    return f"gain {gain:.3g} within the validation rows' noise (paired bootstrap deviation {deviation:.3g})"


def _stop_message(best: Verified, facts: RoundFacts, left: float, exhausted: frozenset[str]) -> str:
    waiting = _first_step_with_more_time(best.plans, facts, left, exhausted)
    if waiting is None:
        said = "out of improvements: every step was tried or does not apply"
    else:
        said = (f"out of time for improvements: the next step ({waiting.step}, about {waiting.expected_s:.0f} s) "
                f"does not fit the {left:.0f} s left")
    # Whether a pretrained encoder was fine-tuned is the report's to say (issue 18); a round that tried and lost says
    # so in the rounds.
    encoder = None if "fine_tune" in exhausted else fine_tune_note(best.plans, facts, left)
    return said if encoder is None or (waiting is not None and waiting.step == "fine_tune") else f"{said}; {encoder}"


def _first_step_with_more_time(plans, facts: RoundFacts, left: float, exhausted: frozenset[str]):
    """The step the track would take with the least more time than it has (for its stop message: a search is sized
    by the time it is given, so asking with unlimited time would name its 900 s maximum)."""
    for factor in (1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0):
        step = next_improvement(plans, facts, max(left, 1.0) * factor, exhausted)
        if step is not None:
            return step
    return next_improvement(plans, facts, float("inf"), exhausted)


def authors(track) -> str:
    """Who wrote the modules a round ran: "rules", "llm", or each module's author when they differ."""
    prep, model = (slot.source.split(" ")[0] for slot in (track.prep, track.model))
    return prep if prep == model else f"prep: {prep}, model: {model}"


def round_threads(track) -> int:
    """The next round's threads: the track's own, or more when the competition's finished tracks left CPUs idle
    (the Coordinator knows which have finished and what they held)."""
    return threads_handed_on(track.agents.coordinator, track.name, track.job.cpus)


def threads_handed_on(coordinator, name: str, own: int) -> int:
    """A track's threads: its own, or the CPUs the Coordinator hands it (cpus_for) when that is more."""
    if coordinator is None:
        return own
    try:
        cpus = float(coordinator.cpus_for(name))
    except Exception:                   # noqa: BLE001 - the round runs on the track's own CPUs
        log.debug("the Coordinator could not say what CPUs are free", exc_info=True)
        return own
    return max(own, int(round(cpus)))


def fit_seconds(seconds: float, run_info: dict) -> float:
    """A round's wall time without its Ray Tune search: later rounds run with the parameters it found and do not
    search again (adult: a 29 s round of which the search took 23 s made bagging look 72 s long)."""
    searched = float(((run_info.get("validation") or {}).get("tuning") or {}).get("seconds") or 0.0)
    return max(1.0, seconds - searched) if searched else seconds


def scaled_seconds(seconds: float, threads_then: int, threads_now: int) -> float:
    """A round's measured wall time, as it would be with threads_now threads (PARALLEL_PART of it scales)."""
    if threads_now == threads_then or threads_then <= 0 or threads_now <= 0:
        return seconds
    return seconds * (1.0 - PARALLEL_PART + PARALLEL_PART * threads_then / threads_now)


def _apply(track, plans: Plans, best: Verified, threads: int) -> None:
    """The step's plans, with the rules modules written for them (the prep only when its plan changed), for a round
    on `threads` threads."""
    agents, job = track.agents, track.job
    plans = plans.with_threads(threads)
    track.plans = plans
    if plans.prep != best.plans.prep:
        track.prep.code = agents.prep_coder.write(job.summary, plans.prep)
    track.model.code = agents.model_coder.write(job.summary, plans.track, plans.train, job.contract)
