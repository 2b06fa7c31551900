"""The shape of the code stays readable: short phases in run/, long modules say why they are long."""
from __future__ import annotations

import ast
from pathlib import Path

import iml_ray

ROOT = Path(iml_ray.__file__).parent
MAX_RUN_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def test_no_function_in_run_is_longer_than_a_phase():
    long = []
    for path in sorted((ROOT / "run").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_RUN_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long, f"split these into named steps: {long}"


def test_a_module_over_400_lines_says_why_in_its_docstring():
    unexplained = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES and "Over 400 lines:" not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(str(path.relative_to(ROOT)))
    assert not unexplained, f"split these, or say in one line of the docstring why not: {unexplained}"
