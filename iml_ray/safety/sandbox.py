"""Run generated (untrusted) code: a child process with limits, a clean env, and a tree kill.

- wall-clock timeout, a memory limit on the summed RSS of the whole process
  tree and a cap on its processes, enforced by a supervising loop that kills
  the tree on a breach;
- its own working directory; stdout/stderr to log files, capped;
- an environment without API keys, tokens or credentials;
- no exec() in the caller, no fork of the caller, no preexec_fn (the caller is
  a multithreaded Ray worker); the child stays in the caller's process group so
  Ray's cleanup of the worker reaches it, and a tiny bootstrap
  (iml_ray/safety/isolation.py) sets PR_SET_PDEATHSIG so it dies with the worker even
  when nobody cleans up, and enters its own network and mount namespaces.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

import psutil

from iml_ray.safety.isolation import containment, launch_command

log = logging.getLogger(__name__)

SECRET_WORDS = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE", re.IGNORECASE)
SECRET_PREFIXES = ("OPENAI_", "ANTHROPIC_", "AWS_", "AZURE_", "GITHUB_", "GH_", "IML_LLM_", "HF_", "HUGGING_FACE_",
                   "GOOGLE_APPLICATION_CREDENTIALS", "WANDB_API_KEY")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_MAX_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS")
POLL_S = 0.1




@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float
    memory_mb: int
    max_log_bytes: int = 20_000_000
    max_open_files: int = 4096                 # RLIMIT_NOFILE of the child
    max_disk_bytes: int | None = None          # size of the working directory tree
    cpus: int | None = None
    gpu_ids: tuple[int, ...] = ()
    network: bool = False                      # False: a network namespace of its own, where the kernel allows one
    read_only: tuple[str, ...] = ()            # paths mounted read-only for it (the task's data, the run directory)
    writable: tuple[str, ...] = ()             # paths inside those that stay writable (besides its working directory)
    hidden: str | None = None                  # a directory it sees empty (the run's candidates: other tracks' code)
    exposed: tuple[str, ...] = ()              # paths inside `hidden` it still sees, read-only (its own track's)
    max_processes: int = 256                   # processes in its tree, counted by the supervisor
    confine_writes: bool = True                # nothing writable but its working directory, `writable` and /dev/shm


@dataclass(frozen=True)
class SandboxResult:
    status: Literal["ok", "error", "timeout", "memory", "output_limit", "disk_limit", "process_limit", "killed"]
    returncode: int | None
    wall_s: float
    peak_rss_mb: float
    stdout_path: Path
    stderr_path: Path
    limits: SandboxLimits | None = None

    def stderr_tail(self, max_bytes: int = 8000) -> str:
        return _tail(self.stderr_path, max_bytes)

    def stdout_tail(self, max_bytes: int = 4000) -> str:
        return _tail(self.stdout_path, max_bytes)

    def describe(self) -> str:
        if self.status == "ok":
            return f"finished in {self.wall_s:.1f} s"
        if self.status == "timeout":
            return f"timed out after {self.wall_s:.1f} s"
        if self.status == "memory":
            limit = self.limits.memory_mb if self.limits else "?"
            return f"exceeded the memory limit (peak {self.peak_rss_mb:.0f} MB > {limit} MB)"
        if self.status == "output_limit":
            limit = self.limits.max_log_bytes if self.limits else "?"
            return f"wrote more than {limit} bytes of output"
        if self.status == "disk_limit":
            limit = self.limits.max_disk_bytes if self.limits else "?"
            return f"wrote more than {limit} bytes into its working directory"
        if self.status == "process_limit":
            limit = self.limits.max_processes if self.limits else "?"
            return f"started more than {limit} processes"
        if self.status == "killed":
            return f"killed by signal {-(self.returncode or 0)}"
        last = next((line.strip() for line in reversed(self.stderr_tail().splitlines()) if line.strip()), "")
        return f"exit code {self.returncode}: {last[:300]}" if last else f"exit code {self.returncode}"

    def to_json(self) -> dict:
        return {"status": self.status, "returncode": self.returncode, "wall_s": round(self.wall_s, 3),
                "peak_rss_mb": round(self.peak_rss_mb, 1), "stdout": str(self.stdout_path), "stderr": str(self.stderr_path),
                "description": self.describe()}


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without secrets, plus settings that make runs reproducible."""
    source = dict(os.environ if base is None else base)
    env = {k: v for k, v in source.items() if not SECRET_WORDS.search(k) and not k.upper().startswith(SECRET_PREFIXES)}
    env.update(PYTHONHASHSEED="0", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    return env


def run_sandboxed(argv: Sequence[str], workdir: Path, limits: SandboxLimits, *, extra_env: Mapping[str, str] | None = None,
                  log_prefix: str = "run") -> SandboxResult:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path = workdir / f"{log_prefix}.stdout.log"
    stderr_path = workdir / f"{log_prefix}.stderr.log"
    env = clean_env()
    env.update(extra_env or {})
    if limits.cpus:
        env.update({name: str(limits.cpus) for name in THREAD_VARS})
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in limits.gpu_ids)
    # Writes that default to the home directory or /tmp land in the working directory.
    home = workdir / ".home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), TMPDIR=str(home))
    caps = containment()
    read_only = [str(Path(p).resolve()) for p in limits.read_only] if caps.read_only else []
    writable = [str(workdir.resolve())]
    for path in limits.writable:
        Path(path).mkdir(parents=True, exist_ok=True)      # a mount point must exist
        writable.append(str(Path(path).resolve()))
    confine = limits.confine_writes and caps.writes
    if confine and os.path.isdir("/dev/shm"):
        writable.append("/dev/shm")                        # shared memory of joblib, torch and multiprocessing
    hidden = str(Path(limits.hidden).resolve()) if read_only and limits.hidden else ""
    command = launch_command(argv, max_open_files=limits.max_open_files, no_network=not limits.network and caps.network,
                             read_only=read_only, writable=writable, hidden=hidden,
                             exposed=[str(Path(p).resolve()) for p in limits.exposed] if hidden else [], confine=confine)
    started = time.monotonic()
    # Output goes through pipes, not straight to files: the pipe's back-pressure
    # means the child can never write faster than we count, so the cap holds.
    child = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, close_fds=True)
    pumps = [_Pump(child.stdout, stdout_path, limits.max_log_bytes), _Pump(child.stderr, stderr_path, limits.max_log_bytes)]
    status, peak, polls = "ok", 0.0, 0
    try:
        while True:
            polls += 1
            try:
                returncode = child.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - started
            rss, processes = _tree_usage(child.pid)
            peak = max(peak, rss)
            breach = None
            if elapsed > limits.timeout_s:
                breach = "timeout"
            elif rss > limits.memory_mb:
                breach = "memory"
            elif processes > limits.max_processes:
                breach = "process_limit"
            elif any(p.overflowed for p in pumps):
                breach = "output_limit"
            # Walking the directory costs more than a poll: once a second is enough.
            elif limits.max_disk_bytes and polls % 10 == 0 and _tree_bytes(workdir) > limits.max_disk_bytes:
                breach = "disk_limit"
            if breach:
                status = breach
                kill_tree(child)
                returncode = child.returncode
                break
    except BaseException:
        kill_tree(child)
        raise
    finally:
        for pump in pumps:
            pump.join()
    wall = time.monotonic() - started
    if status == "ok" and any(p.overflowed for p in pumps):
        status = "output_limit"
    if status == "ok" and returncode != 0:
        status = "killed" if returncode < 0 else "error"
    return SandboxResult(status, returncode, wall, peak, stdout_path, stderr_path, limits)


