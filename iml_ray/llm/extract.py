"""Getting code and JSON out of a model's answer, and fitting text into a prompt.

Models wrap what we asked for in prose and markdown fences; these functions
find it, and when they cannot, raise BadAnswer with a message the model can act
on when it is asked again.
"""
from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from iml_ray.llm.errors import BadAnswer

PYTHON_FENCES = {"", "python", "python3", "py", "py3"}


def extract_code(text: str) -> str:
    """The Python module in an answer: the longest fenced block that parses, else the whole text if it parses."""
    blocks = [body for lang, body in _fenced_blocks(text) if lang in PYTHON_FENCES]
    candidates = blocks if blocks else [text]
    first_error: str | None = None
    parsed: list[str] = []
    for candidate in sorted(candidates, key=len, reverse=True):
        code = candidate.strip("\n")
        if not code.strip():
            continue
        error = _syntax_error(code)
        if error is None:
            parsed.append(code)
            break          # candidates are longest first
        first_error = first_error or error
    if parsed:
        return parsed[0] + "\n"
    reason = first_error or "the answer is empty"
    raise BadAnswer(f"the answer holds no Python code block that parses: {reason}. "
                    "Answer with the whole module in one ```python block.")


def extract_json(text: str) -> dict:
    """The JSON object in an answer: a ```json fence, else the first balanced {...} that parses."""
    fenced = [body for lang, body in _fenced_blocks(text) if lang == "json" or (not lang and body.lstrip().startswith("{"))]
    errors: list[str] = []
    for source in [*fenced, text]:
        for span in _balanced_objects(source):
            try:
                value = json.loads(span)
            except json.JSONDecodeError as exc:
                errors.append(str(exc))
                continue
            if isinstance(value, dict):
                return value
    if errors:
        reason = errors[0]
    elif "{" in text:
        reason = "the braces never balance (the answer may have been cut off)"
    else:
        reason = "there is no {...} object in it"
    raise BadAnswer(f"the answer holds no JSON object that parses: {reason}. "
                    "Answer with exactly one JSON object in a ```json block.")


def estimate_tokens(text: str) -> int:
    """About four characters per token: good enough for budgets and for servers that report no usage."""
    return math.ceil(len(text) / 4)


def clip_middle(text: str, max_tokens: int) -> str:
    """Cut the middle of a text that is too long, keeping ~1/3 head and ~2/3 tail.

    The tail gets more because logs and tracebacks end with what went wrong.
    """
    if estimate_tokens(text) <= max_tokens:
        return text
    budget = max(0, max_tokens * 4 - 40)       # room for the marker line
    head_end = budget // 3
    tail_start = len(text) - (budget - head_end)
    # Prefer whole lines when a line boundary is near the cut.
    newline = text.rfind("\n", 0, head_end)
    if newline > head_end // 2:
        head_end = newline + 1
    newline = text.find("\n", tail_start, len(text))
    if newline != -1 and newline - tail_start < (len(text) - tail_start) // 2:
        tail_start = newline + 1
    head, tail = text[:head_end], text[tail_start:]
    if head and not head.endswith("\n"):
        head += "\n"
    return f"{head}[... {tail_start - head_end:,} characters cut ...]\n{tail}"


_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+.-]*)")


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each markdown fence; an unclosed last fence (a cut-off answer) runs to the end."""
    blocks: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, lang = opening.group(1), opening.group(2).lower()
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence) and not lines[i].strip().strip(fence[0])):
            body.append(lines[i])
            i += 1
        blocks.append((lang, "\n".join(body)))
        i += 1
    return blocks


def _syntax_error(code: str) -> str | None:
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except ValueError as exc:          # e.g. null bytes
        return str(exc)
    return None


def _balanced_objects(text: str):
    """Each top-level {...} span of the text, in order, skipping braces inside JSON strings."""
    start = text.find("{")
    while start != -1:
        end = _matching_brace(text, start)
        if end is None:
            return
        yield text[start:end + 1]
        # Continue after this span, not inside it: an inner object of a broken outer one is not the answer.
        start = text.find("{", end + 1)


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    in_string = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def message_text(messages: Any) -> str:
    """The text of a chat's messages, joined; image and other non-text parts (and malformed entries) are skipped."""
    parts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "\n".join(parts)
