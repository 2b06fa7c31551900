"""Fill the code templates with settings decided from the data.

The generated modules are plain Python a person can read: the decisions sit in
one CONFIG literal at the top of each module, the code below it is fixed.
"""
from __future__ import annotations

import pprint
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from iml_ray.blueprint import InterfaceContract, PrepPlan, TrackPlan, TrainPlan
from iml_ray.task.files import TaskSummary
from iml_ray.task.media import class_folders_source, media_paths_source
from iml_ray.task.table_file import table_file_source

PLACEHOLDER = re.compile(r"__([A-Z][A-Z0-9_]*)__")


@lru_cache(maxsize=None)
def template(name: str) -> str:
    """The template's text as written (`codegen/templates/<name>.py.tmpl`), read once per process."""
    return resources.files(__package__).joinpath("templates", f"{name}.py.tmpl").read_text()


def placeholders(name: str) -> set[str]:
    """The names of the `__NAME__` placeholders template `name` holds."""
    return set(PLACEHOLDER.findall(template(name)))


def fill(name: str, **values: str) -> str:
    """Template `name` with every `__NAME__` placeholder replaced by values[NAME], in one pass (a value that
    looks like a placeholder, e.g. a column named __X__, stays as it is). A placeholder without a value,
    or a value without a placeholder, is a bug in iml-ray: it raises."""
    text = template(name)
    wanted = set(PLACEHOLDER.findall(text))
    problems = [f"no value for {sorted(wanted - set(values))}" if wanted - set(values) else "",
                f"no placeholder for {sorted(set(values) - wanted)}" if set(values) - wanted else ""]
    if any(problems):
        raise ValueError(f"template {name}: " + "; ".join(p for p in problems if p))
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def literal(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=False)


def render_prep(summary: TaskSummary, plan: PrepPlan) -> str:
    config = {
        "numeric": list(plan.numeric),
        "numeric_coerce": list(plan.numeric_coerce),
        "categorical": list(plan.categorical),
        "text": list(plan.text),
        "datetime": list(plan.datetime),
        "log1p": [column for column, spec in plan.column_transforms.items() if spec.get("transform") == "log1p"],
        "missing_indicators": plan.missing_indicators,
        "max_categories": plan.max_categories,
        "min_category_count": plan.min_category_count,
        "frequency_encoding": plan.frequency_encoding,
        "tfidf_max_features": plan.tfidf_max_features,
        "tfidf_ngram_max": plan.tfidf_ngram_max,
        "tfidf_min_df": plan.tfidf_min_df,
        "tfidf_char_ngram_max": plan.tfidf_char_ngram_max,
        "text_clean": plan.text_clean,
        "text_tree_terms": plan.text_tree_terms,
        "datetime_parts": list(plan.datetime_parts),
        "text_mode": plan.text_mode,
        "image": list(plan.image),
        "image_mode": plan.image_mode,
        "image_size": list(plan.image_size),
        "image_channels": plan.image_channels,
        "image_stats": plan.image_stats,
    }
    if plan.audio:
        config.update(audio=list(plan.audio), audio_mode=plan.audio_mode, audio_rate=plan.audio_rate,
                      audio_seconds=plan.audio_seconds, audio_mels=plan.audio_mels, audio_frames=plan.audio_frames)
    encoders = ((plan.text and plan.text_mode in ("pretrained", "tokens"))
                or (plan.image and plan.image_mode == "pretrained"))
    if encoders:
        config["text_encoder"] = plan.text_encoder
        config["image_encoder"] = plan.image_encoder
        config["encoder_batch_size"] = plan.encoder_batch_size
    if plan.text and plan.text_mode == "tokens":
        config["token_length"] = plan.token_length
    code = fill("prep", TASK_NAME=summary.name, PREP_CONFIG=literal(config))
    if encoders:
        # The encoder functions travel inside the module, so pipeline.py stays standalone.
        code = code.rstrip("\n") + "\n\n\n" + template("encoders")
    return code


def _common_config(summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract) -> dict:
    """What every model template reads: the task, the target's handling, the inner split, threads, the search."""
    return {
        "problem_type": summary.problem_type,
        "metric": summary.unit_metric,
        "n_classes": len(contract.classes),
        "class_weight": plan.class_weight,
        "target_transform": plan.target_transform,
        "clip_min": plan.clip_min,
        "inner_valid_fraction": train.inner_valid_fraction,
        "max_train_rows": train.max_train_rows,
        "final_train_rows": train.final_train_rows,
        "seed": train.seed,
        "num_threads": plan.num_threads,
        "tune": dict(plan.tune),
    }


def render_traditional(summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract) -> str:
    config = {
        **_common_config(summary, plan, train, contract),
        "models": list(plan.models),
        "bagging_folds": plan.bagging_folds,
        "bagging_repeats": plan.bagging_repeats,
        "lightgbm": dict(plan.lightgbm),
        "linear": {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in plan.linear.items()},
        **{name: dict(settings) for name, settings in plan.families.items()},
    }
    return _model_module("traditional", summary, config)


