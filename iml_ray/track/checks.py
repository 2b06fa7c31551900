"""What a track's loop checks and how it runs code: the prep check, the verification of a round's outputs,
the sandbox limits of a round, and which section of a pipeline a traceback points at."""
from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from iml_ray.blueprint import PrepPlan
from iml_ray.codegen.render import render_prep_probe
from iml_ray.plan.repairs import ENCODER_FLOOR_SIDE, Failure, image_encoder_side
from iml_ray.safety.contract import (
    check_prep_report,
    check_submission,
    check_valid_predictions,
    prep_probe_spec,
    read_prep_report,
)
from iml_ray.safety.sandbox import SandboxLimits, SandboxResult, run_python
from iml_ray.scoring.evaluate import held_rows
from iml_ray.track.job import TrackAgents, TrackJob

log = logging.getLogger(__name__)


def prep_output(report: dict) -> dict:
    """What the verified prep module returned, for the model coder: shapes, types, layout, the columns' names."""
    keep = ("shape", "sparse", "dtype")
    output = {"train": {k: report.get("train", {}).get(k) for k in keep},
              "test": {k: report.get("test", {}).get(k) for k in keep}, "layout": report.get("layout")}
    if report.get("feature_names"):
        output["feature_names"] = report["feature_names"]
    return output


def cache_env(job: TrackJob) -> dict[str, str]:
    """The folders a track's rounds share: the pretrained encoders' vectors (the prep check, every round and the
    pipeline encode once) and the model families' fits (a round that adds a family refits only that one)."""
    return {"IML_ENCODER_CACHE": str(Path(job.code_dir) / "encoder_cache"),
            "IML_FIT_CACHE": str(Path(job.code_dir) / "fit_cache")}


def limits(job: TrackJob, last_chance: bool = False, cpus: int | None = None) -> SandboxLimits:
    """The sandbox's limits for a round; cpus: the round's threads when they differ from the track's own."""
    remaining = max(1.0, job.deadline - time.time())
    timeout = remaining if last_chance else min(remaining, max(job.min_round_s, remaining * job.attempt_share))
    return SandboxLimits(timeout_s=timeout, memory_mb=job.memory_mb, max_log_bytes=job.max_log_bytes,
                         max_disk_bytes=job.max_disk_mb * 2**20, cpus=cpus or job.cpus, gpu_ids=job.gpu_ids,
                         network=job.allow_network, read_only=(job.summary.task_dir, str(run_root(job))),
                         writable=tuple(cache_env(job).values()),
                         # Other tracks' code and outputs are not this track's business.
                         hidden=candidates_root(job), exposed=(str(Path(job.code_dir).resolve()),))


def candidates_root(job: TrackJob) -> str | None:
    """<out>/candidates, which holds only the tracks' directories; None outside that layout (hiding
    anything else could hide the task's data or the holdout)."""
    parent = Path(job.code_dir).resolve().parent
    return str(parent) if parent.name == "candidates" else None


def run_root(job: TrackJob) -> Path:
    """The run directory (<out>): read-only for generated code but for its own round's directory."""
    return Path(job.code_dir).resolve().parent.parent


def probe_prep(job: TrackJob, round_dir: Path, prep_code: str) -> tuple[Failure | None, SandboxResult, dict]:
    probe_dir = round_dir / "prep_check"
    probe_dir.mkdir(exist_ok=True)
    (probe_dir / "spec.json").write_text(json.dumps(prep_probe_spec(job.summary, job.contract)))
    (probe_dir / "probe.py").write_text(render_prep_probe())
    report_path = probe_dir / "report.json"
    report_path.unlink(missing_ok=True)
    result = run_python(probe_dir / "probe.py", [str(probe_dir / "spec.json"), str(round_dir / "prep.py"), str(report_path)],
                        probe_dir, limits(job), log_prefix="probe", extra_env=cache_env(job))
    if result.status not in ("ok", "error"):
        return Failure("prep_probe", result.status, "prep check " + result.describe(), result.stderr_tail(),
                       failing_section="prep"), result, {}
    report = read_prep_report(report_path)
    violations = check_prep_report(report, job.contract)
    if not report.get("ok"):
        # The prep module crashed: a code failure, not a contract violation.
        return Failure("prep_probe", "error", f"prep failed: {report.get('error', result.describe())}",
                       report.get("traceback", result.stderr_tail()), (), "prep"), result, report
    if violations:
        return Failure("prep_probe", "invalid", violations[0], "", tuple(violations), "prep"), result, report
    return None, result, report


