"""The Ray a run or a batch works in: the cluster RAY_ADDRESS names, or a local one bound to 127.0.0.1."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator


@contextlib.contextmanager
def ray_session() -> Iterator[None]:
    """Join RAY_ADDRESS when set, else start a local cluster bound to 127.0.0.1."""
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        # Read when ray is imported: without it Ray binds the GCS to the machine's other
        # address even when told 127.0.0.1 for the node.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # The raylet warns (on the driver's stdout, with no way to silence it) once the worker processes started
        # pass four times this, which defaults to the CPU count: on a 2-core machine a job's ten agents and its
        # tracks pass it. Workers start as fast either way; the warning then tells a user of nothing wrong.
        os.environ.setdefault("RAY_worker_maximum_startup_concurrency", str(max(8, 2 * (os.cpu_count() or 1))))
    import ray

    if ray.is_initialized():
        yield
        return
    quiet = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    logging.getLogger("ray").setLevel(logging.ERROR)
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(_node_ip_address="127.0.0.1", **quiet)
    try:
        yield
    finally:
        ray.shutdown()
