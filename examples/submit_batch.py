"""Submit an `iml batch` to a Ray cluster as a Ray job, idempotently.

    python examples/submit_batch.py --address http://HEAD:8265 --out /shared/runs TASK_DIR [TASK_DIR ...]
        [--time-budget 600] [--max-concurrent N] [--wait]

The submission id is derived from the task list and the output root
(`iml-batch-<hash>`), so submitting the same batch twice does not start it
twice: a running or finished job is reported, not resubmitted; a failed or
stopped one is resubmitted as `iml-batch-<hash>-<n>`, and the batch itself
resumes from the state in the output root. Task and output paths must be
visible to the cluster's nodes (shared storage). The repository is shipped as
the job's working directory; the cluster's Python must have iml-ray's
dependencies (see cluster.yaml / pyproject.toml).

Follow a job with `ray job status <id>` and `ray job logs -f <id>`
(with RAY_ADDRESS=http://HEAD:8265 or --address).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TERMINAL_RETRY = {"FAILED", "STOPPED"}


def submission_base(task_dirs: list[str], out: str) -> str:
    key = "\n".join(sorted(str(Path(t).resolve()) for t in task_dirs)) + "\n" + str(Path(out).resolve())
    return "iml-batch-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task_dirs", nargs="+")
    parser.add_argument("--address", required=True, help="the cluster's dashboard, e.g. http://127.0.0.1:8265")
    parser.add_argument("--out", required=True, help="output root on storage the cluster can write")
    parser.add_argument("--time-budget", type=float, default=600)
    parser.add_argument("--max-concurrent", type=int)
    parser.add_argument("--llm", help="the agents' policy: rules (default), openai, or local:MODEL (a path the "
                                      "cluster's nodes can read, or a hub id)")
    parser.add_argument("--wait", action="store_true", help="wait for the job to finish and exit with its outcome")
    args = parser.parse_args(argv)

    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(args.address)
    base = submission_base(args.task_dirs, args.out)
    existing = {job.submission_id: job for job in client.list_jobs() if job.submission_id and job.submission_id.startswith(base)}
    attempts = sorted(existing.values(), key=lambda job: job.start_time or 0)
    latest = attempts[-1] if attempts else None
    if latest is not None and str(latest.status) not in TERMINAL_RETRY:
        print(f"{latest.submission_id}: already {latest.status}; not submitting again")
        submission_id = latest.submission_id
    else:
        submission_id = base if not attempts else f"{base}-{len(attempts) + 1}"
        command = ["python", "-m", "iml_ray.cli", "batch", *[str(Path(t).resolve()) for t in args.task_dirs],
                   "--out", str(Path(args.out).resolve()), "--time-budget", str(args.time_budget)]
        if args.max_concurrent:
            command += ["--max-concurrent", str(args.max_concurrent)]
        if args.llm:
            command += ["--llm", args.llm]
        # The endpoint and model travel with the job; the API key does not (job listings show the
        # runtime_env): it must be in the environment of the cluster's nodes.
        env_vars = {k: os.environ[k] for k in ("OPENAI_BASE_URL", "IML_LLM_MODEL") if os.environ.get(k)}
        client.submit_job(entrypoint=shlex.join(command), submission_id=submission_id,
                          runtime_env={"working_dir": str(REPO), "env_vars": env_vars,
                                       "excludes": [".venv", ".git", "runs", "examples/tasks", "examples/answers",
                                                    "benchmarks/out", "test-artifacts"]})
        print(f"{submission_id}: submitted")
    print(f"follow it: ray job logs -f --address {args.address} {submission_id}")
    if not args.wait:
        return 0
    while True:
        status = str(client.get_job_status(submission_id))
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            print(f"{submission_id}: {status}")
            return 0 if status == "SUCCEEDED" else 1
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
