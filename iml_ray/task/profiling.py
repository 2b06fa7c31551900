"""Profile a task: whole in memory when its tables are small, chunk by chunk when they are large."""
from __future__ import annotations

from pathlib import Path

from iml_ray.task.files import TaskSummary
from iml_ray.task.profile import Profile, profile_frames

# Above this many bytes of train + test the profile is computed chunk by chunk (profile_stream.py), never whole.
STREAM_ABOVE_BYTES = 64 * 2**20


def profile_task(summary: TaskSummary, stream_above: int | None = None, chunk_rows: int | None = None) -> Profile:
    """Profile the task's data: whole in memory when small, chunk by chunk above stream_above bytes of tables."""
    limit = STREAM_ABOVE_BYTES if stream_above is None else stream_above
    if summary.layout is None and table_bytes(summary) > limit:
        from iml_ray.task.profile_stream import profile_streamed

        return profile_streamed(summary, chunk_rows)
    return profile_frames(summary.read("train"), summary.read("test"), summary, Path(summary.task_dir))


def table_bytes(summary: TaskSummary) -> int:
    root = Path(summary.task_dir)
    return sum((root / name).stat().st_size for name in (summary.train_file, summary.test_file) if (root / name).is_file())
