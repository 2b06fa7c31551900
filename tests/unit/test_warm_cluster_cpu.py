"""benchmarks/warm_cluster.py --processes: the CPU seconds spent before the first track, by process."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "warm_cluster_under_test", Path(__file__).resolve().parents[2] / "benchmarks" / "warm_cluster.py")
warm_cluster = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(warm_cluster)

# Busy for 0.6 CPU-s, then alive and idle (the sampler reads the processes alive at the moment asked).
BUSY = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\ntime.sleep(30)\n"


def test_the_sampler_counts_the_cpu_of_processes_started_after_it_and_not_after_the_moment_asked():
    sampler = warm_cluster.ProcessCPU(every_s=0.05).start()
    started = time.time()
    child = subprocess.Popen([sys.executable, "-c", BUSY])           # a process started since: ~0.6 CPU-s
    try:
        deadline = time.time() + 60                                 # a busy machine gives the child its CPU later
        while sampler.spent_until(time.time(), driver=child.pid)["cpu_driver"] < 0.5 and time.time() < deadline:
            time.sleep(0.1)
        sampler.stop()
    finally:
        child.kill()
    spent = sampler.spent_until(time.time(), driver=-1)
    assert spent["new_processes"] >= 1
    assert spent["cpu_new"] >= 0.5
    assert spent["cpu_driver"] == 0.0                                  # no such process
    as_driver = sampler.spent_until(time.time(), driver=child.pid)    # the command's own process, told apart
    assert as_driver["cpu_driver"] >= 0.5 and as_driver["cpu_new"] <= spent["cpu_new"] - 0.5
    # Nothing had been spent at the first sample: the figures are the CPU used after start().
    assert sampler.spent_until(started, driver=-1)["cpu_new"] == 0.0
