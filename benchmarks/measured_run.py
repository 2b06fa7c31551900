"""A benchmarked command as its users run it: its wall time, the peak memory of its whole process tree, and
nothing of it left running afterwards (run_suite.py's measured runs)."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_EVERY_S = 0.5
# A sample reads every process's PSS (the kernel walks its memory maps): a Ray run's tree of a dozen or more
# processes costs far more to read than a peer's one or two, so the sampler waits this many times what its last
# sample cost, and never takes more than 1/(1 + this) of a core from the run it measures.
SAMPLE_COST_FACTOR = 50.0
LEFTOVER_GRACE_S = 10.0


@dataclass(frozen=True)
class Measured:
    returncode: int | None
    wall_s: float
    peak_mib: float
    timed_out: bool
    leftovers: tuple[str, ...]   # names of the run's processes still alive after it ended (killed)


def run_measured(cmd: list[str], log_path: Path, timeout_s: float, cwd: Path) -> Measured:
    """Run cmd in its own session; sample the memory of its whole process tree; kill the tree past timeout_s."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file:
        log_file.write("$ " + shlex.join(cmd) + "\n")
        log_file.flush()
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)
        seen: dict[int, psutil.Process] = {}
        try:
            seen[proc.pid] = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            pass
        peak, timed_out = 0.0, False
        while proc.poll() is None:
            sampled = time.process_time()
            peak = max(peak, tree_memory(seen))
            if time.monotonic() - started > timeout_s:
                timed_out = True
                kill_all(seen, proc.pid)
                break
            try:
                # Waiting on the process, not sleeping: its exit ends the wall time at once, however long the wait.
                proc.wait(timeout=max(SAMPLE_EVERY_S, SAMPLE_COST_FACTOR * (time.process_time() - sampled)))
            except subprocess.TimeoutExpired:
                pass
        proc.wait()
        wall = time.monotonic() - started
        # Daemons a run started and left behind (a Ray cluster whose driver died) are this run's: after a
        # grace period for an orderly shutdown, end them.
        settle(seen, LEFTOVER_GRACE_S)
        leftovers = tuple(kill_all(seen, proc.pid))
    return Measured(None if timed_out else proc.returncode, wall, peak / 2 ** 20, timed_out, leftovers)


def tree_memory(seen: dict[int, psutil.Process]) -> float:
    """Bytes of the tree: PSS (shared pages split between their users), RSS where PSS cannot be read.

    Every process ever seen in the tree counts while it lives, so a daemon that
    was re-parented away from the tree still counts.
    """
    for root in list(seen.values()):
        try:
            for child in root.children(recursive=True):
                seen.setdefault(child.pid, child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    total = 0.0
    for process in list(seen.values()):
        try:
            if not process.is_running():
                continue
            try:
                total += process.memory_full_info().pss
            except (psutil.AccessDenied, AttributeError):
                total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return total


def settle(seen: dict[int, psutil.Process], grace_s: float) -> None:
    """Wait up to grace_s for the run's remaining processes to exit by themselves."""
    tree_memory(seen)
    alive = [p for p in seen.values() if _running(p)]
    if alive:
        psutil.wait_procs(alive, timeout=grace_s)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def kill_all(seen: dict[int, psutil.Process], session_leader: int) -> list[str]:
    """SIGKILL every still-running process of this run; their names."""
    tree_memory(seen)        # pick up children born since the last sample
    alive = [p for p in seen.values() if _running(p)]
    names = []
    for process in alive:
        try:
            names.append(process.name())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            names.append(str(process.pid))
    try:
        os.killpg(session_leader, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for process in alive:
        try:
            process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return names
