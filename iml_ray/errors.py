"""Errors a user can act on.

A `UserError` is bad input, not a bug: the CLI prints its two lines and exits 2,
with no traceback. Everything else that escapes is a bug in iml-ray.
"""
from __future__ import annotations


class UserError(Exception):
    """What is wrong (one line) and what to do about it (one line)."""

    exit_code = 2

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(problem)
        self.problem = problem.rstrip(".")
        self.fix = fix

    def __reduce__(self):
        # Ray pickles exceptions across process boundaries; keep both lines.
        return (type(self), (self.problem, self.fix))

    def render(self) -> str:
        text = f"error: {self.problem}."
        if self.fix:
            text += f"\n       {self.fix}"
        return text


class TaskError(UserError):
    """The task directory cannot be used as it is."""


class UnsupportedTask(TaskError):
    """The task asks for an output iml-ray does not build (masks, boxes, generated text)."""


class OutputDirError(UserError):
    """The output directory holds something we must not overwrite."""


class NoSpaceError(UserError):
    """The disk (or the quota) holding the output directory is full: nothing was half-written, earlier files are intact."""

    def __init__(self, path: str, fix: str = ""):
        super().__init__(f"no space left on device writing {path}",
                         fix or "Free space on that disk or choose another --out; files written before are intact "
                                "(continue with --resume).")
        self.path = str(path)

    def __reduce__(self):
        return (type(self), (self.path, self.fix))


class ConfigError(UserError):
    """A configuration value is invalid."""
