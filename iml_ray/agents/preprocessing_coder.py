"""PreprocessingCoder: the prep module (a `Preprocessor` class) that turns the task's columns into matrices.

Rules: the prep template filled from the plan (`codegen.render.render_prep`).
LLM: the model writes the module to the plan and the contract; the framework's
contract check decides whether it is kept.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from iml_ray.agents.base import Agent
from iml_ray.agents.code_answer import parse_module
from iml_ray.llm.prompt import render

if TYPE_CHECKING:
    from iml_ray.blueprint import InterfaceContract, PrepPlan
    from iml_ray.llm.brain import Brain
    from iml_ray.task.files import TaskSummary


class PreprocessingCoder(Agent):
    name = "preprocessing_coder"
    warm_imports = ("iml_ray.codegen.render",)
    prompt = "preprocessing_coder"

    def write(self, summary: TaskSummary, plan: PrepPlan) -> str:
        """The rules module for this plan (the template filled from the data)."""
        from iml_ray.codegen.render import render_prep

        return render_prep(summary, plan)

    def draft(self, summary: TaskSummary, plan: PrepPlan, contract: InterfaceContract, columns: str,
              deadline: float | None = None, context: dict | None = None) -> tuple[str, str]:
        """The module for the track's first round and who wrote it: "llm" or "rules". context: what the plan phase
        learned (findings, advice, notes) and who reads the matrix (consumers)."""
        if self.brain is not None and ((plan.text and plan.text_mode == "pretrained")
                                       or (plan.image and plan.image_mode == "pretrained")):
            # The encoder code loads local checkpoints with pinned hashes: it stays the framework's.
            self.brain.note("rules", "pretrained encoders: the framework's module")
            return self.write(summary, plan), "rules"
        code = self._with_llm("prep module", lambda brain: ask_llm(brain, summary, plan, contract, columns, context or {}),
                              deadline)
        return (self.write(summary, plan), "rules") if code is None else (code, "llm")


def ask_llm(brain: Brain, summary: TaskSummary, plan: PrepPlan, contract: InterfaceContract, columns: str,
            context: dict) -> str:
    code = brain.ask(messages(summary.target, summary.problem_type, summary.metric, columns, plan.to_json(),
                              contract.to_json(), context),
                     parse)
    brain.note("llm", "prep module written")
    return code


def messages(target: str, problem_type: str, metric: str, columns: str, plan: dict, contract: dict,
             context: dict | None = None) -> list[dict]:
    context = context or {}
    return render(__package__, PreprocessingCoder.prompt, target=target, problem_type=problem_type, metric=metric,
                  columns=columns, plan=plan, contract=contract, prep_class=contract["prep_class"],
                  input_columns=contract["input_columns"], findings=context.get("findings") or "(none)",
                  advice=context.get("advice") or "(none)", notes=context.get("notes") or "(none)",
                  examples=context.get("examples") or "(none)",
                  consumers=context.get("consumers") or "the track's models")


def parse(text: str) -> str:
    """The prep module's code; raises BadAnswer when it does not parse or lacks `Preprocessor`."""
    return parse_module(text, "prep")
