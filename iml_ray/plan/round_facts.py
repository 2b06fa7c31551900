"""What an improvement step is sized by (the verified round it improves on) and what it proposes.

Plain dataclasses shared by the rules' steps (plan/improvements.py) and the fine-tuning step (plan/fine_tuning.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from iml_ray.plan.repairs import Plans

# Of the time left, what an improvement round is planned to need at most. All of it: the sandbox stops a round at
# the track's deadline (the run still ends in its budget) and a round that runs out of time loses nothing the track
# had, while a step left untried leaves the track's CPUs idle until the run ends (adult at 90 s: 17 s idle for a
# 15 s step when a 0.8 share was kept back).
PLANNED_SHARE = 1.0
# A track's rounds share their families' fits (the traditional template's IML_FIT_CACHE): a round that changes one
# family pays for that family and the rest of the round, not for the others' fits. Never less than this share of
# the round it improves on, whatever its fits say.
MIN_OVERHEAD_SHARE = 0.25
EVERY_ROW_SHARE = 0.95       # a sample of at least this share of the rows takes them all
MIN_GROWTH = 1.5            # a step that buys less than this factor of compute (or of rows) is not worth a round


@dataclass(frozen=True)
class RoundFacts:
    """What the verified round it improves on measured."""

    seconds: float                  # the round's wall time, sandbox start to verified output
    run_info: dict                  # the pipeline's run_info.json
    n_train: int
    can_search: bool                # a Ray Tune search is possible in this track (settings, space, hardware)
    scale: float = 1.0              # seconds / the round's measured time (other threads now, its search left out)
    prep_check_s: float = 0.0       # the verified prep's check (fit, transform train and test: the encoding, if any)
    n_test: int = 0
    gpus: int = 0                   # GPUs the track's rounds may use

    def _fits(self) -> dict:
        return ((self.run_info.get("final") or {}).get("model") or {}).get("fits") or {}

    def family_s(self, family: str) -> float:
        """The family's fit seconds over the round, as fitted or as the round that made a reused fit measured them."""
        return self.scale * float((self._fits().get("seconds") or {}).get(family, 0.0))

    def family_fit_s(self, family: str) -> float | None:
        """The family's seconds per fit over the round (None when the round did not count its fits)."""
        count = int((self._fits().get("counts") or {}).get(family) or 0)
        return self.family_s(family) / count if count else None

    def final_fit_s(self) -> dict[str, float]:
        """Each family's seconds of fitting in the final fit alone: the process's fits counted after the
        validation's (empty when the round did not count them)."""
        final = self._fits().get("seconds") or {}
        validation = ((((self.run_info.get("validation") or {}).get("model") or {}).get("fits") or {})
                      .get("seconds") or {})
        return {name: self.scale * max(0.0, float(seconds) - float(validation.get(name, 0.0)))
                for name, seconds in final.items()}

    def fitted_families(self) -> list[str]:
        return list(self._fits().get("seconds") or {})

    @property
    def overhead_s(self) -> float:
        """What a round costs besides fitting models afresh (the sandbox, the prep, predicting, reading fits back):
        all of it when the round says nothing of its fits (a network, an LLM's module)."""
        fits = self._fits()
        if not fits.get("seconds"):
            return self.seconds
        return max(MIN_OVERHEAD_SHARE * self.seconds, self.seconds - self.scale * float(fits.get("made_s") or 0.0))

    @property
    def fresh_s(self) -> float:
        """The round fitted with nothing to reuse (more rows, another prep, bagging: every fit is made again)."""
        families = self._fits().get("seconds") or {}
        return max(self.seconds, self.overhead_s + sum(self.family_s(name) for name in families))

    def without_fits_but(self, *families: str) -> float:
        """A round that fits these families again and reads the others back from the earlier rounds."""
        if not self._fits().get("seconds"):
            return self.seconds
        return self.overhead_s + sum(self.family_s(name) for name in families)


@dataclass(frozen=True)
class Improvement:
    plans: Plans
    step: str                       # "rows" | "network_time" | "fine_tune" | "search" | "bagging" | a family's name ...
    change: str                     # what changes, for people
    expected_s: float               # the round's expected wall time
    search_s: float | None = None   # run the round with a Ray Tune search of about this long
    tuned_params: dict | None = None    # the searched settings the round runs with (None: the round's, unchanged)
