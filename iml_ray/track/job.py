"""What one track's loop is given: the job (picklable, it travels to a Ray worker) and the agents it talks to."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iml_ray.blueprint import InterfaceContract, ModuleRole
from iml_ray.plan.repairs import Plans
from iml_ray.plan.resources import TuneSettings
from iml_ray.task.files import TaskSummary


@dataclass(frozen=True)
class TrackJob:
    """Everything a track needs, picklable so it can travel to a Ray worker."""

    summary: TaskSummary
    contract: InterfaceContract
    plans: Plans
    code_dir: str
    holdout_path: str
    deadline: float                 # time.time() by which the track must be finished
    memory_mb: int
    cpus: int
    gpu_ids: tuple[int, ...] = ()
    resources: dict = field(default_factory=dict)     # Ray's share, for the report
    tune: TuneSettings | None = None                   # Ray Tune inside the generated code; None: no tuning
    max_rounds: int = 10
    columns: str = ""               # one line per column (the profile's view), for LLM coders and the Debugger
    # What the agents before the tracks learned, for the LLM coders: the Profiler's findings, the KnowledgeRetriever's
    # advice and the blueprint's notes.
    context: dict = field(default_factory=dict)
    allow_network: bool = False     # --allow-network: generated code keeps the host's network (e.g. a model hub)
    max_log_bytes: int = 20_000_000
    max_disk_mb: int = 5000
    min_round_s: float = 15.0       # a repair round is not started with less time than this
    # Share of the remaining time one attempt may use while repairs are still
    # possible, so a timeout leaves room to try faster settings.
    attempt_share: float = 0.7
    improve: bool = True            # after the first verified candidate, improvement rounds while time is left
    waits_for: tuple[str, ...] = ()  # tracks to finish before this one starts, on their CPUs (plan/resources.py)


def search_pays_off(plans: Plans, gpu_ids: tuple[int, ...]) -> bool:
    """Whether a Ray Tune search may run for these plans: not for a CNN on CPUs, where an epoch takes seconds and
    a search would buy a handful of trials with the time the network itself needs to train."""
    prep = plans.prep
    return not (plans.track.model_template == "custom_nn" and (prep.image or prep.audio) and not gpu_ids)


class TrackAgents:
    """The agents the loop talks to; attributes are objects with the agents' methods."""

    def __init__(self, prep_coder: Any, model_coder: Any, assembler: Any, error_analyzer: Any, debugger: Any,
                 evaluator: Any, coordinator: Any = None, llm: bool = False):
        self.prep_coder = prep_coder
        self.model_coder = model_coder
        self.assembler = assembler
        self.error_analyzer = error_analyzer
        self.debugger = debugger
        self.evaluator = evaluator
        self.coordinator = coordinator
        self.llm = llm          # the coders may write with an LLM: ask them for drafts


@dataclass
class ModuleSlot:
    """One module of the pipeline (prep or model): its code, who wrote it, how often the LLM rewrote it."""

    role: ModuleRole
    code: str | None = None
    source: str = "rules"          # "llm" | "rules" | "rules (fallback: ...)"
    llm_rewrites: int = 0
    rounds_blamed: int = 0         # rounds in which this module was blamed

    def to_json(self) -> dict:
        return {"source": self.source, "llm_rewrites": self.llm_rewrites, "rounds_blamed": self.rounds_blamed}