def run_python(script: Path, args: Sequence[str], workdir: Path, limits: SandboxLimits, **kw) -> SandboxResult:
    return run_sandboxed([sys.executable, str(script), *args], workdir, limits, **kw)


def kill_tree(child: subprocess.Popen, grace_s: float = 2.0) -> None:
    """SIGTERM the child and every descendant, SIGKILL what survives, reap the child."""
    try:
        root = psutil.Process(child.pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        procs = []
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in procs):
        time.sleep(0.05)
    # Survivors, and descendants started during the grace period, get SIGKILL.
    for proc in procs + _descendants(procs):
        if _alive(proc):
            _signal(proc, signal.SIGKILL)
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        log.error("sandboxed process %d did not die after SIGKILL", child.pid)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _descendants(procs: list[psutil.Process]) -> list[psutil.Process]:
    found = []
    for proc in procs:
        try:
            found.extend(proc.children(recursive=True))
        except psutil.Error:
            continue
    return found


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


def _tree_usage(pid: int) -> tuple[float, int]:
    """Summed RSS (MB) and number of processes of the tree."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0.0, 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20, len(procs)


class _Pump:
    """Copies one output stream of the child to a log file, up to a cap; drains the rest."""

    def __init__(self, stream, path: Path, cap: int):
        self.stream, self.path, self.cap = stream, path, cap
        self.written = 0
        self.overflowed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with open(self.path, "wb") as out:
            while True:
                chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
                if not chunk:
                    break
                room = self.cap - self.written
                if room > 0:
                    out.write(chunk[:room])
                    out.flush()
                self.written += len(chunk)
                if self.written > self.cap:
                    self.overflowed = True
        self.stream.close()

    def join(self) -> None:
        # A grandchild that escaped the kill may hold the pipe open; do not wait for it forever.
        self.thread.join(timeout=5)


def _tree_bytes(root: Path) -> int:
    total = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _tail(path: Path, max_bytes: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
