"""The plan phase's stages: each computed once, written to <out>/plan/<name>.json, and loaded on resume."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, TypeVar

from iml_ray.run.progress import Progress
from iml_ray.rundir import RunDir

log = logging.getLogger(__name__)
T = TypeVar("T")


class Stages:
    def __init__(self, rundir: RunDir, state: dict, progress: Progress, timings: dict[str, float]):
        self.rundir = rundir
        self.state = state
        self.progress = progress
        self.timings = timings

    def stage(self, name: str, compute: Callable[[], T], encode: Callable[[T], Any], decode: Callable[[Any], T]) -> T:
        """The stage's artifact: loaded when a resumed run finished it, else computed, written and timed."""
        if name in self.state["stages"] and (self.rundir.plan / f"{name}.json").exists():
            log.info("resume: %s is finished, loading it", name)
            return decode(self.rundir.read_plan(name))
        self.progress.phase(name.replace("_", " "))
        t0 = time.time()
        value = compute()
        self.rundir.write_plan(name, encode(value))
        self.timings.setdefault(name, round(time.time() - t0, 2))
        self.state["stages"][name] = {"finished": time.time(), "seconds": self.timings[name]}
        self.rundir.save_state(self.state)
        return value
