"""The Coordinator's stacker: a weighted blend of verified candidates, kept only when it beats the best one.

Weights come from greedy ensemble selection (Caruana et al., 2004) on the
framework-owned validation predictions, the same rows every candidate was
scored on. Whether the blend is kept is decided by cross-fitting: the holdout
is cut in two, weights fitted on one half are scored on the other (and back),
and the blend must beat the single candidate that the same half would have
picked. The blend itself is the `blend()` of the ensemble template, so the
submission written here and the one `pipeline.py` writes are the same code's.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iml_ray.blueprint import Candidate, RepairRound
from iml_ray.metrics.predictions import score_predictions
from iml_ray.metrics.registry import get_metric
from iml_ray.task.files import TaskSummary

log = logging.getLogger(__name__)

SELECTION_ROUNDS = 25
STACK_TOP_K = 3                 # tracks whose best candidates the stacker may blend
ALTERNATES_PER_TRACK = 2        # and, of each, this many rounds it could not tell from its best


@dataclass(frozen=True)
class EnsembleFit:
    """The stacker's decision, for report.json."""

    members: tuple[str, ...]                 # candidates considered, best first
    weights: dict[str, float]                # fitted on all validation rows
    blend_score: float | None                # cross-fitted: each half scored with weights fitted on the other
    single_score: float | None               # the best single candidate, picked and scored the same way
    kept: bool
    reason: str
    folds: list[dict] = field(default_factory=list)
    over: str = "answers"                    # what was blended: the members' answers, or their labels' "probabilities"

    def to_json(self) -> dict:
        data = asdict(self)
        data["members"] = list(self.members)
        return data


def blend_function():
    """`blend(frames, weights, fmt)` from the ensemble template (one implementation for both places)."""
    from iml_ray.codegen.render import fill

    namespace: dict = {}
    code = fill("ensemble", TASK_NAME="(blend)", ENSEMBLE="{}", MEMBERS="")
    exec(compile(code, "ensemble_template.py", "exec"), namespace)
    return namespace["blend"]


def read_answer(path: Path | str) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _score(summary: TaskSummary, truth: pd.Series, frame: pd.DataFrame) -> float:
    typed = frame.copy()
    if summary.submission.kind != "label":
        for column in summary.submission.target_columns:
            typed[column] = pd.to_numeric(typed[column])
    return float(score_predictions(summary.metric, truth.reset_index(drop=True), typed.reset_index(drop=True),
                                   summary.submission))


def select_weights(frames: dict[str, pd.DataFrame], truth: pd.Series, summary: TaskSummary,
                   rounds: int = SELECTION_ROUNDS, fmt: dict | None = None) -> dict[str, float]:
    """Greedy forward selection with replacement, starting from the best single member."""
    blend = blend_function()
    fmt = fmt or summary.submission.to_json()
    better = get_metric(summary.metric).higher_is_better
    names = list(frames)
    counts = {name: 0 for name in names}
    best_score = None
    for _ in range(rounds):
        trial = None
        for name in names:
            counts[name] += 1
            chosen = [n for n in names if counts[n] > 0]
            score = _score(summary, truth, blend([frames[n] for n in chosen], [counts[n] for n in chosen], fmt))
            counts[name] -= 1
            if trial is None or (score > trial[0] if better else score < trial[0]):
                trial = (score, name)
        if best_score is not None and not (trial[0] > best_score if better else trial[0] < best_score) \
                and sum(counts.values()) >= 1:
            # Adding anyone makes it worse or no better: stop, as in the original greedy selection.
            break
        counts[trial[1]] += 1
        best_score = trial[0]
    total = sum(counts.values())
    return {name: counts[name] / total for name in names}


def probability_format(summary: TaskSummary, labels: list[str]) -> dict:
    """What blend() reads from the members' label probabilities (test_proba.csv, valid_proba.csv: one column per
    label, named as the submission writes it)."""
    return {**summary.submission.to_json(), "kind": "label_probabilities", "labels": list(labels)}


