"""Many competitions on one Ray cluster: scheduling, resume, a batch summary.

Each competition is a Ray task that runs the engine (its agents and tracks are
nested Ray work), with its output in ROOT/<name>/. State lives there, so
rerunning the same batch skips what finished and resumes what did not.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from iml_ray.config import RunConfig
from iml_ray.errors import UnsupportedTask, UserError
from iml_ray.run.agent_pool import PoolSettings, job_pool, pool_report, pool_settings
from iml_ray.rundir import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Competition:
    name: str
    task_dir: str
    out: str
    overrides: tuple[tuple[str, Any], ...] = ()     # RunConfig fields from the manifest, for this competition only

    def config(self, base: RunConfig) -> RunConfig:
        if not self.overrides:
            return base
        return RunConfig.from_mapping({**base.to_json(), **dict(self.overrides)})


@dataclass(frozen=True)
class ManifestEntry:
    task_dir: str
    overrides: dict[str, Any]
    name: str | None = None


def read_manifest(path: Path, base: RunConfig) -> list[ManifestEntry]:
    """A batch manifest: a YAML list (or {tasks: [...]}) of task paths, or of {path, time_budget, name, overrides}.

    Relative paths are relative to the manifest. Every entry's configuration is checked here, so a
    mistake in the manifest fails the batch before anything runs.
    """
    import yaml

    from iml_ray.errors import ConfigError

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"manifest {path} does not exist", "Check the path given to iml batch.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"manifest {path} is not valid YAML ({str(exc).splitlines()[0]})", "Fix its syntax.") from None
    items = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ConfigError(f"manifest {path} lists no tasks", "Write a YAML list of task directories, or tasks: [...].")
    entries = []
    for number, item in enumerate(items, start=1):
        item = {"path": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise ConfigError(f"manifest {path}, task {number}: needs a path", "Give `path: <task dir>` for every task.")
        unknown = sorted(set(item) - {"path", "time_budget", "name", "overrides"})
        if unknown:
            raise ConfigError(f"manifest {path}, task {number}: unknown key(s) {', '.join(unknown)}",
                              "Use path, time_budget, name and overrides (RunConfig fields).")
        overrides = dict(item.get("overrides") or {})
        if item.get("time_budget") is not None:
            overrides["time_budget_s"] = item["time_budget"]
        task_dir = Path(item["path"]).expanduser()
        if not task_dir.is_absolute():
            task_dir = Path(path).resolve().parent / task_dir
        entry = ManifestEntry(str(task_dir), overrides, item.get("name"))
        Competition(entry.name or "", entry.task_dir, "", tuple(overrides.items())).config(base)   # a bad override fails
        entries.append(entry)
    return entries


@dataclass(frozen=True)
class CompetitionResult:
    name: str
    status: Literal["ok", "failed", "skipped", "unsupported"]
    out: str
    valid_score: float | None = None
    metric: str | None = None
    wall_s: float = 0.0
    error: str | None = None
    resumed: bool = False
    started_s: float | None = None   # seconds after the batch started (this invocation), for the report's timeline
    llm_tokens: int = 0         # the competition's LLM spend (0 with the rules policy)
    llm_cost_usd: float = 0.0


def competition_names(task_dirs: list[str | ManifestEntry]) -> list[Competition]:
    """Names from the task directories (the parent of an MLE-bench public/) or the manifest, made unique."""
    seen: dict[str, int] = {}
    result = []
    for raw in task_dirs:
        entry = raw if isinstance(raw, ManifestEntry) else ManifestEntry(str(raw), {})
        path = Path(entry.task_dir).expanduser().resolve()
        base = entry.name or (path.parent.name if path.name == "public" else path.name)
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"
        result.append(Competition(name, str(path), "", tuple(entry.overrides.items())))
    return result


def previous_status(out: Path) -> str | None:
    """'ok' / 'failed' for a finished competition, 'unfinished' for a started one, None for a new one."""
    try:
        state = json.loads((out / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state.get("status") or "unfinished"


def run_one(competition: Competition, config: RunConfig, resume: bool, cluster_share: float = 1.0,
            agent_pool: PoolSettings | None = None) -> CompetitionResult:
    """One competition inside a Ray worker; bad input becomes a failed result, never a failed batch."""
    from iml_ray.run.engine import Run

    started = time.time()
    try:
        result = Run(competition.task_dir, competition.out, config, resume=resume, force=not resume,
                     cluster_share=cluster_share, agent_pool=agent_pool).execute()
    except UserError as exc:
        # A task iml-ray does not build is said, not counted as a failure of the run.
        status = "unsupported" if isinstance(exc, UnsupportedTask) else "failed"
        return CompetitionResult(competition.name, status, competition.out, wall_s=time.time() - started,
                                 error=exc.render().replace("\n       ", " "), resumed=resume)
    best = result.best
    llm = result.report.get("llm") or {}
    return CompetitionResult(competition.name, result.status, competition.out,
                             valid_score=None if best is None else best.valid_score, metric=result.summary.metric,
                             wall_s=round(time.time() - started, 2),
                             error=None if best else "no candidate passed verification", resumed=resume,
                             llm_tokens=int(llm.get("tokens", 0)), llm_cost_usd=float(llm.get("cost_usd", 0.0)))


def run_batch(task_dirs: list[str | ManifestEntry], root: Path, config: RunConfig, *, max_concurrent: int | None = None,
              retry_failed: bool = False, on_update=None) -> dict[str, Any]:
    import ray

    from iml_ray.llm.settings import check_run_llm
    from iml_ray.run.ray_session import ray_session

    root = Path(root)
    started = time.time()
    competitions = [Competition(c.name, c.task_dir, str(root / c.name), c.overrides) for c in competition_names(task_dirs)]
    results, todo = _sort_out(competitions, root, retry_failed)
    for comp, _ in todo:            # an LLM section that cannot work fails the batch before anything is written
        check_run_llm(comp.config(config).policy, comp.config(config).llm)
    # One set of agents for every competition: settled here (a wrong agents: section fails the batch in one line).
    agent_settings = pool_settings([config] + [comp.config(config) for comp, _ in todo])
    root.mkdir(parents=True, exist_ok=True)
    with ray_session():
        from actors.llm import start_local_servers

        # Started here, by the driver, so one server per local model lives for the whole batch.
        servers = start_local_servers([comp.config(config).llm for comp, _ in todo if comp.config(config).policy != "rules"])
        # Created by the driver, so the agents live as long as the batch (a competition's worker only finds them).
        pool = job_pool(agent_settings)
        remote = ray.remote(num_cpus=0, max_retries=0)(run_one)
        limit = max_concurrent or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Each running competition plans its tracks with its part of the cluster.
        share = 1.0 / max(1, min(limit, len(todo)))
        pending: dict[Any, Competition] = {}
        began: dict[str, float] = {}
        while todo or pending:
            while todo and len(pending) < limit:
                comp, resume = todo.pop(0)
                pending[remote.remote(comp, comp.config(config), resume, share, agent_settings)] = comp
                began[comp.name] = time.time()
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                comp = pending.pop(ref)
                try:
                    results[comp.name] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    results[comp.name] = CompetitionResult(comp.name, "failed", comp.out, error=f"crashed: {first[:300]}")
                results[comp.name] = dataclasses.replace(results[comp.name],
                                                         started_s=round(began[comp.name] - started, 2))
                _write_summary(root, competitions, results, started)
            if on_update:
                on_update(_live(competitions, results, pending.values(), began))
        from actors.llm import server_stats

        return _write_summary(root, competitions, results, started, [server_stats(h) for h in servers],
                              pool_report(pool))


def _sort_out(competitions: list[Competition], root: Path,
              retry_failed: bool) -> tuple[dict[str, CompetitionResult], list[tuple[Competition, bool]]]:
    """What an earlier batch in `root` finished (its results) and what is left to run (with: resume it?)."""
    results: dict[str, CompetitionResult] = {}
    todo: list[tuple[Competition, bool]] = []
    # Bad input and unsupported tasks stop before a competition writes anything: the last batch.json remembers them.
    before = {c["name"]: c for c in _previous_summary(root).get("competitions", [])
              if c.get("status") in ("failed", "unsupported")}
    for comp in competitions:
        status = previous_status(Path(comp.out)) or (before[comp.name]["status"] if comp.name in before else None)
        if status == "unsupported" and not retry_failed:
            results[comp.name] = CompetitionResult(comp.name, "unsupported", comp.out, error=before[comp.name].get("error"))
        elif status == "ok" or (status == "failed" and not retry_failed):
            results[comp.name] = _finished_result(comp, status)
        else:
            todo.append((comp, status == "unfinished"))
    return results, todo


def _previous_summary(root: Path) -> dict[str, Any]:
    try:
        return json.loads((root / "batch.json").read_text())
    except (OSError, ValueError):
        return {}


def _finished_result(comp: Competition, status: str) -> CompetitionResult:
    report_path = Path(comp.out) / "report.json"
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        report = {}
    chosen = report.get("chosen") or {}
    llm = report.get("llm") or {}
    return CompetitionResult(comp.name, "skipped" if status == "ok" else "failed", comp.out,
                             valid_score=chosen.get("valid_score"),
                             metric=(report.get("task") or {}).get("metric"),
                             llm_tokens=int(llm.get("tokens", 0)), llm_cost_usd=float(llm.get("cost_usd", 0.0)),
                             error=None if status == "ok" else "failed earlier (rerun with --retry-failed)")


def _live(competitions: list[Competition], results: dict[str, CompetitionResult], running,
          began: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per competition for the batch's progress display: phase, best score so far, elapsed."""
    running_names = {c.name for c in running}
    began = began or {}
    rows = []
    for comp in competitions:
        if comp.name in results:
            r = results[comp.name]
            rows.append({"name": comp.name, "phase": r.status, "score": r.valid_score, "metric": r.metric,
                         "elapsed": r.wall_s})
        elif comp.name in running_names:
            phase, score, metric = _progress_of(Path(comp.out))
            rows.append({"name": comp.name, "phase": phase, "score": score, "metric": metric,
                         "elapsed": round(time.time() - began.get(comp.name, time.time()), 1)})
        else:
            rows.append({"name": comp.name, "phase": "queued", "score": None, "metric": None, "elapsed": 0.0})
    return rows


