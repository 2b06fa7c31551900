"""Debugger: the blamed module repaired, and only that module.

Rules: `plan.repairs.repair` re-plans the failing module with safer or smaller
settings (the coders then re-render it). LLM: the model rewrites a module it
wrote, up to the competition's cap of rewrites.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from iml_ray.agents.base import Agent
from iml_ray.agents.briefs import LOG_TOKENS, scrub_paths
from iml_ray.agents.code_answer import ENTRY_POINTS, parse_module
from iml_ray.blueprint import ModuleRole
from iml_ray.llm.extract import clip_middle
from iml_ray.llm.prompt import render

if TYPE_CHECKING:
    from iml_ray.blueprint import InterfaceContract
    from iml_ray.llm.brain import Brain
    from iml_ray.llm.plumbing import LLMPlumbing
    from iml_ray.plan.repairs import Diagnosis, Failure, Plans, Repair


class Debugger(Agent):
    name = "debugger"
    warm_imports = ("iml_ray.plan.repairs",)
    prompt = "debugger"

    def __init__(self, policy: str = "rules", llm: LLMPlumbing | None = None):
        super().__init__(policy, llm)
        # Over every track of the competition the repair work is capped: the count lives in the competition's
        # ledger (this object serves one call); without a ledger (no Ray), here.
        self._rewrites = 0
        self._count_lock = threading.Lock()

    def repair(self, diagnosis: Diagnosis, plans: Plans, n_rows: int, stage: str = "") -> Repair | None:
        """The rules repair: the failing module re-planned with safer or smaller settings (stage: the failure's)."""
        from iml_ray.plan.repairs import repair

        return repair(diagnosis, plans, n_rows, stage)

    def rewrite(self, role: ModuleRole, code: str, failure: Failure, diagnosis: Diagnosis, contract: InterfaceContract,
                columns: str, module_name: str, deadline: float | None = None) -> tuple[str | None, str]:
        """The LLM's rewrite of one module (only that one), or None and why not."""
        if self.brain is None:
            return None, "no LLM policy"
        from iml_ray.llm.errors import LLMError

        cap = self.llm.max_rewrites
        if not self._take_rewrite(cap):
            self.brain.note("rules", f"rewrite of {module_name}: the competition's {cap} LLM rewrites are spent")
            return None, f"the competition's {cap} LLM rewrites are spent"
        try:
            with self.brain.until(deadline):
                return ask_llm(self.brain, role, code, failure, diagnosis.blamed, diagnosis.explanation, contract,
                               columns, module_name), ""
        except LLMError as exc:
            self._fell_back(exc, f"rewrite of {module_name}")
            return None, f"{type(exc).__name__}: {exc}"

    def _take_rewrite(self, cap: int) -> bool:
        if self.llm.ledger is not None:
            from iml_ray.llm.brain import blocking

            return bool(blocking(self.llm.ledger).take_rewrite(cap))
        with self._count_lock:
            if self._rewrites >= cap:
                return False
            self._rewrites += 1
            return True


def ask_llm(brain: Brain, role: ModuleRole, code: str, failure: Failure, blamed: str, explanation: str,
            contract: InterfaceContract, columns: str, module_name: str) -> str:
    new = brain.ask(messages(scrub_paths(failure.message), blamed, explanation,
                             clip_middle(scrub_paths(failure.stderr_tail), LOG_TOKENS), contract.to_json(),
                             columns, module_name, role, code),
                    lambda text: parse(text, role))
    brain.note("llm", f"rewrote {module_name}")
    return new


def messages(failure: str, blamed: str, explanation: str, log: str, contract: dict, columns: str, module_name: str,
             role: ModuleRole, code: str) -> list[dict]:
    return render(__package__, Debugger.prompt, failure=failure, blamed=blamed, explanation=explanation,
                  log=log or "(empty)", contract=contract, columns=columns, module_name=module_name, code=code,
                  entry_points="defining " + ", ".join(ENTRY_POINTS[role]))


def parse(text: str, role: ModuleRole) -> str:
    """The rewritten module's code, checked like a coder's draft."""
    return parse_module(text, role)
