"""Why an LLM call did not produce a usable answer.

Every `LLMError` is something an agent survives: it falls back to the
deterministic rules policy. `BadAnswer` is different: the endpoint answered,
the answer was unusable, and the message is written for the model to act on
when it is asked again. `CacheMiss` is neither: strict replay was asked for,
so a run that would need a new answer stops with the user's error.
"""
from __future__ import annotations

from iml_ray.errors import UserError


class LLMError(Exception):
    """Base of the errors an agent catches to fall back to the rules policy."""


class LLMUnavailable(LLMError):
    """The endpoint still failed after retries, or refused the request outright."""


class BudgetExceeded(LLMError):
    """The competition's token or cost cap is reached."""


class OutOfTime(LLMError):
    """The part of the competition's time budget the LLM may take is used up."""


class CacheMiss(UserError):
    """Strict replay mode (--llm-replay) and the response is not in the cache: the run stops, never on rules."""

    def __init__(self, problem: str, fix: str = "Replay only what an earlier run with the same task, flags and models "
                                              "asked; drop --llm-replay to call the endpoint."):
        super().__init__(problem, fix)


class BadAnswer(ValueError):
    """An answer that cannot be parsed; the message tells the model what to send instead."""