def render_custom_nn(summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract) -> str:
    config = {**_common_config(summary, plan, train, contract),
              **{k: list(v) if isinstance(v, tuple) else v for k, v in plan.nn.items()}}
    return _model_module("custom_nn", summary, config)


def render_model(summary: TaskSummary, plan: TrackPlan, train: TrainPlan, contract: InterfaceContract) -> str:
    if plan.model_template == "custom_nn":
        return render_custom_nn(summary, plan, train, contract)
    if plan.model_template == "traditional":
        return render_traditional(summary, plan, train, contract)
    if plan.model_template == "prior":
        config = {"problem_type": summary.problem_type, "metric": summary.unit_metric, "n_classes": len(contract.classes),
                  # A forecast's fallback is the seasonal naive forecast: column 0 of its features.
                  "seasonal_naive": summary.forecast is not None}
        return _model_module("prior", summary, config)
    raise ValueError(f"no model template named {plan.model_template!r}")


def _model_module(name: str, summary: TaskSummary, config: dict) -> str:
    # Helpers first: the template's own code may refer to them at import time.
    tuning = template("tuning").strip() + "\n\n\n" + template("search_run").strip()
    parts = {"MODEL_HELPERS": template("model_helpers").strip(), "TUNING": tuning,
             "MODEL_ZOO": template("model_zoo").strip(),
             "TASK_NAME": summary.name, "MODEL_CONFIG": literal(config)}
    return fill(name, **{k: v for k, v in parts.items() if k in placeholders(name)})


def render_runner(summary: TaskSummary, contract: InterfaceContract) -> str:
    task = {
        "name": summary.name,
        "target": summary.target,
        "targets": list(summary.all_targets),
        "problem_type": summary.problem_type,
        "metric": summary.metric,
        "train_file": summary.train_file,
        "test_file": summary.test_file,
        "sample_submission_file": summary.sample_submission_file,
        "input_columns": list(contract.input_columns),
        "media": [{"name": i.name, "column": i.column, "train": i.train_pattern, "test": i.test_pattern}
                  for i in summary.media if i.name in contract.input_columns],
        "classes": list(contract.classes),
        "submission": summary.submission.to_json(),
        "layout": None if summary.layout is None else summary.layout.to_json(),
        "forecast": None if summary.forecast is None else summary.forecast.to_json(),
    }
    # A task without tables carries the code that builds them from its folders: pipeline.py stays standalone.
    readers = class_folders_source() + "\n\n" if summary.layout is not None else ""
    forecast = template("forecast").strip() + "\n\n\n" if summary.forecast is not None else ""
    return fill("runner", TASK=literal(task), TUNED_PARAMS="{}", READ_TABLE=table_file_source().rstrip("\n"),
                TABLE_READERS=readers, FORECAST=forecast, MEDIA_PATHS=media_paths_source().rstrip("\n"))


def render_prep_probe() -> str:
    """The prep check's script: it runs the (untrusted) prep module on the data in the sandbox and reports."""
    return fill("prep_probe", READ_TABLE=table_file_source().rstrip("\n"), CLASS_FOLDERS=class_folders_source() + "\n",
                MEDIA_PATHS=media_paths_source().rstrip("\n"))


def model_bindings() -> dict[str, str]:
    """The entry points the runner calls besides fit/predict/describe, by name: their default source, which a
    model module that does not define one (e.g. the LLM's, with no search space) gets."""
    import ast

    text = template("model_bindings")
    return {node.name: ast.get_source_segment(text, node) + "\n" for node in ast.parse(text).body
            if isinstance(node, ast.FunctionDef)}


def with_tuned_params(script: str, params: dict) -> str:
    """The pipeline with the parameters its tuning found written in, so a rerun needs no tuning. Whatever the
    assignment held before is replaced: a round that ran with an earlier search's parameters and searched again
    ends with both sets, and its final pipeline must carry both."""
    return with_constant(script, "TUNED_PARAMS", params)


def standalone_script(script: str, run_info: dict) -> str:
    """A round's pipeline with what its submission was fitted with written into it (from the round's run_info), so
    a rerun reproduces it without Ray: the tuned parameters (run_info's are all the round ran with, an earlier
    search's and its own), the validated blend, the settings its final fit refitted it with, and the folds whose
    fits made it under k folds."""
    if run_info.get("tuned_params"):
        script = with_tuned_params(script, run_info["tuned_params"])
    for key in ("validated_blend", "validated_refits", "cross_fit_folds"):       # run_info's key, the constant's
        script = with_constant(script, key.upper(), run_info[key]) if run_info.get(key) else script
    return script


def with_constant(script: str, name: str, value: Any) -> str:
    """The script with its module-level `name = ...` assignment (one line or several) set to `value`."""
    import ast

    for node in ast.parse(script).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            lines = script.splitlines(keepends=True)
            return "".join(lines[:node.lineno - 1]) + f"{name} = {literal(value)}\n" + "".join(lines[node.end_lineno:])
    raise ValueError(f"the pipeline has no {name} line to fill")
