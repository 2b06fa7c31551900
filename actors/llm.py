"""Ray faces of the LLM plumbing: a ledger per competition, a rate limiter per endpoint for the whole cluster,
and one server per local model for every competition of the job."""
from __future__ import annotations

import logging

import ray

from iml_ray.llm.ledger import Ledger
from iml_ray.llm.limiter import EndpointLimiter
from iml_ray.llm.plumbing import LLMPlumbing
from iml_ray.llm.serving.local_model import LocalSource
from iml_ray.llm.serving.local_server import LocalModelServer
from iml_ray.llm.settings import LLMSettings
from iml_ray.plan.resources import local_server_resources

log = logging.getLogger(__name__)

LedgerActor = ray.remote(num_cpus=0, max_concurrency=16)(Ledger)
LimiterActor = ray.remote(num_cpus=0, max_concurrency=1000)(EndpointLimiter)
LocalModelActor = ray.remote(max_concurrency=1000, max_restarts=0)(LocalModelServer)

NAMESPACE = "iml-ray"
# How long a run waits at its start for a local model to load before going on (its calls then wait instead).
LOAD_WAIT_S = 60.0


def endpoint_limiter(endpoint_id: str, concurrency: int):
    """The one limiter of this endpoint on the cluster: created by the first competition, found by the others.

    Detached, so it outlives the driver that created it and serves every job
    submitted to the cluster; it holds no resources (num_cpus=0).
    """
    return LimiterActor.options(name=f"llm-limiter-{endpoint_id}", namespace=NAMESPACE, get_if_exists=True,
                                lifetime="detached").remote(concurrency)


def local_model_server(model: str, settings: LLMSettings):
    """The one server of this local model on the cluster: started by the first competition that needs it,
    found by name by every later one.

    It belongs to the process that starts it: the driver of `iml run` or `iml batch`
    (batch.py starts it before any competition), so it goes when that job ends,
    unless `local_keep` makes it detached. On a cluster with GPUs it asks for
    `local_gpus` of one; otherwise `local_cpus` CPUs, which the tracks' plan leaves free.
    """
    LocalSource.parse(model)               # a missing path fails here, in one line, before anything starts
    resources = local_server_resources(settings, ray.cluster_resources())
    options = {"name": f"llm-local-{settings.local_id(model)}", "namespace": NAMESPACE, "get_if_exists": True,
               **resources}
    if settings.local_keep:
        options["lifetime"] = "detached"
    return LocalModelActor.options(**options).remote(model, settings.local_max_batch, settings.local_batch_wait_s,
                                                     local_threads(settings, resources), settings.local_backend,
                                                     settings.local_repetition_penalty)


def local_threads(settings: LLMSettings, resources: dict[str, float]) -> int:
    """The server's torch threads: as many as the CPUs it holds. More threads than held cores spin against
    the tracks' (seen here: 1 token/s instead of 9 with two threads on a busy 2-core node)."""
    return settings.local_threads or max(1, int(round(resources["num_cpus"])))


def llm_server_resources(llm: LLMPlumbing | None, cluster: dict[str, float]) -> list[dict[str, float]]:
    """What the local model servers of this competition hold on the cluster."""
    if llm is None or not llm.servers:
        return []
    return [local_server_resources(llm.settings, cluster) for _ in llm.servers]


def wait_until_loaded(handle, model: str, wait_s: float) -> None:
    """A model that cannot load is the user's input error: one line, before anything is written. One still
    loading after wait_s (a big checkpoint, a GPU node the autoscaler is adding) is waited for by the calls."""
    try:
        ray.get(handle.stats.remote(), timeout=wait_s)
    except ray.exceptions.GetTimeoutError:
        log.info("local model %s is still loading after %.0f s; the agents' calls wait for it "
                 "(the rules answer any the LLM's time cannot cover)", model, wait_s)
    except ray.exceptions.RayActorError as exc:
        from iml_ray.errors import ConfigError

        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error:" in line or "Exception:" in line), lines[-1] if lines else "")
        raise ConfigError(f"local model {model[len('local:'):]} did not load: {reason[:300]}",
                          "Check the checkpoint (a transformers directory or a .gguf file) or the hub id, "
                          "and llm local_backend.") from None


