"""Suite results: per-task outcomes, APS, relative score, valid-submission rate, and the markdown table.

APS (Average Performance Score, as in the iML paper) is the mean over *all*
tasks of the test score put on a 0-1 scale by the framework's own
normalisation (`iml_ray.metrics.registry.Metric.aps`): metrics already in [0, 1]
(accuracy, AUC, F1, R² clipped) as they are, losses as exp(-loss) (log loss,
RMSLE, RMSE, MAE), [-1, 1] metrics as (score + 1) / 2. A task with no valid
submission (failed, timed out, invalid, or a system that cannot handle the
task) counts 0.

exp(-loss) is near 0 for every system on a loss in raw units (RMSE in dollars,
MAE in disease-progression points), so those tasks barely move APS. The
relative score (RS) is scale-free and reported beside it: per task, the
system's score against the best valid score any system got on that task —
best / score for a loss, score / best on the APS scale otherwise — so the best
system scores 1; invalid counts 0; RS is the mean over all tasks.

The valid-submission rate is the share of tasks where the system wrote a
submission the grader accepted.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

from iml_ray.metrics.registry import UnknownMetric, get_metric

VALID = "valid"
# Every status an outcome can have, and how a table cell shows it when there is no score.
STATUSES = {
    VALID: "",
    "invalid": "invalid",            # a submission the grader refused
    "failed": "failed",              # non-zero exit or no submission written
    "timeout": "timeout",            # killed past the hard wall-clock limit
    "unsupported": "n/a",            # the system cannot handle the task at all (scores 0)
}


@dataclass(frozen=True)
class Outcome:
    """One system on one task."""
    task: str
    system: str
    metric: str                      # canonical name in iml_ray.metrics.registry, or "mlebench"
    modality: str                    # "tabular" | "text" | "image" | "mlebench"
    status: str                      # a key of STATUSES
    score: float | None = None       # the test score, when status is valid
    reason: str = ""                 # one line: why it is not valid, or a note
    wall_s: float | None = None
    peak_mib: float | None = None    # peak resident memory of the whole process tree
    lower_is_better: bool | None = None   # only for metrics the registry does not know (MLE-bench)
    code: str = ""                   # digest of what produced it (run_suite.code_digest); --resume keeps it if equal
    started: str = ""                # when the invocation that ran it started (ISO); a resumed suite has several

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; one of {sorted(STATUSES)}")
        if self.status == VALID and (self.score is None or not math.isfinite(self.score)):
            raise ValueError(f"{self.system} on {self.task}: a valid outcome needs a finite score")

    @property
    def valid(self) -> bool:
        return self.status == VALID

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Outcome":
        return cls(**data)


def higher_is_better(outcome: Outcome) -> bool:
    try:
        return get_metric(outcome.metric).higher_is_better
    except UnknownMetric:
        return not outcome.lower_is_better


def aps_value(outcome: Outcome) -> float:
    """The outcome on the APS scale: 0 (failed or worst) to 1 (perfect)."""
    if not outcome.valid:
        return 0.0
    try:
        return get_metric(outcome.metric).aps(outcome.score)
    except UnknownMetric:
        score = float(outcome.score)
        return math.exp(-max(score, 0.0)) if outcome.lower_is_better else min(1.0, max(0.0, score))


def _of(outcomes: Iterable[Outcome], system: str) -> list[Outcome]:
    return [o for o in outcomes if o.system == system]


def aps(outcomes: Iterable[Outcome], system: str) -> float:
    """Mean APS value of the system over its tasks; 0 when it has none."""
    mine = _of(outcomes, system)
    return sum(aps_value(o) for o in mine) / len(mine) if mine else 0.0


def valid_rate(outcomes: Iterable[Outcome], system: str) -> float:
    mine = _of(outcomes, system)
    return sum(o.valid for o in mine) / len(mine) if mine else 0.0


def best_by_task(outcomes: Iterable[Outcome]) -> dict[str, Outcome]:
    """Per task, the valid outcome with the best score (ties: the first)."""
    best: dict[str, Outcome] = {}
    for o in outcomes:
        if not o.valid:
            continue
        current = best.get(o.task)
        if current is None or _better(o, current):
            best[o.task] = o
    return best


def _better(a: Outcome, b: Outcome) -> bool:
    return a.score > b.score if higher_is_better(a) else a.score < b.score


def relative_value(outcome: Outcome, best: Outcome | None) -> float:
    """1 for the task's best system, less for the others, 0 when invalid."""
    if not outcome.valid or best is None:
        return 0.0
    if higher_is_better(outcome):
        top = aps_value(best)
        return aps_value(outcome) / top if top > 0 else 1.0
    if outcome.score <= 0:
        return 1.0
    return max(0.0, float(best.score)) / float(outcome.score)


