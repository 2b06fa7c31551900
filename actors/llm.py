"""Ray faces of the LLM plumbing: a ledger per competition, a rate limiter per endpoint for the whole cluster."""
from __future__ import annotations

import ray

from iml_ray.llm.ledger import Ledger
from iml_ray.llm.limiter import EndpointLimiter

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
