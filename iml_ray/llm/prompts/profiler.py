"""Profiler prompt (profiling code the LLM writes) and the parser of what that code found."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import BadAnswer
from ..extract import extract_code
from . import render

MAX_FINDINGS = 10


def messages(target: str, problem_type: str, metric: str, train_path: str, test_path: str, description: str,
             profile: dict) -> list[dict]:
    return render("profiler", target=target, problem_type=problem_type, metric=metric, train_path=train_path,
                  test_path=test_path, description=description[:1500], profile=profile)


def parse_code(text: str) -> str:
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