def relative_score(outcomes: list[Outcome], system: str) -> float:
    best = best_by_task(outcomes)
    mine = _of(outcomes, system)
    return sum(relative_value(o, best.get(o.task)) for o in mine) / len(mine) if mine else 0.0


# ------------------------------------------------------------------ markdown


# An unsupported cell says why in the table when that is a word or two ("images"); a peer's own message (AutoGluon
# on a layout it cannot read: a sentence) goes below the table with the failures, where it does not widen a column.
SHORT_REASON = 24


def _short_reason(outcome: Outcome) -> bool:
    return outcome.status == "unsupported" and 0 < len(outcome.reason) <= SHORT_REASON


def _cell(outcome: Outcome | None, best: Outcome | None) -> str:
    if outcome is None:
        return "–"
    if not outcome.valid:
        label = STATUSES[outcome.status]
        return f"{label} ({outcome.reason})" if _short_reason(outcome) else label
    text = f"{outcome.score:.4f}" if abs(outcome.score) < 1000 else f"{outcome.score:.1f}"
    return f"**{text}**" if best is not None and best.score == outcome.score else text


def _resources(outcome: Outcome | None) -> str:
    if outcome is None or outcome.wall_s is None:
        return "–"
    memory = f" / {outcome.peak_mib:,.0f}" if outcome.peak_mib is not None else ""
    return f"{outcome.wall_s:.0f}{memory}"


def markdown_tables(outcomes: list[Outcome], systems: list[str], tasks: list[str]) -> str:
    """Scores per task, the summary per system, and wall time / peak memory per task."""
    index = {(o.task, o.system): o for o in outcomes}
    best = best_by_task(outcomes)
    first = {task: next((o for o in outcomes if o.task == task), None) for task in tasks}
    lines = ["| task | kind | metric | " + " | ".join(systems) + " |",
             "|---|---|---|" + "---|" * len(systems)]
    for task in tasks:
        head = first[task]
        arrow = "" if head is None else (" ↑" if higher_is_better(head) else " ↓")
        kind = "" if head is None else head.modality
        metric = "" if head is None else head.metric
        lines.append(f"| {task} | {kind} | {metric}{arrow} | "
                     + " | ".join(_cell(index.get((task, s)), best.get(task)) for s in systems) + " |")
    lines += ["", "| system | APS | RS | valid rate | tasks best | wall s (sum) | peak MiB (max) |",
              "|---|---|---|---|---|---|---|"]
    for system in systems:
        mine = _of(outcomes, system)
        walls = [o.wall_s for o in mine if o.wall_s is not None]
        peaks = [o.peak_mib for o in mine if o.peak_mib is not None]
        wins = sum(1 for o in mine if o.valid and best.get(o.task) is not None and best[o.task].score == o.score)
        peak = f"{max(peaks):,.0f}" if peaks else "–"
        lines.append(f"| {system} | {aps(outcomes, system):.4f} | {relative_score(outcomes, system):.4f} | "
                     f"{sum(o.valid for o in mine)}/{len(mine)} ({valid_rate(outcomes, system):.0%}) | {wins} | "
                     f"{sum(walls):.0f} | {peak} |")
    lines += ["", "Wall seconds / peak MiB (PSS of the whole process tree, sampled every 0.5 s or less often) per task:", "",
              "| task | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
    for task in tasks:
        lines.append(f"| {task} | " + " | ".join(_resources(index.get((task, s))) for s in systems) + " |")
    notes = [f"- {o.system} on {o.task}: {STATUSES[o.status]}: {o.reason}" for o in outcomes
             if not o.valid and o.reason and not _short_reason(o)]
    if notes:
        lines += ["", "Why a cell has no score:", "", *notes]
    return "\n".join(lines)
