"""Assembler: the prep module, the model module and the runner joined into one standalone pipeline.

The framework's own agent: no LLM drives it (`codegen.assemble`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from iml_ray.agents.base import Agent

if TYPE_CHECKING:
    from iml_ray.blueprint import InterfaceContract
    from iml_ray.task.files import TaskSummary


class Assembler(Agent):
    name = "assembler"
    warm_imports = ("iml_ray.codegen.assemble", "iml_ray.codegen.render")

    def assemble(self, summary: TaskSummary, contract: InterfaceContract, track: str, prep_code: str,
                 model_code: str) -> tuple[str, dict[str, tuple[int, int]]]:
        """The standalone pipeline and the line range of each section (to localise tracebacks)."""
        from iml_ray.codegen.assemble import ModuleSource, assemble, bind_model, section_lines
        from iml_ray.codegen.render import render_runner

        modules = [ModuleSource("prep", prep_code), ModuleSource("model", bind_model(model_code)),
                   ModuleSource("runner", render_runner(summary, contract))]
        script = assemble(modules, name=summary.name, problem_type=summary.problem_type, metric=summary.metric, track=track)
        return script, section_lines(script)
