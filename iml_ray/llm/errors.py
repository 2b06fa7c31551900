"""Why an LLM call did not produce a usable answer.

Every `LLMError` is something an agent survives: it falls back to the
deterministic rules policy. `BadAnswer` is different: the endpoint answered,
the answer was unusable, and the message is written for the model to act on
when it is asked again.
"""
from __future__ import annotations


class LLMError(Exception):
    """Base of the errors an agent catches to fall back to the rules policy."""


class LLMUnavailable(LLMError):
    """The endpoint still failed after retries, or refused the request outright."""


class BudgetExceeded(LLMError):
    """The competition's token or cost cap is reached."""


class OutOfTime(LLMError):
    """The part of the competition's time budget the LLM may take is used up."""


class CacheMiss(LLMError):
    """Strict replay mode and the response is not in the cache."""


class BadAnswer(ValueError):
    """An answer that cannot be parsed; the message tells the model what to send instead."""
