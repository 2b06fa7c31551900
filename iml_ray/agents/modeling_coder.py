"""ModelingCoder: the model module of one track (`fit_model`, `predict_model`, `describe_model`).

Rules: the track's template (traditional or custom_nn) filled from the plan
(`codegen.render.render_model`). LLM: the model writes the module for the
matrix the verified prep module returned.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from iml_ray.agents.base import Agent
from iml_ray.agents.code_answer import parse_module
from iml_ray.llm.prompt import render

if TYPE_CHECKING:
    from iml_ray.blueprint import InterfaceContract, TrackPlan, TrainPlan
    from iml_ray.llm.brain import Brain
    from iml_ray.task.files import TaskSummary


class ModelingCoder(Agent):
    name = "modeling_coder"
    prompt = "modeling_coder"

    def write(self, summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract) -> str:
        from iml_ray.codegen.render import render_model

        return render_model(summary, plan, train, contract)

    def draft(self, summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract,
              prep_output: dict, threads: int, deadline: float | None = None) -> tuple[str, str]:
        code = self._with_llm(f"model module for {plan.track}", lambda brain: ask_llm(
            brain, summary, plan, contract, prep_output, threads), deadline) \
            if plan.model_template in ("traditional", "custom_nn") else None
        return (self.write(summary, plan, train, contract), "rules") if code is None else (code, "llm")


def ask_llm(brain: Brain, summary: TaskSummary, plan: TrackPlan, contract: InterfaceContract, prep_output: dict,
            threads: int) -> str:
    code = brain.ask(messages(plan.track, summary.target, summary.problem_type, summary.metric, summary.n_train,
                              plan.to_json(), prep_output, contract.to_json(), threads),
                     parse)
    brain.note("llm", f"model module for {plan.track} written")
    return code


def messages(track: str, target: str, problem_type: str, metric: str, n_train: int, plan: dict,
             prep_output: dict, contract: dict, threads: int) -> list[dict]:
    return render(__package__, ModelingCoder.prompt, track=track, target=target, problem_type=problem_type,
                  metric=metric, n_train=str(n_train), classes=contract["classes"] or "(regression)", plan=plan,
                  prep_output=prep_output, contract=contract, target_encoding=contract["target_encoding"],
                  prediction=contract["prediction"], threads=str(threads))


def parse(text: str) -> str:
    """The model module's code; raises BadAnswer when it does not parse or lacks an entry point."""
    return parse_module(text, "model")
