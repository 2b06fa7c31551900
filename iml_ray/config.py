"""RunConfig: every knob of a run, with defaults a user never has to touch.

CLI flags and an optional YAML file override it; environment variables are only
for secrets and endpoints.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from iml_ray.errors import ConfigError

TRACKS = ("traditional", "pretrained", "custom_nn")
TUNE_MODES = ("auto", "on", "off")
ENSEMBLE_MODES = ("best", "stack")
# "rules": deterministic, no network; "openai": any OpenAI-compatible endpoint (OPENAI_BASE_URL), rules as fallback;
# "local": an open checkpoint (llm model local:PATH_OR_ID) served on the cluster, rules as fallback.
POLICIES = ("rules", "openai", "local")
# The budget's reserve when none is configured: a fixed 10 s was 11% of a 90 s budget, most of it left unused.
RESERVE_SHARE = 0.05
MIN_RESERVE_S = 4.0
MAX_RESERVE_S = 10.0
# The plan sizes the tracks' first rounds (a first fit's sample, an encoder's input, a fit's time limit) for the budget
# less its reserve and a start of the usual length, not for the clock when planning: the blueprint is in the
# GuidelineAgent's prompt and, through it, in the coders'; planned from the clock it changed with each start's jitter
# (15-20 s here from the run's start to the plan: Ray 7-8 s, the task summary 4-6 s, the profile 2.5-6 s), so the
# same command again missed the LLM's cached answers and --llm-replay could not replay a run.
START_S = 17.0
MIN_PLAN_SHARE = 0.25       # of the budget less its reserve, a very short budget's plan is never sized for less


@dataclass(frozen=True)
class RunConfig:
    time_budget_s: float = 600.0
    seed: int = 0
    holdout_fraction: float = 0.2
    tracks: tuple[str, ...] = TRACKS
    policy: str = "rules"
    max_repair_rounds: int = 10
    # Per-candidate limits; None means "derive from the machine / cluster".
    memory_mb: int | None = None
    cpus_per_track: float | None = None
    gpus_per_track: float | None = None      # None: one GPU (or a fair fraction) per GPU track when the cluster has GPUs
    # Ray Tune inside the generated code: "auto" tunes when a track has time for a search, "on" always, "off" never.
    tune: str = "auto"
    # "stack": a blend of the top candidates when it beats the best on unseen rows (else the best); "best": the best.
    ensemble: str = "stack"
    max_log_bytes: int = 20_000_000
    max_candidate_disk_mb: int = 5000
    # LLMSettings fields (model, agent_models, prices, max_cost_usd, max_tokens, cache_dir, replay, timeout_s ...);
    # the endpoint and the key come from OPENAI_BASE_URL / OPENAI_API_KEY / IML_LLM_MODEL.
    llm: dict[str, Any] = field(default_factory=dict)
    # LLM Debugger rewrites per competition, over all tracks and modules (each module also has max_repair_rounds):
    # past it, failing LLM modules go straight to the rules module.
    max_llm_rewrites: int = 30
    # The iML paper's sensitivity study: the task text replaced by a generic sentence.
    strip_description: bool = False
    # Generated code runs without network (its own network namespace, where the kernel allows one);
    # True keeps the host's network, e.g. for a pretrained track that must reach a model hub.
    allow_network: bool = False
    # A track whose Ray worker dies (node lost, OOM-killed) is run again this many times; 0: that candidate fails.
    track_retries: int = 0
    # Seconds kept back from the budget for the finish (the blend, the submission, the report) and a track that ends
    # late; None: RESERVE_SHARE of the budget, between MIN_RESERVE_S and MAX_RESERVE_S (the finish took 1.5-2 s here).
    reserve_s: float | None = None
    # How the job's agents are served (run/agent_pool.py): replicas ({agent: n}), keep (detached actors that later
    # jobs on the cluster reuse; --keep-agents), max_restarts (a crashed agent comes back), threads (calls at once).
    agents: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.time_budget_s <= 0:
            raise ConfigError(f"time budget must be positive, got {self.time_budget_s}",
                              "Pass --time-budget with a number of seconds, e.g. --time-budget 600.")
        if not 0.05 <= self.holdout_fraction <= 0.5:
            raise ConfigError(f"holdout_fraction {self.holdout_fraction} is outside [0.05, 0.5]",
                              "Set holdout_fraction between 0.05 and 0.5.")
        unknown = [t for t in self.tracks if t not in TRACKS]
        if unknown or not self.tracks:
            raise ConfigError(f"unknown track(s) {unknown or '(none given)'}",
                              f"Choose from: {', '.join(TRACKS)}.")
        if self.ensemble not in ENSEMBLE_MODES:
            raise ConfigError(f"unknown ensemble mode '{self.ensemble}'", f"Choose from: {', '.join(ENSEMBLE_MODES)}.")
        if self.tune not in TUNE_MODES:
            raise ConfigError(f"unknown tune mode '{self.tune}'", f"Choose from: {', '.join(TUNE_MODES)}.")
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown policy '{self.policy}'", f"Choose from: {', '.join(POLICIES)}.")
        if self.track_retries < 0:
            raise ConfigError("track_retries must be >= 0", "Set it to 0 (fail the candidate) or more.")
        if self.max_repair_rounds < 0:
            raise ConfigError("max_repair_rounds must be >= 0", "Set it to 0 or more.")
        if self.reserve_s is not None and not 0 <= self.reserve_s < self.time_budget_s:
            raise ConfigError(f"reserve_s {self.reserve_s} is outside [0, the time budget {self.time_budget_s:g})",
                              "Leave reserve_s unset (5% of the budget, 4-10 s) or give fewer seconds than the budget.")

    @property
    def reserve(self) -> float:
        """Seconds kept back from the budget: the configured reserve_s, else 5% of the budget within 4-10 s."""
        if self.reserve_s is not None:
            return float(self.reserve_s)
        return min(MAX_RESERVE_S, max(MIN_RESERVE_S, RESERVE_SHARE * self.time_budget_s))

    @property
    def plan_budget(self) -> float:
        """The seconds the plan sizes the tracks' first rounds for: the budget less its reserve and START_S (the
        same for every run of this configuration; the tracks still stop at the budget's own deadline)."""
        left = self.time_budget_s - self.reserve
        return max(MIN_PLAN_SHARE * left, left - START_S)

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["tracks"] = list(self.tracks)
        return data

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}",
                              f"Known keys: {', '.join(sorted(known))}.")
        data = dict(data)
        if "tracks" in data:
            tracks = data["tracks"]
            data["tracks"] = tuple(tracks.split(",") if isinstance(tracks, str) else tracks)
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid configuration: {exc}", "Check the value types in the config file.") from None

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> "RunConfig":
        import yaml

        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist", "Check the path given to --config.") from None
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"config file {path} is not valid YAML ({first})", "Fix the file's syntax.") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys to values", "See RunConfig for the keys.")
        if isinstance(loaded.get("llm"), dict) and overrides.get("llm"):
            overrides = {**overrides, "llm": {**loaded["llm"], **overrides["llm"]}}   # flags refine the file's settings
        loaded.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(loaded)
