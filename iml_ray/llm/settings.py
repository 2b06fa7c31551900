"""LLMSettings: which endpoint and models the agents talk to, and what they may spend.

The API key is deliberately not a field: settings are written into the run
directory and shipped to Ray actors, the key must never be. The client reads
OPENAI_API_KEY from the environment when it builds its HTTP client.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from iml_ray.errors import ConfigError
from iml_ray.llm.serving.local_model import is_local

# The agents an LLM can drive (the Assembler, Evaluator and Coordinator are the framework's own).
LLM_AGENTS = ("task_analyzer", "profiler", "knowledge_retriever", "guideline", "preprocessing_coder",
              "modeling_coder", "error_analyzer", "debugger")

# What openai uses when base_url is None; named here only for hashing and messages.
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class LLMSettings:
    base_url: str | None = None                      # None: the openai default endpoint
    model: str = "gpt-4o-mini"
    agent_models: dict[str, str] = field(default_factory=dict)   # agent name -> model, e.g. {"modeling_coder": "gpt-4o"}
    agents: list[str] = field(default_factory=list)  # the agents the LLM drives (the rest run on rules); empty: all
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 1.0                            # base of the exponential backoff; delays are capped at 30 s
    temperature: float = 0.0
    max_output_tokens: int = 4096
    prices: dict[str, list[float]] = field(default_factory=dict)  # model -> [USD / 1M prompt, USD / 1M completion]
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    cache_dir: str | None = None                      # None: no response cache
    replay: bool = False                              # answer only from the cache; a miss is an error
    concurrency: int = 4                              # requests in flight per endpoint
    # A model named local:PATH_OR_ID is served on the cluster by one actor (actors/llm.py), not over HTTP.
    local_max_batch: int = 8                          # requests one model call may answer together
    local_batch_wait_s: float = 0.05                  # how long the server waits for company before a call
    local_gpus: float = 1.0                           # the server's share of a GPU, on a cluster that has GPUs
    local_cpus: float = 1.0                           # CPUs it holds, on a cluster without GPUs
    local_threads: int = 0                            # torch threads of the server; 0: as many as the CPUs it holds
    local_backend: str = "auto"                       # auto (vLLM with a GPU when installed) | transformers | vllm
    local_repetition_penalty: float | None = None     # e.g. 1.15 against a small model's loops; None: the model's own
    local_keep: bool = False                          # keep the server after the job that started it ends

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ConfigError(f"llm timeout_s must be positive, got {self.timeout_s}",
                              "Set timeout_s to a number of seconds, e.g. 120.")
        if self.max_retries < 0:
            raise ConfigError(f"llm max_retries must be >= 0, got {self.max_retries}", "Set max_retries to 0 or more.")
        if self.backoff_s < 0:
            raise ConfigError(f"llm backoff_s must be >= 0, got {self.backoff_s}", "Set backoff_s to 0 or more seconds.")
        if self.max_output_tokens < 1:
            raise ConfigError(f"llm max_output_tokens must be >= 1, got {self.max_output_tokens}", "Set it to e.g. 4096.")
        if self.concurrency < 1:
            raise ConfigError(f"llm concurrency must be >= 1, got {self.concurrency}", "Set concurrency to 1 or more.")
        for name, cap in (("max_cost_usd", self.max_cost_usd), ("max_tokens", self.max_tokens)):
            if cap is not None and cap < 0:
                raise ConfigError(f"llm {name} must be >= 0, got {cap}",
                                  f"Set {name} to a positive number, or leave it unset for no cap.")
        for model, price in self.prices.items():
            if not (isinstance(price, (list, tuple)) and len(price) == 2 and all(isinstance(p, (int, float)) for p in price)):
                raise ConfigError(f"llm price of model '{model}' must be [prompt, completion] USD per 1M tokens, got {price!r}",
                                  "Write it as e.g. prices: {gpt-4o-mini: [0.15, 0.6]}.")
        unknown = sorted((set(self.agents) | set(self.agent_models)) - set(LLM_AGENTS))
        if unknown:
            raise ConfigError(f"unknown llm agent(s): {', '.join(unknown)}", f"Agents an LLM can drive: {', '.join(LLM_AGENTS)}.")
        if self.local_max_batch < 1:
            raise ConfigError(f"llm local_max_batch must be >= 1, got {self.local_max_batch}", "Set it to e.g. 8.")
        if self.local_batch_wait_s < 0 or self.local_gpus < 0 or self.local_cpus < 0 or self.local_threads < 0:
            raise ConfigError("llm local_batch_wait_s, local_gpus, local_cpus and local_threads must be >= 0",
                              "Set them to 0 or more (local_gpus may be a fraction, e.g. 0.5).")
        if self.local_backend not in ("auto", "transformers", "vllm"):
            raise ConfigError(f"unknown llm local_backend '{self.local_backend}'", "Choose from: auto, transformers, vllm.")
        if self.replay and not self.cache_dir:
            raise ConfigError("llm replay mode needs a cache_dir to replay from", "Set cache_dir, or turn replay off.")

    def drives(self, agent: str) -> bool:
        return not self.agents or agent in self.agents

    def model_for(self, agent: str) -> str:
        return self.agent_models.get(agent, self.model)

    def local_models(self) -> list[str]:
        """The local:... models some agent uses: each gets one server on the cluster."""
        used = [self.model_for(agent) for agent in LLM_AGENTS if self.drives(agent)]
        return sorted({m for m in used if is_local(m)})

    def uses_http(self) -> bool:
        return any(not is_local(self.model_for(agent)) for agent in LLM_AGENTS if self.drives(agent))

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one request; a model without a price costs 0 (local servers, unknown models)."""
        price = self.prices.get(model)
        if not price:
            return 0.0
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000

    def endpoint_id(self) -> str:
        """A short stable name for the endpoint, e.g. to name one rate-limiter per endpoint."""
        url = (self.base_url or OPENAI_DEFAULT_BASE_URL).strip().rstrip("/").lower()
        return hashlib.sha256(url.encode()).hexdigest()[:12]

    def local_id(self, model: str) -> str:
        """A short stable name for a local model's server: one per model (and backend) on the cluster."""
        return hashlib.sha256(f"{model}|{self.local_backend}|{self.local_repetition_penalty}".encode()).hexdigest()[:12]

    def endpoint_host(self) -> str:
        """host[:port] of the endpoint, for messages: never the path, query or credentials."""
        return endpoint_host(self.base_url)

    def replace(self, **changes: Any) -> "LLMSettings":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        # Some gateways take credentials in the URL (user:pass@host); those stay out of the run directory.
        data["base_url"] = _without_credentials(self.base_url)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LLMSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown llm setting(s): {', '.join(unknown)}", f"Known settings: {', '.join(sorted(known))}.")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigError(f"invalid llm settings: {exc}", "Check the value types of the llm settings.") from None

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] = os.environ) -> "LLMSettings":
        """Settings from OPENAI_BASE_URL and IML_LLM_MODEL, then `overrides` on top.

        An override whose value is None counts as not given (a CLI flag left unset),
        so it never erases what the environment said.
        """
        data: dict[str, Any] = {}
        if environ.get("OPENAI_BASE_URL"):
            data["base_url"] = environ["OPENAI_BASE_URL"]
        if environ.get("IML_LLM_MODEL"):
            data["model"] = environ["IML_LLM_MODEL"]
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown llm setting(s): {', '.join(unknown)}", f"Known settings: {', '.join(sorted(known))}.")
        data.update({key: value for key, value in overrides.items() if value is not None})
        data.setdefault("cache_dir", default_cache_dir(environ))
        return cls.from_json(data)


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> str:
    """Where answers are cached unless the config says: shared by every run of this user, so a rerun is free."""
    return environ.get("IML_LLM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "iml-ray", "llm")


def endpoint_host(base_url: str | None) -> str:
    parts = urlsplit(base_url or OPENAI_DEFAULT_BASE_URL)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _without_credentials(base_url: str | None) -> str | None:
    if not base_url:
        return base_url
    parts = urlsplit(base_url)
    if "@" not in parts.netloc:
        return base_url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def check_run_llm(policy: str, llm: dict[str, Any]) -> None:
    """A run's LLM section checked before the run starts: unknown keys, a local model that is not there,
    and policy `local` without a local model each raise ConfigError."""
    if not llm:
        return
    settings = LLMSettings.from_env(llm, environ={})
    from iml_ray.llm.serving.local_model import LocalSource

    for model in settings.local_models():
        LocalSource.parse(model)
    if policy == "local" and llm.get("model") and not is_local(llm["model"]):
        raise ConfigError(f"policy local needs a local:PATH_OR_ID model, got '{llm['model']}'",
                          "Write --llm local:/path/to/model (a checkpoint directory, a .gguf file or a hub id).")
