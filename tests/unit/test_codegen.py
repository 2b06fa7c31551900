"""Every piece of generated code comes from a template, filled in one pass, and parses as Python."""
from __future__ import annotations

import ast
from importlib import resources

import pytest
from helpers import binary_frames, write_task

from iml_ray.agents.stacking import blend_function
from iml_ray.blueprint import TrackPlan
from iml_ray.codegen.assemble import bind_model
from iml_ray.codegen.render import (
    fill,
    model_bindings,
    placeholders,
    render_model,
    render_prep,
    render_prep_probe,
    render_runner,
    template,
    with_tuned_params,
)
from iml_ray.plan.guideline_rules import make_blueprint, make_contract
from iml_ray.plan.knowledge import retrieve
from iml_ray.task.inference import analyze_task
from iml_ray.task.profiling import profile_task
from iml_ray.task.table_file import read_table_file

TEMPLATES = sorted(p.name[: -len(".py.tmpl")] for p in resources.files("iml_ray.codegen").joinpath("templates").iterdir()
                   if p.name.endswith(".py.tmpl"))


def test_fill_refuses_a_placeholder_left_unfilled_and_a_value_with_no_placeholder():
    with pytest.raises(ValueError, match=r"no value for \['TASK_NAME'\]"):
        fill("prior", MODEL_CONFIG="{}")
    with pytest.raises(ValueError, match=r"no placeholder for \['NOT_THERE'\]"):
        fill("prior", MODEL_CONFIG="{}", TASK_NAME="t", NOT_THERE="x")


def test_tuned_params_replace_whatever_the_pipeline_already_carried():
    """A round that ran with an earlier search's parameters (written into its script) and searched again: the final
    pipeline carries all the round ran with, not the earlier search's alone, and nothing else in the script moves."""
    earlier = {f"lightgbm:param_{i}": 0.123456789 * i for i in range(12)}   # long enough to span several lines
    script = with_tuned_params("import os\nTUNED_PARAMS = {}\nTASK = 1\n", earlier)
    assert script.count("\n") > 3
    both = {**earlier, "catboost:depth": 4}
    final = with_tuned_params(script, both)
    assigned = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(final).body
                if isinstance(node, ast.Assign)}
    assert assigned == {"TUNED_PARAMS": both, "TASK": 1}
    assert final.startswith("import os\n") and final.endswith("TASK = 1\n")
    with pytest.raises(ValueError, match="no TUNED_PARAMS"):
        with_tuned_params("TASK = 1\n", both)


def test_fill_is_one_pass_so_a_value_that_looks_like_a_placeholder_stays():
    code = fill("prior", MODEL_CONFIG="{'column': '__TASK_NAME__'}", TASK_NAME="t")
    assert "'column': '__TASK_NAME__'" in code and "task 't'" in code


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_parses_once_its_placeholders_are_filled(name):
    # Section templates are filled into others; a value of the right kind for each placeholder.
    values = {key: ("{}" if key in ("MODEL_CONFIG", "PREP_CONFIG", "TASK", "TUNED_PARAMS", "ENSEMBLE")
                    else "" if key in ("MEMBERS", "TABLE_READERS", "CLASS_FOLDERS", "MODEL_HELPERS", "TUNING")
                    else "pass" if key == "READ_TABLE" else "task")
              for key in placeholders(name)}
    ast.parse(fill(name, **values))


def test_the_rendered_modules_parse_and_share_one_table_reader(tmp_path):
    train, test, sample = binary_frames(80, 20)
    summary = analyze_task(write_task(tmp_path / "t", train, test, sample))
    profile = profile_task(summary)
    tracks = ("traditional", "custom_nn")
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, tracks), tracks, 0, 0.2, 1)
    contract = make_contract(summary, blueprint.prep)
    prior = TrackPlan(track="fallback", models=("prior",), model_template="prior")
    modules = [render_prep(summary, blueprint.prep), render_runner(summary, contract), render_prep_probe(),
               *(render_model(summary, plan, blueprint.train, contract) for plan in (*blueprint.tracks, prior))]
    for code in modules:
        ast.parse(code)
        assert not placeholders_left(code)
    reader = ast.get_source_segment(_source_of(read_table_file), _function(_source_of(read_table_file)))
    assert reader in render_runner(summary, contract) and reader in render_prep_probe()


def test_a_model_module_without_a_search_gets_the_bindings_from_their_template():
    assert set(model_bindings()) == {"apply_params", "tune_model", "model_blend", "fix_blend", "model_refit", "fix_refit"}
    bound = bind_model("def fit_model(X, y, layout):\n    return 1\n\n\ndef tune_model(X, y, layout, settings):\n"
                       "    return {'mine': 1}, {}\n")
    names = [node.name for node in ast.parse(bound).body if isinstance(node, ast.FunctionDef)]
    assert names == ["fit_model", "tune_model", "apply_params", "model_blend", "fix_blend", "model_refit",
                     "fix_refit"]   # its own tune_model is kept
    assert model_bindings()["apply_params"] in bound and template("model_bindings").count("def ") == 6


def test_the_ensemble_blend_runs_from_the_filled_template():
    assert callable(blend_function())


def placeholders_left(code: str) -> set[str]:
    from iml_ray.codegen.render import PLACEHOLDER

    # Placeholders of the templates' own names only: data (a column named __X__) may look like one.
    known = set().union(*(placeholders(name) for name in TEMPLATES))
    return set(PLACEHOLDER.findall(code)) & known


def _source_of(function) -> str:
    import inspect

    return inspect.getsource(function)


def _function(source: str) -> ast.FunctionDef:
    return ast.parse(source).body[0]


def test_a_module_that_declares_its_search_space_is_bound_to_the_frameworks_search_over_it():
    import numpy as np
    from llm_scripts import MODEL, TUNABLE_MODEL

    from iml_ray.codegen.assemble import top_level_names

    bound = bind_model(TUNABLE_MODEL)
    assert "def tune_model(X, y, layout, settings):" in bound and "SEARCH_SPACE" in bound.split("def tune_model")[1]
    assert bound.count("def apply_params") == 1                       # the module's own, not the default
    plain = bind_model(MODEL)                                         # no SEARCH_SPACE: the default, which skips
    assert "defines no search space" in plain and "_iml_search_trial" not in plain
    namespace = {"TASK": {"metric": "auc", "problem_type": "binary"}}
    exec(compile(bound, "model.py", "exec"), namespace)
    assert {"tune_model", "_iml_search_trial", "_iml_search_score"} <= top_level_names(bound, "model")
    space = namespace["_iml_search_space"](namespace["SEARCH_SPACE"])
    assert set(space) == {"C"}
    score = namespace["_iml_search_score"]
    assert score(np.array([0, 1, 1, 0]), np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])) == 0.75
    namespace["TASK"] = {"metric": "rmsle", "problem_type": "regression"}
    assert score(np.array([1.0, 3.0]), np.array([1.0, 3.0])) == 0.0 > score(np.array([1.0, 3.0]), np.array([2.0, 3.0]))
