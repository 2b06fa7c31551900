"""The parser of an answer that is a whole module (the coders' drafts and the Debugger's rewrites)."""
from __future__ import annotations

from iml_ray.blueprint import ModuleRole
from iml_ray.codegen.assemble import AssemblyError, top_level_names
from iml_ray.llm.errors import BadAnswer
from iml_ray.llm.extract import extract_code

ENTRY_POINTS: dict[str, tuple[str, ...]] = {"prep": ("Preprocessor",),
                                            "model": ("fit_model", "predict_model", "describe_model")}


def parse_module(text: str, role: ModuleRole) -> str:
    """The module's code; raises BadAnswer when it does not parse or lacks an entry point."""
    code = extract_code(text)
    try:
        names = top_level_names(code, role)
    except AssemblyError as exc:
        raise BadAnswer(str(exc)) from None
    missing = [n for n in ENTRY_POINTS[role] if n not in names]
    if missing:
        raise BadAnswer(f"the module does not define {', '.join(missing)} at top level")
    return code.rstrip() + "\n"