def verify(job: TrackJob, agents: TrackAgents, out: Path) -> tuple[Failure | None, float | None]:
    rows = held_rows(job.holdout_path)
    problems, _ = check_valid_predictions(out / "valid_predictions.csv", job.summary, rows)
    problems += check_submission(out / "submission.csv", job.summary)
    if problems:
        return Failure("verify", "invalid", problems[0], violations=tuple(problems), failing_section="runner"), None
    try:
        score = float(agents.evaluator.score(str(out / "valid_predictions.csv"), job.summary))
    except ValueError as exc:
        return Failure("verify", "invalid", f"validation predictions cannot be scored: {exc}", failing_section="model"), None
    if not np.isfinite(score):
        return Failure("verify", "invalid", f"validation score is {score}", failing_section="model"), None
    return None, score


TRACE_LINE = re.compile(r'File "([^"]+)", line (\d+)')


def failing_section(stderr: str, script_name: str, sections: dict[str, tuple[int, int]]) -> str | None:
    """The section of the pipeline holding the innermost traceback frame in the script itself."""
    hits = [int(line) for path, line in TRACE_LINE.findall(stderr) if path.endswith(script_name)]
    if not hits:
        return None
    line = hits[-1]
    for role, (start, end) in sections.items():
        if start <= line <= end:
            return role
    return None


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def declares_search_space(code: str | None) -> bool:
    """Whether a model module declares what the framework may tune (SEARCH_SPACE and apply_params)."""
    from iml_ray.codegen.assemble import AssemblyError, top_level_names

    try:
        return code is not None and {"SEARCH_SPACE", "apply_params"} <= top_level_names(code, "model")
    except AssemblyError:
        return False


# A timed-out check that encoded less than this share of its images is better repaired by the Debugger's smaller
# encoder input: half the side costs about a third per image (one thread: 4.6 ms at 64 px and 8.7 ms at 96 px
# measured, so about 14 ms at 128 px), so encoding every row again at half the side beats finishing the rest at full
# size only when less than about two thirds were done; from half on the larger input's features are worth the
# difference.
RESUME_MIN_IMAGE_SHARE = 0.5


def resume_pays(prep: PrepPlan, kept: int, rows: int) -> bool:
    """Whether a check that saved `kept` vectors of `rows` rows should resume rather than shrink its encoder."""
    if image_encoder_side(prep) <= ENCODER_FLOOR_SIDE:
        return True                  # nothing the Debugger could shrink (text, or images at the floor already)
    columns = len(prep.image) + (len(prep.text) if prep.text_mode == "pretrained" else 0)
    return kept >= RESUME_MIN_IMAGE_SHARE * rows * max(1, columns)


def resumed_encoding(job: TrackJob, prep: PrepPlan, failure: Failure, round_started: float) -> str | None:
    """What the next round does when this round's prep check ran out of time while encoding and saved its vectors
    (it runs again as it was and starts where this one stopped); None when that is not the case or does not pay."""
    if failure.stage != "prep_probe" or failure.status != "timeout":
        return None
    kept = encoded_during(job, round_started)
    if not kept or not resume_pays(prep, kept, job.summary.n_train + job.summary.n_test):
        return None
    return f"the prep check resumes the encoding ({kept} vectors saved before its time ran out)"


def encoded_during(job: TrackJob, since: float) -> int:
    """How many vectors the pretrained encoders' cache holds in the files saved since `since` (0: none saved)."""
    folder = Path(cache_env(job)["IML_ENCODER_CACHE"])
    counts = [read_json(path).get("vectors", 0) for path in folder.glob("*.pkl.json") if path.stat().st_mtime >= since]
    return int(sum(counts))


def finished_before_stopped(result: SandboxResult, out: Path) -> bool:
    """Whether a pipeline the sandbox stopped at its time limit had written everything first (run_info.json, whole,
    is the runner's last write): stopped while its interpreter exited, not while it worked. house_prices at 90 s
    lost a search round whose outputs were complete 0.3 s before its limit."""
    if result.status != "timeout" or not (out / "submission.csv").is_file():
        return False
    try:
        info = json.loads((out / "run_info.json").read_text())
    except (OSError, ValueError):
        return False
    if not (isinstance(info, dict) and "final" in info):
        return False
    log.info("the pipeline in %s had written its outputs when its time limit stopped it: they are verified as a "
             "finished run's", out.parent.name)
    return True
