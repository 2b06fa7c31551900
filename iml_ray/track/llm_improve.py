"""The LLM's side of a track's anytime loop (issue 21): improving a model module the LLM wrote.

The rules re-plan their own modules (track/improve.py); a module the LLM wrote is improved by the LLM. Its
ModelingCoder is shown the verified module, the score the framework gave it, what its describe_model() said, the
other tracks' scores, this track's rounds and the time left, and writes a better version; the round is run,
verified and scored like any other and kept only when the framework's score is better, so a worse, failing or
late version never loses what the track had.
"""
from __future__ import annotations

import logging
import time

from iml_ray.plan.resources import LLM_TRACK_SHARE
from iml_ray.plan.searches import MIN_SEARCH_S, SEARCH_SHARE
from iml_ray.track.checks import declares_search_space, read_json
from iml_ray.track.improve import Verified, fit_seconds, round_threads, run_step

log = logging.getLogger(__name__)

MAX_MISSES = 2          # versions in a row that did not beat the best: the track stops asking
# A new version's round is expected to need at least this factor of the verified round's time (the LLM's answer
# comes on top, and the new module may fit more than the old one did).
ROUND_FACTOR = 1.5


def improve_with_llm(track, best: Verified, attempt_round) -> tuple[Verified, str]:
    """LLM-written versions of the model module while time is left and the versions keep paying off."""
    job = track.job
    misses, version, number = 0, 0, best.number + 1
    searched: set[str] = set()        # the modules whose SEARCH_SPACE was searched
    while True:
        left = job.deadline - time.time()
        run_info = read_json(best.round_dir / "output" / "run_info.json")
        needed = max(job.min_round_s, ROUND_FACTOR * fit_seconds(best.seconds, run_info))
        if misses >= MAX_MISSES:
            return best, (f"out of improvements: the LLM's last {misses} versions of the model module did not beat "
                          f"round {best.number}")
        if left < needed:
            return best, (f"out of time for improvements: a new version of the model module needs about {needed:.0f} s, "
                          f"{left:.0f} s are left")
        threads = round_threads(track)
        track.threads = threads if threads != job.cpus else 0
        search_s = _search_seconds(track, best, run_info, left, needed, searched)
        if search_s is not None:
            # The module declares what to tune: search its SEARCH_SPACE before asking for another version.
            searched.add(best.model.code)
            track.tuning, track.improving, track.search_s = True, True, search_s
            best, kept = run_step(track, best, number, "llm_search",
                                  f"a Ray Tune search over the module's SEARCH_SPACE (about {search_s:.0f} s)", attempt_round)
            number += 1
            continue
        code = track.agents.model_coder.improve(job.summary, track.plans.track, job.contract, track.prep_output,
                                                track.threads or job.cpus, brief(track, best, run_info, left),
                                                deadline=time.time() + LLM_TRACK_SHARE * left)
        if code is None:
            return best, "stopped: the LLM wrote no improved model module (see the LLM events)"
        version += 1
        track.model.code = code
        # Another module: the parameters a search found for the last one do not apply to it.
        track.tuning, track.improving, track.search_s, track.tuned_params = False, True, None, {}
        best, kept = run_step(track, best, number, "llm_improve",
                              f"the LLM's version {version} of the model module, from round {best.number}'s", attempt_round)
        misses = 0 if kept else misses + 1
        number += 1


def _search_seconds(track, best: Verified, run_info: dict, left: float, needed: float,
                    searched: set[str]) -> float | None:
    """How long a search of the best module's SEARCH_SPACE may take; None when it declares none, was searched (in
    its first round or here), or the time left would not hold a search and the fits after it."""
    if track.job.tune is None or best.model.code in searched or not declares_search_space(best.model.code):
        return None
    if (run_info.get("validation") or {}).get("tuning"):
        return None
    seconds = min(SEARCH_SHARE * left, left - needed)
    return seconds if seconds >= MIN_SEARCH_S else None


def brief(track, best: Verified, run_info: dict, left: float) -> dict:
    """What the ModelingCoder is shown of the track's best round, its competition and its history."""
    validation = run_info.get("validation") or {}
    return {"code": best.model.code or "", "score": best.score,
            "model": validation.get("model") or (run_info.get("final") or {}).get("model") or {},
            "others": _other_tracks(track), "history": _history(track), "seconds_left": left, "round_s": best.seconds,
            "fits": track.plans.train.pipeline_fits,
            # An improvement round may run to the track's deadline.
            "context": {"round_limit_s": left, "prep_source": track.prep.source}}


def _other_tracks(track) -> dict:
    """The other tracks' best validation scores and where they are, from the Coordinator (best effort)."""
    if track.agents.coordinator is None:
        return {}
    try:
        status = track.agents.coordinator.snapshot()
    except Exception:                   # noqa: BLE001 - the prompt says no other track has scored yet
        log.debug("the Coordinator's snapshot failed", exc_info=True)
        return {}
    return {name: {"score": s.get("score"), "phase": s.get("phase"), "detail": s.get("detail")}
            for name, s in status.items() if name != track.name}


def _history(track) -> list[dict]:
    return [{"round": r.round, "kind": r.step or ("repair" if r.status != "ok" else "first draft"), "status": r.status,
             "score": r.score, "kept": r.kept, "failure": r.failure, "change": r.change} for r in track.rounds]
