"""How a sandboxed child is started: a bootstrap that enters its own namespaces, and what this kernel allows.

iml_ray/safety/sandbox.py supervises the child (limits, logs, the tree kill); this module
decides how it is launched. The bootstrap dies with its parent, drops core dumps,
and where the kernel allows: leaves the network (a network namespace of its
own) and sees the task and run directories read-only (a mount namespace).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Sequence

log = logging.getLogger(__name__)

# Runs before the generated code, in the child: die with the parent, no core
# dumps, then (when asked and the kernel allows) its own network namespace (no
# network: not even the host's loopback) and its own mount namespace in which
# the given paths are read-only, then become the real program (PDEATHSIG and
# the namespaces survive execve). A namespace it cannot enter is an error
# (exit 126), never a silent downgrade: the caller probes first (containment()).
BOOTSTRAP = r"""
import ctypes, os, resource, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(137)                         # the parent died before prctl took effect
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
files = int(sys.argv[2])
if files > 0:
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
no_net = sys.argv[3] == "1"
read_only = [p for p in sys.argv[4].split(os.pathsep) if p]
writable = [p for p in sys.argv[5].split(os.pathsep) if p]
hidden = sys.argv[6]                      # a directory replaced by an empty one (other candidates' code)
exposed = [p for p in sys.argv[7].split(os.pathsep) if p]   # paths inside it that stay visible, read-only
confine = sys.argv[8] == "1"              # the whole file system read-only but for the writable paths

def fail(what):
    sys.stderr.write("iml-ray sandbox: %s: %s\n" % (what, os.strerror(ctypes.get_errno())))
    os._exit(126)

