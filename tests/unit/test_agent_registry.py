"""Every agent is found in one place: its module, its class, its rules entry point, its prompt and its parser."""
from __future__ import annotations

import importlib
import inspect
from importlib import resources

import pytest

from iml_ray.agents.base import Agent
from iml_ray.agents.registry import AGENTS
from iml_ray.llm.prompt import SPLIT
from iml_ray.llm.settings import LLM_AGENTS

# The method each agent's callers use: its rules entry point (and, where an LLM drives it, its LLM step).
ENTRY_POINTS = {"task_analyzer": "analyze", "profiler": "profile", "knowledge_retriever": "retrieve",
                "guideline": "plan", "preprocessing_coder": "write", "modeling_coder": "write",
                "assembler": "assemble", "error_analyzer": "analyze", "debugger": "repair", "evaluator": "score"}


def test_the_registry_names_the_ten_agents_of_the_design():
    assert list(AGENTS) == list(ENTRY_POINTS)
    assert all(issubclass(cls, Agent) and cls.name == name for name, cls in AGENTS.items())


@pytest.mark.parametrize("name", list(AGENTS))
def test_each_agent_lives_in_its_own_module_with_its_rules_entry_point(name):
    module = importlib.import_module(f"iml_ray.agents.{name}")
    cls = AGENTS[name]
    assert cls.__module__ == module.__name__, f"{cls.__name__} is defined in {cls.__module__}, not agents/{name}.py"
    assert callable(getattr(cls, ENTRY_POINTS[name], None))


@pytest.mark.parametrize("name", [n for n, cls in AGENTS.items() if cls.prompt is not None])
def test_each_llm_agent_has_its_prompt_and_its_parser_beside_it(name):
    module = importlib.import_module(f"iml_ray.agents.{name}")
    assert AGENTS[name].prompt == name              # one name everywhere: registry, prompt file, agent_models
    prompt = resources.files("iml_ray.agents").joinpath(f"{name}.md")
    assert prompt.is_file(), f"no prompt iml_ray/agents/{name}.md"
    assert SPLIT in prompt.read_text()
    for function in ("messages", "parse", "ask_llm"):
        assert inspect.isfunction(getattr(module, function, None)), f"agents/{name}.py has no {function}()"
        assert getattr(module, function).__module__ == module.__name__


def test_the_agents_an_llm_can_drive_are_those_with_a_prompt():
    assert set(LLM_AGENTS) == {n for n, cls in AGENTS.items() if cls.prompt is not None}
    assert {n for n, cls in AGENTS.items() if cls.prompt is None} == {"assembler", "evaluator"}


def test_no_prompt_file_is_left_without_its_agent():
    """Each prompt is an agent's: <agent>.md, or <agent>_<request>.md for a second kind of request it answers (the
    ModelingCoder's improve), rendered by that agent's module."""
    prompts = {p.name[:-3] for p in resources.files("iml_ray.agents").iterdir() if p.name.endswith(".md")}
    assert set(LLM_AGENTS) <= prompts
    for extra in prompts - set(LLM_AGENTS):
        owner = next((a for a in LLM_AGENTS if extra.startswith(f"{a}_")), None)
        assert owner is not None, f"iml_ray/agents/{extra}.md belongs to no agent"
        source = inspect.getsource(importlib.import_module(f"iml_ray.agents.{owner}"))
        assert f'"{extra}"' in source, f"agents/{owner}.py does not render {extra}.md"
