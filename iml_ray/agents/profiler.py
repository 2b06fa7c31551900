"""Profiler: the data's schema, types, missingness, cardinality, class balance and media, measured, not guessed.

Rules: `task.profiling.profile_task` (streamed in bounded memory for a large
table). LLM: profiling code the model writes runs in the sandbox on the data;
what it finds (at most ten short strings) joins the profile as `findings`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from iml_ray.agents.base import Agent
from iml_ray.agents.briefs import LOG_TOKENS, profile_brief
from iml_ray.llm.errors import BadAnswer, LLMError
from iml_ray.llm.extract import clip_middle, extract_code
from iml_ray.llm.prompt import re_ask, render

if TYPE_CHECKING:
    from iml_ray.llm.brain import Brain
    from iml_ray.task.files import TaskSummary
    from iml_ray.task.profile import Profile

MAX_FINDINGS = 10
PROFILE_LIMIT_S = 60.0


class Profiler(Agent):
    name = "profiler"
    warm_imports = ("iml_ray.task.profiling",)
    prompt = "profiler"

    def profile(self, summary: TaskSummary, work_dir: str | None = None) -> Profile:
        from iml_ray.task.profiling import profile_task

        profile = profile_task(summary)
        findings = self._with_llm("no extra findings", lambda brain: ask_llm(brain, summary, profile, work_dir)) \
            if work_dir else None
        if findings is None:
            return profile
        import dataclasses

        return dataclasses.replace(profile, findings=findings)


def ask_llm(brain: Brain, summary: TaskSummary, profile: Profile, work_dir: str) -> dict[str, str]:
    """Profiling code written by the LLM, run in the sandbox; what it found."""
    from iml_ray.safety.sandbox import SandboxLimits, run_python

    root = Path(summary.task_dir)
    folder = Path(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    prompt = messages(summary.target, summary.problem_type, summary.metric, str(root / summary.train_file),
                      str(root / summary.test_file), summary.description, profile_brief(profile))
    problem = None
    for attempt in range(2):
        code = brain.ask(prompt, parse)
        script = folder / f"profile_{attempt + 1}.py"
        script.write_text(code)
        (folder / "findings.json").unlink(missing_ok=True)
        limits = SandboxLimits(timeout_s=PROFILE_LIMIT_S, memory_mb=4096, max_log_bytes=2_000_000,
                               max_disk_bytes=200 * 2**20, cpus=1, read_only=(str(root),))
        result = run_python(script, [], folder, limits, log_prefix=f"profile_{attempt + 1}")
        try:
            if result.status != "ok":
                raise BadAnswer(f"the script {result.describe()}:\n{clip_middle(result.stderr_tail(), LOG_TOKENS)}")
            findings = parse_findings(folder / "findings.json")
            brain.note("llm", f"{len(findings)} findings from profiling code (attempt {attempt + 1})")
            return findings
        except BadAnswer as exc:
            problem = str(exc)
            prompt = re_ask(prompt, f"```python\n{code}\n```", problem)
    raise LLMError(f"profiling code failed twice: {problem.splitlines()[0] if problem else ''}")


def messages(target: str, problem_type: str, metric: str, train_path: str, test_path: str, description: str,
             profile: dict) -> list[dict]:
    return render(__package__, Profiler.prompt, target=target, problem_type=problem_type, metric=metric,
                  train_path=train_path, test_path=test_path, description=description[:1500], profile=profile)


def parse(text: str) -> str:
    """The profiling script the model wrote (what it finds is read by parse_findings once it has run)."""
    return extract_code(text)


def parse_findings(path: Path) -> dict[str, str]:
    """findings.json as the code wrote it: at most ten short strings (it is untrusted output)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadAnswer("the script wrote no findings.json in the current directory") from None
    except ValueError as exc:
        raise BadAnswer(f"findings.json is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BadAnswer("findings.json must hold one JSON object of short strings")
    return {str(k)[:80]: str(v)[:300] for k, v in list(data.items())[:MAX_FINDINGS]}

