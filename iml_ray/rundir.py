"""The run directory: where a run's artifacts land, atomically, with its state.

    <out>/submission.csv, pipeline.py, report.json, state.json
    <out>/plan/      task_summary.json, profile.json, knowledge.json, blueprint.json, contract.json, holdout.json
    <out>/candidates/<track>/round_<n>/ ...

An output directory that holds an earlier run is refused unless the user says
--resume (continue it) or --force (start over).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from iml_ray.errors import NoSpaceError, OutputDirError

MARKERS = ("state.json", "report.json", "submission.csv", "plan")
UNPACKED = "unpacked"          # a task's zipped folders, unpacked by the run (task/archives.py)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def space_for(path: Path) -> Iterator[None]:
    """A full disk while writing `path` is the user's NoSpaceError, not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise NoSpaceError(str(path)) from None
        raise


def _umask_mode() -> int:
    # mkstemp creates 0600 files; results are for sharing, so use what the umask allows.
    current = os.umask(0)
    os.umask(current)
    return 0o666 & ~current


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    path = Path(path)
    with space_for(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, _umask_mode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def atomic_copy(source: Path, target: Path) -> None:
    target = Path(target)
    with space_for(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(handle)
        try:
            shutil.copyfile(source, tmp)
            os.chmod(tmp, _umask_mode())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class RunDir:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    # -- claiming ---------------------------------------------------------
    @classmethod
    def check(cls, out: Path, resume: bool = False, force: bool = False) -> "RunDir":
        """Refuse an output directory we must not write into; write nothing."""
        out = Path(out).expanduser()
        if out.exists() and not out.is_dir():
            raise OutputDirError(f"output path {out} is a file", "Pass a directory to --out.")
        if out.is_dir() and any(out.iterdir()):
            earlier = any((out / m).exists() for m in (*MARKERS, UNPACKED))
            if earlier and not (resume or force):
                raise OutputDirError(f"{out} holds an earlier run",
                                     "Pass --resume to continue it, --force to replace it, or choose another --out.")
            if not earlier and not force:
                raise OutputDirError(f"{out} is not empty and holds no iml-ray run",
                                     "Choose an empty or new directory for --out (or --force to write into it anyway).")
        return cls(out)

    def prepare(self, force: bool = False) -> None:
        """Create the directory; with force, clear what an earlier run left."""
        if force and self.root.is_dir():
            for name in (*MARKERS, "pipeline.py", "candidates", "report.html"):
                target = self.root / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        with space_for(self.root):
            self.plan.mkdir(parents=True, exist_ok=True)
            self.candidates.mkdir(parents=True, exist_ok=True)

    # -- paths ------------------------------------------------------------
    @property
    def plan(self) -> Path:
        return self.root / "plan"

    @property
    def candidates(self) -> Path:
        return self.root / "candidates"

    def candidate_dir(self, track: str) -> Path:
        return self.candidates / track

    # -- state ------------------------------------------------------------
    def load_state(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "state.json").read_text())
        except (OSError, ValueError):
            return {"stages": {}, "candidates": {}}

    def save_state(self, state: dict[str, Any]) -> None:
        state["updated"] = time.time()
        atomic_write_json(self.root / "state.json", state)

    def write_plan(self, name: str, data: Any) -> Path:
        path = self.plan / f"{name}.json"
        atomic_write_json(path, data)
        return path

    def read_plan(self, name: str) -> Any:
        return json.loads((self.plan / f"{name}.json").read_text())