def local_servers(settings: LLMSettings, wait_s: float = LOAD_WAIT_S) -> dict:
    """model -> the server of each local model these settings use, started (or found) and loaded."""
    servers = {model: local_model_server(model, settings) for model in settings.local_models()}
    for model, handle in servers.items():
        wait_until_loaded(handle, model, wait_s)
    return servers


def start_local_servers(llm_configs: list[dict], wait_s: float = LOAD_WAIT_S) -> list:
    """The servers of every local model these competitions use, started by the calling driver (the batch's),
    so they live as long as its job and not only as long as the first competition's worker."""
    handles = {}
    for overrides in llm_configs:
        settings = LLMSettings.from_env(overrides)
        for model, handle in local_servers(settings, wait_s).items():
            # Keep the creating handle: one found by name later does not keep the actor alive, and
            # dropping the creator's would end the server.
            handles.setdefault(settings.local_id(model), handle)
    return list(handles.values())


def llm_plumbing(overrides: dict, max_rewrites: int, policy: str = "openai", load_wait_s: float = LOAD_WAIT_S) -> LLMPlumbing:
    """What every agent of a competition gets: the LLM settings, this competition's ledger, the endpoint's
    limiter, and the servers of its local models."""
    settings = LLMSettings.from_env(overrides)
    if policy == "local" and not settings.local_models():
        from iml_ray.errors import ConfigError

        raise ConfigError(f"--llm local needs a local model, and the model is '{settings.model}'",
                          "Write --llm local:PATH_OR_ID, or set IML_LLM_MODEL=local:PATH_OR_ID.")
    servers = local_servers(settings, load_wait_s)
    where = settings.endpoint_host() if not servers else ("this cluster" + (
        f" and {settings.endpoint_host()}" if settings.uses_http() else ""))
    log.info("llm policy: model %s at %s (cache %s%s)", settings.model, where, settings.cache_dir,
             ", replay only" if settings.replay else "")
    return LLMPlumbing(settings, max_rewrites, ledger=LedgerActor.remote(settings.max_cost_usd, settings.max_tokens),
                       limiter=endpoint_limiter(settings.endpoint_id(), settings.concurrency), servers=servers)


def llm_report(llm: LLMPlumbing) -> dict:
    """Tokens, cost and cache hits per agent, what came from the LLM and what fell back to rules (the competition's
    ledger holds both: its agents serve other competitions too)."""
    ledger = ray.get(llm.ledger.to_json.remote())
    events = ray.get(llm.ledger.events.remote())
    totals = ledger.get("totals", {})
    settings = llm.settings
    return {"policy": "local" if llm.servers and not settings.uses_http() else "openai", "settings": settings.to_json(),
            **ledger, "tokens": totals.get("total_tokens", 0), "cost_usd": totals.get("cost_usd", 0.0),
            "limiter": ray.get(llm.limiter.stats.remote()), "servers": [server_stats(h) for h in llm.servers.values()],
            "events": sorted(events, key=lambda e: e["at"])}


# How long a local model may take to load before the server counts as stuck. The wait is the actor's own readiness
# (its stats answer once the model has loaded; a load that fails kills the actor and the wait ends at once), so this
# only bounds a load that hangs: on a busy 2-core machine a small GGUF model took over 30 s to load.
LOAD_TIMEOUT_S = 1800.0


def server_stats(handle) -> dict:
    """The server's lifetime figures (shared by every competition of the job), once it has loaded; or why there are
    none (the load failed or hung)."""
    try:
        return ray.get(handle.stats.remote(), timeout=LOAD_TIMEOUT_S)
    except Exception as exc:   # the model never loaded, or the server died: say so instead of failing the report
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        return {"error": last[:300]}
