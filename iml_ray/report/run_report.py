"""A run's report: report.json assembled from the run's artifacts, and report.html rendered from it."""
from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from iml_ray.blueprint import Blueprint, Candidate
from iml_ray.config import RunConfig
from iml_ray.errors import NoSpaceError
from iml_ray.rundir import RunDir, atomic_write_text
from iml_ray.task.files import TaskSummary
from iml_ray.task.profile import Profile

if TYPE_CHECKING:
    from iml_ray.plan.knowledge import Knowledge

log = logging.getLogger(__name__)


def build_report(status: str, summary: TaskSummary, profile: Profile, knowledge: Knowledge, blueprint: Blueprint,
                 leaderboard: tuple[Candidate, ...], best: Candidate | None, timings: dict[str, float], config: RunConfig,
                 rundir: RunDir, started: float = 0.0) -> dict[str, Any]:
    from iml_ray import __version__

    return {
        "status": status,
        "task": {
            "name": summary.name,
            "task_dir": summary.task_dir,
            "target": summary.target,
            "targets": list(summary.all_targets),
            "id_column": summary.id_column,
            "problem_type": summary.problem_type,
            "task_type": summary.task_type,
            "metric": summary.metric,
            "submission": summary.submission.to_json(),
            "n_train": summary.n_train,
            "n_test": summary.n_test,
            "decisions": summary.decisions,
            "inferred": summary.inferred,
        },
        "profile": {"roles": profile.roles, "target": profile.target.__dict__, "memory_mb": profile.memory_mb},
        "knowledge": knowledge.card_ids,
        "blueprint_notes": list(blueprint.notes),
        "leaderboard": [
            {"track": c.track, "status": c.status, "valid_score": c.valid_score, "aps": c.aps, "metric": c.metric,
             "repair_rounds": c.repair_rounds, "wall_s": c.wall_s, "peak_rss_mb": c.peak_rss_mb, "failure": c.failure,
             "rounds": [r.__dict__ for r in c.rounds], "model": c.details.get("run_info", {}).get("final", {}).get("model"),
             "started_s": round(c.started_at - started, 2) if c.started_at else None,
             "finished_s": round(c.finished_at - started, 2) if c.finished_at else None,
             "resources": c.resources, "reasons": list(c.details.get("plans", {}).get("track", {}).get("reasons", [])),
             "tuning": _tuning_of(c.details.get("run_info", {})), "modules": c.details.get("modules", {}),
             "best_round": c.details.get("best_round"), "stopped": c.details.get("stopped")}
            for c in leaderboard
        ],
        "chosen": None if best is None else {"track": best.track, "valid_score": best.valid_score, "aps": best.aps,
                                             "pipeline": str(rundir.root / "pipeline.py")},
        "validation": {"holdout_fraction": blueprint.train.holdout_fraction, "folds": blueprint.train.holdout_folds,
                       "seed": blueprint.train.seed,
                       "stratified": blueprint.train.stratified, "scored_by": "iml_ray.metrics (framework)"},
        "timings_s": timings,
        "llm": {"policy": config.policy, "tokens": 0, "cost_usd": 0.0},
        "paths": {"submission": str(rundir.root / "submission.csv") if best else None,
                  "pipeline": str(rundir.root / "pipeline.py") if best else None,
                  "plan": str(rundir.plan), "candidates": str(rundir.candidates)},
        "config": config.to_json(),
        "versions": {"iml_ray": __version__, "python": platform.python_version()},
    }


def _tuning_of(run_info: dict) -> dict | None:
    """What the Ray Tune search inside the candidate did (it runs on the validation pass), and what it kept."""
    tuning = (run_info.get("validation") or {}).get("tuning") or (run_info.get("final") or {}).get("tuning")
    if not tuning:
        return None
    return {**tuning, "kept": bool(tuning.get("params"))}


def write_html_report(run_dir: Path) -> Path | None:
    """report.html beside report.json; a failure here is logged, never fatal to the run."""
    from iml_ray.report.html import render_run_report

    return write_page(Path(run_dir) / "report.html", lambda: render_run_report(run_dir))


def write_page(path: Path, render: Callable[[], str]) -> Path | None:
    """Write a rendered page atomically; a failure is logged and returns None: a report is a view, not a result."""
    try:
        atomic_write_text(path, render())
        return path
    except NoSpaceError as exc:
        log.error("could not write %s: %s", path, exc.problem)
        return None
    except Exception:
        log.exception("could not write %s", path)
        return None

