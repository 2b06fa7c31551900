"""Debugger prompt: rewrite one module; its answer is parsed like a coder's."""
from __future__ import annotations

from . import render
from .coders import ENTRY_POINTS, parse_module

__all__ = ["messages", "parse_module"]


def messages(failure: str, blamed: str, explanation: str, log: str, contract: dict, columns: str, module_name: str,
             role: str, code: str) -> list[dict]:
    return render("debugger", failure=failure, blamed=blamed, explanation=explanation, log=log or "(empty)",
                  contract=contract, columns=columns, module_name=module_name, code=code,
                  entry_points="defining " + ", ".join(ENTRY_POINTS[role]))