def _progress_of(out: Path) -> tuple[str, float | None, str | None]:
    """Phase, best verified validation score so far and metric, from a running competition's state.json."""
    try:
        state = json.loads((out / "state.json").read_text())
    except (OSError, ValueError):
        return "starting", None, None
    stages = list(state.get("stages", {}))
    candidates = [c for c in state.get("candidates", {}).values() if c.get("status") == "verified"
                  and c.get("valid_score") is not None]
    metric = candidates[0].get("metric") if candidates else None
    score = None
    if candidates:
        from iml_ray.metrics.registry import get_metric

        higher = get_metric(metric).higher_is_better
        score = (max if higher else min)(c["valid_score"] for c in candidates)
    done = f"{len(candidates)} verified" if candidates else ""
    phase = "exploring" if "holdout" in stages else (f"planned {stages[-1]}" if stages else "starting")
    return (f"{phase} ({done})" if done else phase), score, metric


def _write_summary(root: Path, competitions: list[Competition], results: dict[str, CompetitionResult],
                   started: float, servers: list[dict] | None = None, actors: dict | None = None) -> dict[str, Any]:
    elapsed = time.time() - started
    done = [r for r in results.values() if r.wall_s > 0]      # run in this invocation (skips take no time)
    summary = {
        "root": str(root),
        "competitions": [asdict(results[c.name]) if c.name in results else {"name": c.name, "status": "pending"}
                         for c in competitions],
        "finished_now": len(done),
        "ok": sum(r.status in ("ok", "skipped") and r.error is None for r in results.values()),
        "wall_s": round(elapsed, 2),
        "throughput_per_hour": round(len(done) / elapsed * 3600, 2) if done and elapsed > 0 else 0.0,
        # The batch's LLM ledger: the sum of its competitions' (each run's report.json has the per-agent detail).
        "llm": {"tokens": sum(r.llm_tokens for r in results.values()),
                "cost_usd": round(sum(r.llm_cost_usd for r in results.values()), 6)},
    }
    if actors:
        # The agents that served every competition of the batch: one set, whatever the number of competitions.
        summary["actors"] = actors
    if servers:
        # Each local model server of the batch, once: loads, requests, model calls, batch sizes, tokens/s.
        summary["llm"]["servers"] = servers
    atomic_write_json(root / "batch.json", summary)
    from iml_ray.report.batch_report import write_batch_report

    write_batch_report(root)
    return summary
