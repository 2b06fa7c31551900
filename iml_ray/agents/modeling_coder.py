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
    warm_imports = ("iml_ray.codegen.render", "iml_ray.metrics.registry")
    prompt = "modeling_coder"

    def write(self, summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract) -> str:
        from iml_ray.codegen.render import render_model

        return render_model(summary, plan, train, contract)

    def draft(self, summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract,
              prep_output: dict, threads: int, deadline: float | None = None, prep_source: str = "",
              context: dict | None = None) -> tuple[str, str]:
        """The model module for the verified prep module (prep_output: what it returned, with its feature names;
        prep_source: its code) and who wrote it; context: the findings, advice and notes of the plan phase."""
        code = self._with_llm(f"model module for {plan.track}", lambda brain: ask_llm(
            brain, summary, plan, contract, prep_output, threads, prep_source, context or {}), deadline) \
            if plan.model_template in ("traditional", "custom_nn") else None
        return (self.write(summary, plan, train, contract), "rules") if code is None else (code, "llm")


    def improve(self, summary: TaskSummary, plan: TrackPlan, contract: InterfaceContract, prep_output: dict,
                threads: int, brief: dict, deadline: float | None = None) -> str | None:
        """A better version of the track's verified model module, from what the framework measured of it (`brief`:
        its code, score, describe_model(), the other tracks' scores, the track's rounds, the time left); None when
        no LLM drives this agent or it could not answer."""
        return self._with_llm(f"improved model module for {plan.track}", lambda brain: ask_to_improve(
            brain, summary, plan, contract, prep_output, threads, brief), deadline)


def ask_to_improve(brain: Brain, summary: TaskSummary, plan: TrackPlan, contract: InterfaceContract,
                   prep_output: dict, threads: int, brief: dict) -> str:
    from iml_ray.agents.briefs import run_facts
    from iml_ray.metrics.registry import get_metric

    higher = get_metric(summary.metric).higher_is_better
    stable = dict(track=plan.track, target=summary.target, problem_type=summary.problem_type, metric=summary.metric,
                  direction="higher" if higher else "lower", n_train=str(summary.n_train),
                  classes=contract.classes or "(regression)", prep_output=prep_output, contract=contract.to_json(),
                  code=brief["code"].rstrip(), score=f"{brief['score']:.6g}", model=brief.get("model") or {},
                  target_encoding=contract.target_encoding, prediction=contract.prediction, threads=str(threads),
                  **run_facts(brief.get("context") or {}, brief["fits"]))
    timing = dict(others=brief.get("others") or "(no other track has scored yet)", history=brief.get("history") or [],
                  seconds_left=f"{brief['seconds_left']:.0f}", round_s=f"{brief['round_s']:.0f}",
                  time_limit=stable.pop("time_limit"))
    # The seconds, the other tracks' progress and the rounds' messages change from run to run: the answer is cached
    # under the module, its score, its description and what the rounds scored (so a second request after a version
    # that did not pay off is a new question), and a rerun of the same run finds it.
    rounds = [{k: r.get(k) for k in ("round", "kind", "status", "score", "kept")} for r in brief.get("history") or []]
    key = {**dict.fromkeys(timing, "-"), "history": rounds}
    code = brain.ask(render(__package__, "modeling_coder_improve", **stable, **timing), parse,
                     cache_as=render(__package__, "modeling_coder_improve", **stable, **key))
    brain.note("llm", f"model module for {plan.track} improved")
    return code


def ask_llm(brain: Brain, summary: TaskSummary, plan: TrackPlan, contract: InterfaceContract, prep_output: dict,
            threads: int, prep_source: str = "", context: dict | None = None) -> str:
    def asked(context: dict | None) -> list[dict]:
        return messages(plan.track, summary.target, summary.problem_type, summary.metric, summary.n_train,
                        plan.to_json(), prep_output, contract.to_json(), threads, prep_source, context)

    # The round's time limit changes from run to run: the answer is cached without it, so a rerun finds it.
    code = brain.ask(asked(context), parse, cache_as=asked({**(context or {}), "round_limit_s": None}))
    brain.note("llm", f"model module for {plan.track} written")
    return code


def messages(track: str, target: str, problem_type: str, metric: str, n_train: int, plan: dict,
             prep_output: dict, contract: dict, threads: int, prep_source: str = "",
             context: dict | None = None) -> list[dict]:
    from iml_ray.agents.briefs import run_facts

    context = context or {}
    return render(__package__, ModelingCoder.prompt, **run_facts(context, int(context.get("fits") or 2)),
                  track=track, target=target, problem_type=problem_type,
                  metric=metric, n_train=str(n_train), classes=contract["classes"] or "(regression)", plan=plan,
                  prep_output=prep_output, contract=contract, target_encoding=contract["target_encoding"],
                  prediction=contract["prediction"], threads=str(threads),
                  prep_source=(prep_source or "(not shown)").rstrip(), findings=context.get("findings") or "(none)",
                  advice=context.get("advice") or "(none)", notes=context.get("notes") or "(none)",
                  examples=context.get("examples") or "(none)")


def parse(text: str) -> str:
    """The model module's code; raises BadAnswer when it does not parse or lacks an entry point."""
    return parse_module(text, "model")
