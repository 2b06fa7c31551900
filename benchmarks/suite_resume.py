"""A suite run in parts: what an earlier invocation into the same OUT may lend a later `run_suite.py --resume`.

A 300 s suite of 30 tasks and four systems takes longer than a working session on two cores. `--resume` keeps each
outcome OUT/results.json already holds for the same budget when the system's code is the code that ran it (its
digest), and runs the rest; every outcome records its digest and the start of the invocation that ran it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from scoreboard import Outcome

ROOT = Path(__file__).resolve().parent.parent

# The files every system's outcome depends on: how the tasks are built, graded and run.
SUITE_FILES = ("suite.py", "suite_layouts.py", "suite_tables.py", "grade.py", "measured_run.py")


def code_digest(system: str, peers_env: dict | None = None, root: Path = ROOT) -> str:
    """A digest of what the system's outcome on a task depends on besides the machine and the budget.

    iml-ray: its packages and pins; a peer: peers.py, its requirements and the versions in its venv; the baseline:
    baseline.py; every system: the suite's builders, grader and process runner. `--resume` keeps an earlier outcome
    only when its digest is this one, so a suite run in parts never mixes two versions of a system.
    """
    files = [root / "benchmarks" / name for name in SUITE_FILES]
    versions = b""
    if system == "iml-ray":
        files.append(root / "pyproject.toml")
        for package in ("iml_ray", "actors"):
            files += sorted(p for p in (root / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    elif system == "baseline":
        files.append(root / "benchmarks" / "baseline.py")
    else:
        files += [root / "benchmarks" / "peers.py", root / "benchmarks" / "requirements-peers.txt"]
        versions = json.dumps((peers_env or {}).get("versions", {}), sort_keys=True).encode()
    digest = hashlib.sha256(versions)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class ResumeError(ValueError):
    """OUT's results.json cannot be resumed with this command."""


def earlier_outcomes(path: Path, budget: float) -> dict[tuple[str, str], Outcome]:
    """The outcomes earlier invocations wrote into the same OUT, keyed by (task, system)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        outcomes = [Outcome.from_json(o) for o in data["outcomes"]]
        earlier_budget = float(data["time_budget"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ResumeError(f"{path} is not a suite's results.json ({exc}); pass another --out, or drop --resume") from None
    if earlier_budget != budget:
        raise ResumeError(f"{path} holds a suite run at {earlier_budget:g} s per task, not {budget:g} s; "
                          "pass the same --time-budget, or another --out")
    return {(o.task, o.system): o for o in outcomes}


def git_commit(root: Path = ROOT) -> str | None:
    """The checkout's commit, marked when iml-ray's files differ from it; None outside a git checkout."""
    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None
    commit = git("rev-parse", "--short", "HEAD") if shutil.which("git") else None
    if commit and git("status", "--porcelain", "--", "iml_ray", "actors", "pyproject.toml"):
        commit += " with local changes"
    return commit
