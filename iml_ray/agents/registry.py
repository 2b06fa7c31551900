"""Every agent of a competition, by the one name it has everywhere.

The name keys the agent's LLM calls (the ledger, report.json), its model in
`llm.agent_models`, its module `iml_ray/agents/<name>.py` and its prompt
`iml_ray/agents/<name>.md`.
"""
from __future__ import annotations

from iml_ray.agents.assembler import Assembler
from iml_ray.agents.base import Agent
from iml_ray.agents.debugger import Debugger
from iml_ray.agents.error_analyzer import ErrorAnalyzer
from iml_ray.agents.evaluator import Evaluator
from iml_ray.agents.guideline import GuidelineAgent
from iml_ray.agents.knowledge_retriever import KnowledgeRetriever
from iml_ray.agents.modeling_coder import ModelingCoder
from iml_ray.agents.preprocessing_coder import PreprocessingCoder
from iml_ray.agents.profiler import Profiler
from iml_ray.agents.task_analyzer import TaskAnalyzer

AGENTS: dict[str, type[Agent]] = {cls.name: cls for cls in (
    TaskAnalyzer, Profiler, KnowledgeRetriever, GuidelineAgent, PreprocessingCoder, ModelingCoder, Assembler,
    ErrorAnalyzer, Debugger, Evaluator)}