mounts = bool(read_only or confine)
if no_net or mounts:
    uid, gid = os.getuid(), os.getgid()
    flags = (0x40000000 if no_net else 0) | (0x00020000 if mounts else 0)      # CLONE_NEWNET, CLONE_NEWNS
    if uid != 0:
        flags |= 0x10000000                                                    # CLONE_NEWUSER: unprivileged
    if libc.unshare(flags) != 0:
        fail("unshare")
    if uid != 0:
        for name, text in (("setgroups", "deny"), ("uid_map", "%d %d 1" % (uid, uid)), ("gid_map", "%d %d 1" % (gid, gid))):
            with open("/proc/self/" + name, "w") as handle:
                handle.write(text)
    if mounts:
        MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
        # Handles on what must stay reachable, taken before anything is mounted over it.
        handles = {p: os.open(p, os.O_PATH) for p in exposed + writable if os.path.isdir(p)}
        if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            fail("mount --make-rprivate /")
        for path in read_only:
            raw = path.encode()
            if libc.mount(raw, raw, None, MS_BIND | MS_REC, None) != 0:
                fail("bind " + path)
            if libc.mount(None, raw, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None) != 0:
                fail("read-only " + path)
        if hidden:
            if libc.mount(b"tmpfs", hidden.encode(), b"tmpfs", 0, b"size=1m,mode=755") != 0:
                fail("hide " + hidden)
            for path in exposed:
                os.makedirs(path, exist_ok=True)           # inside the empty tmpfs
                source = ("/proc/self/fd/%d" % handles[path]).encode()
                if libc.mount(source, path.encode(), None, MS_BIND | MS_REC, None) != 0:
                    fail("expose " + path)
                if libc.mount(None, path.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None) != 0:
                    fail("read-only " + path)
        if confine:
            # mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, {attr_set: MOUNT_ATTR_RDONLY}): every mount, in one call.
            attr = (ctypes.c_uint64 * 4)(1, 0, 0, 0)
            if libc.syscall(442, -100, b"/", 0x8000, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
                fail("read-only /")
        for path in writable:                  # a working directory inside a read-only path stays writable
            raw = path.encode()
            if (confine or any(path.startswith(p.rstrip("/") + "/") for p in read_only)) and path in handles:
                source = ("/proc/self/fd/%d" % handles[path]).encode()
                if libc.mount(source, raw, None, MS_BIND | MS_REC, None) != 0:
                    fail("bind " + path)
                if libc.mount(None, raw, None, MS_BIND | MS_REMOUNT, None) != 0:   # a bind copies read-only
                    fail("writable " + path)
        for handle in handles.values():
            os.close(handle)
        # The working directory was entered before the mounts: enter it again, through them.
        os.chdir(os.getcwd())
os.execvpe(sys.argv[9], sys.argv[9:], os.environ)
"""


def launch_command(argv: Sequence[str], *, max_open_files: int, no_network: bool = False, read_only: Sequence[str] = (),
                   writable: Sequence[str] = (), hidden: str = "", exposed: Sequence[str] = (),
                   confine: bool = False) -> list[str]:
    """The command that runs `argv` through the bootstrap (paths absolute; see SandboxLimits for their meaning).

    With `confine`, the whole file system is read-only for the child except `writable`."""
    return [sys.executable, "-c", BOOTSTRAP, str(os.getpid()), str(max_open_files), "1" if no_network else "0",
            os.pathsep.join(read_only), os.pathsep.join(writable), hidden, os.pathsep.join(exposed),
            "1" if confine else "0", *[str(a) for a in argv]]


@dataclass(frozen=True)
class Containment:
    """What this machine's kernel lets the sandbox do beyond limits and a clean environment."""

    network: bool             # generated code gets a network namespace of its own (no network)
    read_only: bool           # the task's data is mounted read-only for it
    detail: str               # why not, when not
    writes: bool = False      # it can write nowhere but its working directory (and the paths given writable)

    def describe(self) -> str:
        parts = ["no network" if self.network else "network NOT isolated",
                 "task data read-only" if self.read_only else "task data NOT read-only",
                 "writes confined" if self.writes else "writes NOT confined"]
        return ", ".join(parts) + (f" ({self.detail})" if self.detail else "")


_CONTAINMENT: Containment | None = None
_CONTAINMENT_LOCK = threading.Lock()


def containment() -> Containment:
    """Probe once per process whether the bootstrap can enter its namespaces here; say so when it cannot."""
    global _CONTAINMENT
    with _CONTAINMENT_LOCK:
        if _CONTAINMENT is None:
            _CONTAINMENT = _probe_containment()
            if not (_CONTAINMENT.network and _CONTAINMENT.read_only and _CONTAINMENT.writes):
                log.warning("sandbox containment is weaker on this machine: %s; the limits on time, memory, "
                            "processes, files, output and disk still hold", _CONTAINMENT.describe())
        return _CONTAINMENT


def _probe_containment() -> Containment:
    import tempfile

    if os.environ.get("IML_SANDBOX_NAMESPACES", "1") == "0":
        return Containment(False, False, "turned off by IML_SANDBOX_NAMESPACES=0")
    if sys.platform != "linux":
        return Containment(False, False, f"namespaces need Linux, this is {sys.platform}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="iml-probe-") as folder:
        # The confined child must write in its writable folder and fail (EROFS) anywhere else.
        writes = ("import os, sys\nopen(os.path.join(sys.argv[1], 'ok'), 'w').close()\n"
                  "try:\n    open(os.path.join(sys.argv[2], 'escape'), 'w').close()\nexcept OSError:\n    sys.exit(0)\n"
                  "sys.exit('a write outside the writable folder succeeded')")
        writable, outside = os.path.join(folder, "w"), os.path.join(folder, "o")
        os.makedirs(writable)
        os.makedirs(outside)
        for name, no_net, read_only, confine, code in (("network", True, [], False, "pass"),
                                                        ("read_only", False, [folder], False, "pass"),
                                                        ("writes", False, [], True, writes)):
            probe = subprocess.run(launch_command([sys.executable, "-c", code, writable, outside], max_open_files=0,
                                                  no_network=no_net, read_only=read_only, writable=[writable],
                                                  confine=confine),
                                   capture_output=True, text=True, timeout=30)
            results[name] = (probe.returncode == 0, probe.stderr.strip().splitlines()[-1:] or [""])
    why = "; ".join(f"{name}: {lines[0]}" for name, (ok, lines) in results.items() if not ok)
    return Containment(results["network"][0], results["read_only"][0], why, writes=results["writes"][0])
