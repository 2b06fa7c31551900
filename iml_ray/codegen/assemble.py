"""Join the preprocessing and model modules and the runner into one standalone pipeline.py.

The result imports nothing from iml_ray: `python pipeline.py --data TASK --out DIR`
rebuilds the submission anywhere the libraries it names are installed.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from typing import Literal

HEADER = '''"""Standalone pipeline for task '{name}' ({problem_type}, metric: {metric}), track: {track}.

Built by iml-ray. It imports nothing from iml-ray; rerun it with
    python pipeline.py --data <task dir> --out <dir>
to rebuild <dir>/submission.csv from train and test.
Sections: preprocessing (Preprocessor), model (fit_model / predict_model), runner (main).
"""
'''


class AssemblyError(ValueError):
    """The modules cannot be joined (syntax error, clashing names, missing entry points)."""

    def __init__(self, message: str, module: str):
        super().__init__(message)
        self.module = module


@dataclass(frozen=True)
class ModuleSource:
    role: Literal["prep", "model", "runner"]
    code: str


REQUIRED = {"prep": {"Preprocessor"}, "model": {"fit_model", "predict_model", "describe_model", "apply_params", "tune_model"},
            "runner": {"main"}}


def bind_model(code: str) -> str:
    """The model module with the entry points the runner needs that it does not define itself."""
    try:
        names = top_level_names(code, "model")
    except AssemblyError:
        return code          # assemble() reports the syntax error
    from iml_ray.codegen.render import model_bindings, template

    missing = [source for name, source in model_bindings().items() if name not in names]
    if {"SEARCH_SPACE", "apply_params"} <= names and "tune_model" not in names:
        # The module declares what to tune and how to apply it: the framework's search over its SEARCH_SPACE.
        missing = [source for source in missing if not source.startswith("def tune_model")]
        missing.append(template("search_space_tuning").strip() + "\n\n\n" + template("search_run").strip() + "\n")
    return code.rstrip("\n") + "\n\n\n" + "\n\n".join(missing) if missing else code


def top_level_names(code: str, role: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise AssemblyError(f"{role} module has a syntax error at line {exc.lineno}: {exc.msg}", role) from None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def assemble(modules: list[ModuleSource], *, name: str, problem_type: str, metric: str, track: str) -> str:
    seen: dict[str, str] = {}
    for module in modules:
        names = top_level_names(module.code, module.role)
        missing = REQUIRED.get(module.role, set()) - names
        if missing:
            raise AssemblyError(f"{module.role} module does not define {', '.join(sorted(missing))}", module.role)
        for item in names:
            if item in seen:
                raise AssemblyError(f"{module.role} and {seen[item]} modules both define '{item}'", module.role)
            seen[item] = module.role
    imports: list[str] = []
    bodies = []
    for module in modules:
        found, body = _split_imports(_strip_docstring(module.code))
        imports += [line for line in found if line not in imports]
        bodies.append((module.role, body))
    parts = [HEADER.format(name=name, problem_type=problem_type, metric=metric, track=track), _ordered_imports(imports)]
    for role, body in bodies:
        bar = "#" * 72
        parts.append(f"\n{bar}\n# {role}\n{bar}\n{body.strip()}\n")
    script = "\n".join(parts)
    ast.parse(script)
    return script


def _ordered_imports(imports: list[str]) -> str:
    """Standard library first, then third-party, each sorted, as a person would write them."""
    def top(line: str) -> str:
        return line.split()[1].split(".")[0]

    stdlib = sorted(i for i in imports if top(i) in sys.stdlib_module_names)
    others = sorted(i for i in imports if top(i) not in sys.stdlib_module_names)
    return "\n\n".join(block for block in ("\n".join(stdlib), "\n".join(others)) if block)


def _split_imports(code: str) -> tuple[list[str], str]:
    """Top-level imports (hoisted to the script's head, once each) and the rest of the module."""
    tree = ast.parse(code)
    lines = code.splitlines()
    taken: set[int] = set()
    imports = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                taken.update(range(node.lineno - 1, node.end_lineno))
                continue
            imports.append("\n".join(lines[node.lineno - 1:node.end_lineno]))
            taken.update(range(node.lineno - 1, node.end_lineno))
    body = "\n".join(line for i, line in enumerate(lines) if i not in taken)
    return imports, body


def _strip_docstring(code: str) -> str:
    """Module docstrings become comments: only the header may be the script's docstring."""
    tree = ast.parse(code)
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(getattr(tree.body[0], "value", None), ast.Constant) \
            and isinstance(tree.body[0].value.value, str):
        first = tree.body[0]
        lines = code.splitlines()
        doc = [f"# {line}".rstrip() for line in first.value.value.strip().splitlines()]
        return "\n".join(doc + lines[first.end_lineno:])
    return code


def section_lines(script: str) -> dict[str, tuple[int, int]]:
    """Line ranges of the '# prep' / '# model' / '# runner' sections of an assembled script."""
    lines = script.splitlines()
    starts = []
    for number, line in enumerate(lines, start=1):
        if line in ("# prep", "# model", "# runner") and number > 1 and lines[number - 2].startswith("####"):
            starts.append((line[2:], number))
    ranges = {}
    for i, (role, start) in enumerate(starts):
        end = starts[i + 1][1] - 2 if i + 1 < len(starts) else len(lines)
        ranges[role] = (start, end)
    return ranges
