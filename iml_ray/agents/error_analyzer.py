"""ErrorAnalyzer: which module a failed round blames (prep, model, the contract, or resources), and why.

Rules: `plan.repairs.diagnose` reads the failure's stage, status and log. LLM:
asked only when a module it wrote may be at fault.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from iml_ray.agents.base import Agent
from iml_ray.agents.briefs import LOG_TOKENS, scrub_paths
from iml_ray.llm.errors import BadAnswer
from iml_ray.llm.extract import clip_middle, extract_json
from iml_ray.llm.prompt import render

if TYPE_CHECKING:
    from iml_ray.blueprint import InterfaceContract
    from iml_ray.llm.brain import Brain
    from iml_ray.plan.repairs import Diagnosis, Failure

BLAMES = ("prep", "model", "contract_fulfilment", "contract_usage", "resources")


class ErrorAnalyzer(Agent):
    name = "error_analyzer"
    warm_imports = ("iml_ray.plan.repairs",)
    prompt = "error_analyzer"

    def analyze(self, failure: Failure, contract: InterfaceContract | None = None,
                sources: dict[str, str] | None = None, deadline: float | None = None) -> Diagnosis:
        """Rules localise every failure; the LLM is asked when a module it wrote may be at fault."""
        from iml_ray.plan.repairs import Diagnosis, diagnose

        rules = diagnose(failure)
        if contract is None or "llm" not in (sources or {}).values():
            return rules
        answer = self._with_llm("diagnosis", lambda brain: ask_llm(brain, failure, contract, sources or {}), deadline)
        return rules if answer is None else Diagnosis(answer[0], rules.kind, answer[1], by="llm")


def ask_llm(brain: Brain, failure: Failure, contract: InterfaceContract, sources: dict[str, str]) -> tuple[str, str]:
    blamed, explanation = brain.ask(
        messages(failure.stage, failure.status, failure.failing_section or "unknown", scrub_paths(failure.message),
                 [scrub_paths(v) for v in failure.violations], clip_middle(scrub_paths(failure.stderr_tail), LOG_TOKENS),
                 contract.to_json(), sources),
        parse)
    brain.note("llm", f"blamed {blamed}")
    return blamed, explanation


def messages(stage: str, status: str, section: str, message: str, violations: list[str], log: str, contract: dict,
             sources: dict) -> list[dict]:
    return render(__package__, ErrorAnalyzer.prompt, stage=stage, status=status, section=section, message=message,
                  violations="\n".join(violations) or "(none)", log=log or "(empty)", contract=contract, sources=sources)


def parse(text: str) -> tuple[str, str]:
    answer = extract_json(text)
    blamed = answer.get("blamed")
    # "Prep", " model ": a capable model's spelling of a valid answer is taken as meant.
    blamed = blamed.strip().lower().replace(" ", "_") if isinstance(blamed, str) else blamed
    if blamed not in BLAMES:
        raise BadAnswer(f'"blamed" must be one of {list(BLAMES)}, not {blamed!r}')
    return blamed, str(answer.get("explanation", ""))[:500]