def fit_ensemble(valid: dict[str, pd.DataFrame], truth: pd.Series, summary: TaskSummary, seed: int = 0,
                 fmt: dict | None = None) -> EnsembleFit:
    """valid: each candidate's validation predictions (same rows, same order), best candidate first; fmt: what they
    are, for blend() (the submission's format by default; probability_format() for the labels' probabilities)."""
    names = tuple(valid)
    if len(names) < 2:
        return EnsembleFit(names, {n: 1.0 for n in names}, None, None, False, "fewer than two verified candidates")
    blend = blend_function()
    fmt = fmt or summary.submission.to_json()
    better = get_metric(summary.metric).higher_is_better
    n = len(truth)
    order = np.random.default_rng(seed).permutation(n)
    halves = [np.sort(order[: n // 2]), np.sort(order[n // 2:])]
    blend_scores, single_scores, folds = [], [], []
    for fit_rows, score_rows in (halves, halves[::-1]):
        part = {k: v.iloc[fit_rows].reset_index(drop=True) for k, v in valid.items()}
        weights = select_weights(part, truth.iloc[fit_rows], summary, fmt=fmt)
        singles = {k: _score(summary, truth.iloc[fit_rows], blend([v], [1.0], fmt)) for k, v in part.items()}
        single = (max if better else min)(singles, key=singles.get)
        held = {k: v.iloc[score_rows].reset_index(drop=True) for k, v in valid.items()}
        used = [k for k in names if weights[k] > 0]
        blend_score = _score(summary, truth.iloc[score_rows], blend([held[k] for k in used], [weights[k] for k in used], fmt))
        single_score = _score(summary, truth.iloc[score_rows], blend([held[single]], [1.0], fmt))
        blend_scores.append(blend_score)
        single_scores.append(single_score)
        folds.append({"weights": weights, "single": single, "blend_score": blend_score, "single_score": single_score})
    weights = select_weights(valid, truth, summary, fmt=fmt)
    blend_score, single_score = float(np.mean(blend_scores)), float(np.mean(single_scores))
    members_used = [k for k in names if weights[k] > 0]
    wins = blend_score > single_score if better else blend_score < single_score
    if len(members_used) < 2:
        kept, reason = False, f"selection kept only {members_used[0]}"
    elif not wins:
        kept, reason = False, (f"the blend ({blend_score:.5g}) did not beat the best single candidate ({single_score:.5g}) "
                               "on rows it was not fitted on")
    else:
        kept, reason = True, (f"the blend ({blend_score:.5g}) beat the best single candidate ({single_score:.5g}) "
                              "on rows it was not fitted on")
    return EnsembleFit(names, weights, blend_score, single_score, kept, reason, folds)


def ensemble_script(summary: TaskSummary, fit: EnsembleFit, members: dict[str, str], fmt: dict | None = None) -> str:
    """The standalone pipeline.py of a kept ensemble: the members' own pipelines inside one file (fmt: the blend's
    format over the labels' probabilities, when the weights were fitted on them)."""
    from iml_ray.codegen.render import fill, literal

    used = {name: members[name] for name in fit.members if fit.weights.get(name, 0) > 0}
    lines = []
    for name, code in used.items():
        if "'''" in code or code.rstrip().endswith("\\"):
            lines.append(f"MEMBERS[{name!r}] = {code!r}\n")
        else:
            lines.append(f"MEMBERS[{name!r}] = r'''{code}'''\n")
    config = {"weights": {name: round(fit.weights[name], 6) for name in used}, "submission": summary.submission.to_json(),
              "validation": {"blend_score": fit.blend_score, "single_score": fit.single_score}}
    if fmt:
        config["probabilities"] = fmt
    script = fill("ensemble", TASK_NAME=summary.name, ENSEMBLE=literal(config), MEMBERS="\n".join(lines))
    compile(script, "pipeline.py", "exec")
    return script


def blend_submissions(summary: TaskSummary, fit: EnsembleFit, submissions: dict[str, Path],
                      fmt: dict | None = None) -> pd.DataFrame:
    """submissions: each member's answer on the test rows (its labels' probabilities with probability_format())."""
    blend = blend_function()
    used = [name for name in fit.members if fit.weights.get(name, 0) > 0]
    return blend([read_answer(submissions[name]) for name in used], [fit.weights[name] for name in used],
                 fmt or summary.submission.to_json())


def _probabilities(summary: TaskSummary, outputs: dict[str, Path]) -> dict | None:
    """The blend's format over the members' label probabilities, when the task is answered with one label per row
    and every member wrote them for the same labels: a vote of two members' labels is always the heavier one's, so
    only probabilities can make a blend better than its best member. None: blend the answers."""
    if summary.submission.kind != "label" or len(summary.all_targets) > 1:
        return None
    labels = None
    for folder in outputs.values():
        if not ((folder / "valid_proba.csv").is_file() and (folder / "test_proba.csv").is_file()):
            return None
        columns = [c for c in pd.read_csv(folder / "valid_proba.csv", nrows=0, dtype=str).columns if c != "__row__"]
        if labels is not None and columns != labels:
            return None
        labels = columns
    return probability_format(summary, labels or [])


def round_candidate(candidate: Candidate, round_: RepairRound) -> Candidate | None:
    """One of a track's earlier rounds as a candidate of its own, named <track>.round_<n> (its standalone pipeline
    beside the track's, its outputs in the round's folder); None when the round's files are not there."""
    import dataclasses

    pipeline = candidate.round_pipeline(round_.round)
    outputs = Path(candidate.code_dir) / f"round_{round_.round}" / "output"
    if not (pipeline.is_file() and (outputs / "submission.csv").is_file() and (outputs / "valid_predictions.csv").is_file()):
        return None
    return dataclasses.replace(candidate, track=f"{candidate.track}.round_{round_.round}", valid_score=round_.score,
                               pipeline_path=str(pipeline), submission_path=str(outputs / "submission.csv"), rounds=())


def blend_members(leaderboard: tuple[Candidate, ...], higher_is_better: bool) -> tuple[list[Candidate], list[Candidate]]:
    """The best verified candidates of the top STACK_TOP_K tracks, and each one's best ALTERNATES_PER_TRACK rounds
    that scored better than the track's best did when they ran, but within the validation rows' noise: the track
    could not tell which is better, an average of the two may well beat both, and fit_ensemble()'s cross-fitted
    test decides."""
    tracks = [c for c in leaderboard if c.status == "verified"][:STACK_TOP_K]
    alternates = []
    for candidate in tracks:
        rounds = sorted(candidate.within_noise_rounds(), key=lambda r: r.score, reverse=higher_is_better)
        alternates += [alt for r in rounds[:ALTERNATES_PER_TRACK] if (alt := round_candidate(candidate, r)) is not None]
    return tracks, alternates


def stack_candidates(summary: TaskSummary, leaderboard: tuple[Candidate, ...], root: Path, seed: int = 0) -> EnsembleFit | None:
    """Blend the top verified candidates (blend_members()) when that beats the best one on unseen rows.

    A kept blend is staged in <root>/ensemble/, verified, then copied to <root>/pipeline.py and
    submission.csv; None when there are fewer than two members, or the tracks' validation rows differ (nothing to
    blend on; an alternate whose rows differ from its track's is left out).
    """
    import dataclasses

    from iml_ray.rundir import atomic_copy, atomic_write_text
    from iml_ray.safety.contract import check_submission
    from iml_ray.scoring.evaluate import read_target

    tracks, alternates = blend_members(leaderboard, get_metric(summary.metric).higher_is_better)
    outputs = {c.track: Path(c.submission_path).parent for c in tracks}
    probabilities = _probabilities(summary, outputs)
    fmt = probabilities or summary.submission.to_json()
    valid_file, test_file = ("valid_proba.csv", "test_proba.csv") if probabilities else \
        ("valid_predictions.csv", "submission.csv")
    valid = {track: read_answer(folder / valid_file) for track, folder in outputs.items()}
    rows = [int(r) for r in valid[tracks[0].track]["__row__"]]
    if any([int(r) for r in frame["__row__"]] != rows for frame in valid.values()):
        log.warning("stacking skipped: the candidates' validation rows differ")
        return None
    members = list(tracks)
    for alternate in alternates:
        # Blended as the tracks are (the same labels' probabilities, or answers) on the same rows, or left out.
        folder = Path(alternate.submission_path).parent
        if _probabilities(summary, {**outputs, alternate.track: folder}) != probabilities:
            continue
        frame = read_answer(folder / valid_file)
        if [int(r) for r in frame["__row__"]] == rows:
            members.append(alternate)
            outputs[alternate.track], valid[alternate.track] = folder, frame
    if len(members) < 2:
        return None
    truth = read_target(summary).iloc[rows].reset_index(drop=True)
    fit = fit_ensemble({k: v.drop(columns="__row__") for k, v in valid.items()}, truth, summary, seed, fmt)
    if probabilities:
        fit = dataclasses.replace(fit, over="probabilities")
    log.info("stacking over the %s: %s", fit.over, fit.reason)
    if fit.kept:
        script = ensemble_script(summary, fit, {c.track: Path(c.pipeline_path).read_text() for c in members},
                                 probabilities)
        answer = blend_submissions(summary, fit, {track: folder / test_file for track, folder in outputs.items()}, fmt)
        staged = root / "ensemble"
        staged.mkdir(exist_ok=True)
        atomic_write_text(staged / "pipeline.py", script)
        atomic_write_text(staged / "submission.csv", answer.to_csv(index=False))
        # For the report's diagnostics (weights fitted on these rows: not a score).
        blend_valid = blend_function()
        used = [name for name in fit.members if fit.weights.get(name, 0) > 0]
        blended = blend_valid([valid[name] for name in used], [fit.weights[name] for name in used], fmt)
        atomic_write_text(staged / "valid_predictions.csv", blended.to_csv(index=False))
        problems = check_submission(staged / "submission.csv", summary)
        if problems:
            log.error("the ensemble's submission fails verification (%s); keeping the best candidate", problems[0])
            return dataclasses.replace(fit, kept=False, reason=f"blended submission failed verification: {problems[0]}")
        atomic_copy(staged / "pipeline.py", root / "pipeline.py")
        atomic_copy(staged / "submission.csv", root / "submission.csv")
    return fit
