"""Ray faces of the LLM plumbing: a ledger per competition, a rate limiter per endpoint for the whole cluster."""
from __future__ import annotations

import dataclasses
import logging

import ray

from iml_ray.llm.ledger import Ledger
from iml_ray.llm.limiter import EndpointLimiter
from iml_ray.llm.settings import LLMSettings

log = logging.getLogger(__name__)

LedgerActor = ray.remote(num_cpus=0, max_concurrency=16)(Ledger)
LimiterActor = ray.remote(num_cpus=0, max_concurrency=1000)(EndpointLimiter)

NAMESPACE = "iml-ray"


def endpoint_limiter(endpoint_id: str, concurrency: int):
    """The one limiter of this endpoint on the cluster: created by the first competition, found by the others.

    Detached, so it outlives the driver that created it and serves every job
    submitted to the cluster; it holds no resources (num_cpus=0).
    """
    return LimiterActor.options(name=f"llm-limiter-{endpoint_id}", namespace=NAMESPACE, get_if_exists=True,
                                lifetime="detached").remote(concurrency)


def llm_plumbing(overrides: dict, max_rewrites: int) -> dict:
    """What every agent of a competition gets: the LLM settings, this competition's ledger, the endpoint's limiter."""
    settings = LLMSettings.from_env(overrides)
    log.info("llm policy: model %s at %s (cache %s%s)", settings.model, settings.endpoint_host(), settings.cache_dir,
             ", replay only" if settings.replay else "")
    return {"settings": dataclasses.asdict(settings), "max_rewrites": max_rewrites,
            "ledger": LedgerActor.remote(settings.max_cost_usd, settings.max_tokens),
            "limiter": endpoint_limiter(settings.endpoint_id(), settings.concurrency)}


def llm_report(llm: dict, agents: tuple) -> dict:
    """Tokens, cost and cache hits per agent, what came from the LLM and what fell back to rules."""
    ledger = ray.get(llm["ledger"].to_json.remote())
    events = [e for batch in ray.get([a.events.remote() for a in agents]) for e in batch]
    totals = ledger.get("totals", {})
    return {"policy": "openai", "settings": LLMSettings.from_json(llm["settings"]).to_json(), **ledger,
            "tokens": totals.get("total_tokens", 0), "cost_usd": totals.get("cost_usd", 0.0),
            "limiter": ray.get(llm["limiter"].stats.remote()), "events": sorted(events, key=lambda e: e["at"])}
