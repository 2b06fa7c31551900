"""PreprocessingCoder and ModelingCoder prompts, and the parser of the module they write."""
from __future__ import annotations

from ...assemble import AssemblyError, top_level_names
from ..errors import BadAnswer
from ..extract import extract_code
from . import render

ENTRY_POINTS = {"prep": ("Preprocessor",), "model": ("fit_model", "predict_model", "describe_model")}


def prep_messages(target: str, problem_type: str, metric: str, columns: str, plan: dict, contract: dict) -> list[dict]:
    return render("prep_coder", target=target, problem_type=problem_type, metric=metric, columns=columns, plan=plan,
                  contract=contract, prep_class=contract["prep_class"], input_columns=contract["input_columns"])


def model_messages(track: str, target: str, problem_type: str, metric: str, n_train: int, plan: dict,
                   prep_output: dict, contract: dict, threads: int) -> list[dict]:
    return render("model_coder", track=track, target=target, problem_type=problem_type, metric=metric,
                  n_train=str(n_train), classes=contract["classes"] or "(regression)", plan=plan,
                  prep_output=prep_output, contract=contract, target_encoding=contract["target_encoding"],
                  prediction=contract["prediction"], threads=str(threads))


def parse_module(text: str, role: str) -> str:
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
