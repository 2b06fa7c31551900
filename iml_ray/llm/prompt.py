"""How an agent's prompt is written down and sent: a template file beside the agent, rendered to chat messages.

A template is a system part and a user part split by a `=== user ===` line, with
`$name` placeholders (string.Template: code and JSON in prompts keep their braces).
Each agent keeps its template as `iml_ray/agents/<agent>.md`, beside the module
that parses the answer.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any

SPLIT = "=== user ==="


@lru_cache(maxsize=None)
def _template(package: str, name: str) -> tuple[Template, Template]:
    text = resources.files(package).joinpath(f"{name}.md").read_text()
    system, user = text.split(SPLIT, 1)
    return Template(system.strip()), Template(user.strip())


def render(package: str, name: str, **values: Any) -> list[dict]:
    """The chat messages of prompt `name` (the file `<name>.md` in `package`); a missing value is a bug, so it raises."""
    system, user = _template(package, name)
    text = {k: v if isinstance(v, str) else as_json(v) for k, v in values.items()}
    return [{"role": "system", "content": system.substitute(text)},
            {"role": "user", "content": user.substitute(text)}]


def as_json(value: Any) -> str:
    return json.dumps(value, indent=1, default=str, ensure_ascii=False)


def re_ask(messages: list[dict], answer: str, problem: str) -> list[dict]:
    """The conversation extended with the model's answer and what was wrong with it."""
    return messages + [{"role": "assistant", "content": answer},
                       {"role": "user", "content": f"Your answer was not accepted: {problem}\nAnswer again, in the same format."}]
