"""Infer what a task's description omits: target, id, problem type, metric, submission format.

The rules TaskAnalyzer. Each decision is recorded in TaskSummary.decisions as
"stated in task.yaml", "inferred: <why>" or "default: <why>".
What the submission's values are (labels, probabilities, values) is answer_format.py's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from iml_ray.errors import TaskError
from iml_ray.task.answer_format import default_metric, infer_problem_type, submission_format
from iml_ray.task.archives import check_archive
from iml_ray.task.files import ID_NAME, YAML_KEYS, TaskFiles, TaskSummary, locate_task, read_table, read_task_yaml
from iml_ray.task.forecasting import find_forecast
from iml_ray.task.media import NAME_LABEL, AudioSource, ImageSource, find_audio_sources, find_image_sources
from iml_ray.task.row_keys import infer_id, key_like, row_number_column, row_number_start
from iml_ray.task.several_targets import several_targets
from iml_ray.task.tables import count_rows, read_columns
from iml_ray.task.target_values import check_target_values
from iml_ray.task.unsupported import refuse, text_generation

log = logging.getLogger(__name__)

# The analysis looks at whole columns only for the target and the ids; everything else is judged on this many
# first rows (the profile measures every row, in chunks when the table is large).
HEAD_ROWS = 10_000


# ---------------------------------------------------------------- column roles


@dataclass(frozen=True)
class ColumnResolution:
    target: str                             # the first of `targets`
    id_column: str | None
    submission_columns: tuple[str, ...]     # the sample submission's columns, in its order
    passthrough: tuple[str, ...]            # submission columns copied from the test row (not the id, not predicted)
    feature_columns: tuple[str, ...]
    dropped_columns: tuple[str, ...]
    decisions: dict[str, str]
    targets: tuple[str, ...] = ()           # several: multi-label or multi-target regression
    row_number: str | None = None           # a sample column counting the test rows (digit-recognizer's ImageId)

    @property
    def prediction_columns(self) -> list[str]:
        return [c for c in self.submission_columns
                if c != self.id_column and c not in self.passthrough and c != self.row_number]


def resolve_columns(train_cols: list[str], test_head: pd.DataFrame, sample_cols: list[str] | None,
                    stated: dict[str, Any], files: TaskFiles) -> ColumnResolution:
    """Decide target, id, passthrough and feature columns from what is stated, the headers and the test rows."""
    test_cols = [str(c) for c in test_head.columns]
    train_set, test_set = set(train_cols), set(test_cols)
    decisions: dict[str, str] = {}
    sample_cols = list(sample_cols or [])

    id_column = stated.get("id_column")
    if id_column is not None:
        if id_column not in test_set:
            raise TaskError(f"id_column '{id_column}' from task.yaml is not a column of {files.test.name}",
                            f"{files.test.name} has: {_preview(test_cols)}. Fix `id_column:` in task.yaml.")
        decisions["id_column"] = "stated in task.yaml"
    else:
        id_column = infer_id(test_head, sample_cols, decisions)
    if id_column is None and "id_column" not in stated:
        _refuse_an_id_spelled_otherwise(sample_cols, test_cols, files)
    row_number = None if id_column or "id_column" in stated else row_number_column(sample_cols, train_set, test_set)
    if row_number:
        decisions["id_column"] = (f"inferred: none in {files.test.name}; the sample submission's '{row_number}' is "
                                  "not a column of train or test, so it counts the test rows in order")
    # Test columns the sample submission repeats (MLE-bench's insults: Date, Comment) are copied into the
    # submission from their test row; the grader may match rows by them.
    passthrough = tuple(c for c in sample_cols if c in test_set and c != id_column)
    if passthrough:
        decisions["passthrough_columns"] = (f"inferred: {_preview(list(passthrough))} are test columns the sample "
                                            "submission repeats; copied from each test row")

    stated_target = stated.get("target")
    if stated_target is not None:
        targets = [str(t) for t in stated_target] if isinstance(stated_target, (list, tuple)) else [str(stated_target)]
        absent = [t for t in targets if t not in train_set]
        if absent or not targets:
            raise TaskError(f"target '{absent[0] if absent else ''}' from task.yaml is not a column of {files.train.name}",
                            f"{files.train.name} has: {_preview(train_cols)}. Fix `target:` in task.yaml.")
        decisions["target"] = "stated in task.yaml"
    else:
        predicted = [c for c in sample_cols if c != id_column and c not in passthrough and c != row_number]
        targets = _infer_targets(train_cols, test_cols, predicted, sample_cols, id_column, files, decisions)
    target = targets[0]

    for name in targets:
        if name in test_set:
            raise TaskError(f"the target '{name}' is also a column of {files.test.name}",
                            "Remove it from test.csv: the test set must not hold the answers.")

    extra_in_test = [c for c in test_cols if c not in train_set and c != id_column]
    if extra_in_test:
        raise TaskError(f"{files.test.name} has column(s) that {files.train.name} lacks: {_preview(extra_in_test)}",
                        "Make test.csv hold the same feature columns as train.csv (without the target).")
    features = tuple(c for c in train_cols if c in test_set and c != id_column and c not in targets)
    # No shared feature column is still a task when the id names an image per row:
    # require_inputs() decides once it has looked at the files.
    dropped = tuple(c for c in train_cols if c not in test_set and c not in targets and c != id_column)
    if dropped:
        decisions["dropped_columns"] = f"in train but not in test, so unusable at prediction time: {_preview(list(dropped))}"

    submission_columns = tuple(sample_cols) if sample_cols else tuple(c for c in (id_column, *targets) if c)
    return ColumnResolution(target, id_column, submission_columns, passthrough, features, dropped, decisions,
                            tuple(targets), row_number)


def _refuse_an_id_spelled_otherwise(sample_cols: list[str], test_cols: list[str], files: TaskFiles) -> None:
    """A sample column named like an id that test has only in another case (ID for id): one clear line, not a
    guess at which spelling the grader reads."""
    test_folded = {c.casefold(): c for c in test_cols}
    for column in sample_cols:
        other = test_folded.get(column.casefold())
        if other is not None and other != column and ID_NAME.match(column):
            sample_name = files.sample_submission.name if files.sample_submission else "the sample submission"
            raise TaskError(f"{sample_name}'s id column '{column}' is '{other}' in {files.test.name}",
                            "Spell the id column the same way in both files.")


# Names a single target goes by when the sample submission calls its column something else (jigsaw's unintended
# bias: train's `target`, the sample's `prediction`).
TARGET_NAMES = ("target", "label", "labels", "y", "class", "outcome")


def _infer_targets(train_cols: list[str], test_cols: list[str], predicted: list[str], sample_cols: list[str],
                   id_column: str | None, files: TaskFiles, decisions: dict[str, str]) -> list[str]:
    test_set = set(test_cols)
    train_only = [c for c in train_cols if c not in test_set and c != id_column]
    named_in_train = [c for c in predicted if c in train_only]
    if len(named_in_train) == 1:
        decisions["target"] = f"inferred: '{named_in_train[0]}' is the sample submission's column that train has and test lacks"
        return named_in_train
    if len(named_in_train) > 1:
        decisions["target"] = (f"inferred: {_preview(named_in_train)} are the sample submission's columns that train "
                               "has and test lacks: several targets")
        return named_in_train
    folded = {c.casefold(): c for c in train_only}
    named_ignoring_case = [folded[c.casefold()] for c in predicted if c.casefold() in folded]
    if len(named_ignoring_case) == 1 and len(predicted) == 1:
        decisions["target"] = (f"inferred: '{named_ignoring_case[0]}' is the sample submission's column "
                               f"'{predicted[0]}' in another case, which train has and test lacks")
        return named_ignoring_case
    named_like_a_target = [c for c in train_only if c.casefold() in TARGET_NAMES]
    if len(train_only) > 1 and len(predicted) == 1 and len(named_like_a_target) == 1:
        decisions["target"] = (f"inferred: '{named_like_a_target[0]}' is named like a target, of the columns train has "
                               f"and test lacks; the sample submission's '{predicted[0]}' holds its predictions")
        return named_like_a_target
    if len(train_only) == 1:
        reason = "the only column train has and test lacks"
        if predicted and not named_in_train:
            reason += f" (the sample submission's columns {_preview(predicted)} look like one per class)"
        decisions["target"] = f"inferred: '{train_only[0]}' is {reason}"
        return train_only
    if not train_only:
        raise TaskError(f"no target column: every column of {files.train.name} is also in {files.test.name}",
                        "State the target in task.yaml as `target: <column>`.")
    if predicted:
        sample_name = files.sample_submission.name if files.sample_submission else "the sample submission"
        raise TaskError(f"no target column: {sample_name} "
                        f"has {_preview(sample_cols)} but {files.train.name} has no such column",
                        "State it in task.yaml as `target: <column>`.")
    raise TaskError(f"cannot tell which column is the target: {files.train.name} has {_preview(train_only)} "
                    f"that {files.test.name} lacks",
                    "State it in task.yaml as `target: <column>`.")


def _preview(columns: list[str], limit: int = 8) -> str:
    shown = ", ".join(map(str, columns[:limit]))
    return f"[{shown}{', …' if len(columns) > limit else ''}]"


# ---------------------------------------------------------------- the analysis


def check_task(path: str | Path) -> TaskFiles:
    """The cheap checks a user wants before anything starts: files, headers, columns."""
    files = locate_task(path)
    stated = read_task_yaml(files.task_yaml)
    if files.archives:
        # Zipped folders: checked member by member here; the run unpacks them and analyses the copy.
        for archive in files.archives.values():
            check_archive(archive)
        return files
    train_head = files.read("train", nrows=50)
    test_head = files.read("test", nrows=50)
    sample_head = read_table(files.sample_submission, nrows=5) if files.sample_submission else None
    cols = resolve_columns(list(train_head.columns), test_head,
                           None if sample_head is None else [str(c) for c in sample_head.columns], stated, files)
    refuse(text_generation(cols.target, train_head[cols.target]))
    require_inputs(cols, train_head, test_head, files)
    return files


def require_inputs(cols: ColumnResolution, train: pd.DataFrame, test: pd.DataFrame,
                   files: TaskFiles) -> tuple[list[ImageSource], list[AudioSource]]:
    """The image and audio sources of the task; an error when there is nothing at all to learn from."""
    candidates = [c for c in cols.feature_columns if not pd.api.types.is_float_dtype(train[c])]
    if cols.id_column:
        candidates.append(cols.id_column)
    if files.layout is not None:
        # The tables were built from the folders: the path column names each file; an id that is the file's name
        # names the same files, and reading them twice would double the work and the features.
        candidates = [files.layout.path_column]
    images = find_image_sources(train, test, files.root, candidates)
    named = {s.column for s in images}
    audio = find_audio_sources(train, test, files.root, [c for c in candidates if c not in named])
    if not cols.feature_columns and not images and not audio:
        raise TaskError(f"{files.train.name} and {files.test.name} share no feature columns, and no column names image "
                        "or audio files", "Check that both files hold the same features (test without the target), or "
                        "that the images or clips the ids name are in the task directory (e.g. images/<id>.png).")
    return images, audio


# The iML paper's sensitivity study replaces the task text with this (--strip-description).
STRIPPED_DESCRIPTION = ("Analyze the provided data files and execute the appropriate predictive task for the "
                        "target variable")


def analyze_task(path: str | Path, hints: dict[str, Any] | None = None, hints_from: str = "",
                 description: str | None = None) -> TaskSummary:
    """The rules TaskAnalyzer: a TaskSummary from the files, task.yaml and the data.

    hints: target / id_column / metric / problem_type from another analyser (the LLM's),
    used where task.yaml says nothing and recorded as `hints_from: ...` decisions.
    description: replaces description.md's text (the --strip-description study).
    """
    from iml_ray.metrics.in_description import find_metric_in_text
    from iml_ray.metrics.registry import get_metric

    files = locate_task(path)
    if files.archives:
        raise TaskError(f"{', '.join(a.name for a in files.archives.values())} must be unpacked before the analysis",
                        "Run the task with `iml run`, which unpacks it into the output directory.")
    stated = read_task_yaml(files.task_yaml)
    hinted = [k for k, v in (hints or {}).items() if k not in stated and k in YAML_KEYS]
    stated = {**stated, **{k: hints[k] for k in hinted}}
    if "id_column" in hinted and hints["id_column"] is None:
        stated.pop("id_column")          # "no id column" is for the rules to find out
        hinted.remove("id_column")
    train_head = files.read("train", nrows=HEAD_ROWS)
    test_head = files.read("test", nrows=HEAD_ROWS)
    hinted_id = stated.get("id_column") if "id_column" in hinted else None
    if hinted_id in test_head.columns and not (ID_NAME.match(hinted_id) or key_like(test_head[hinted_id])):
        # A text or repeated column (a comment, a date) is not a row key, whatever the hint says: taken as the
        # id it would be dropped from the features. It stays a passthrough column.
        log.info("hinted id column %r is not a key (free text or repeated values); not used as the id", hinted_id)
        stated.pop("id_column")
        hinted.remove("id_column")
    sample_head = read_table(files.sample_submission, nrows=HEAD_ROWS) if files.sample_submission else None
    sample_cols = None if sample_head is None else [str(c) for c in sample_head.columns]
    cols = resolve_columns(list(train_head.columns), test_head, sample_cols, stated, files)
    refuse(text_generation(cols.target, train_head[cols.target]))
    decisions = dict(cols.decisions)
    images, audio = require_inputs(cols, train_head, test_head, files)
    for source in images:
        decisions[f"images:{source.column}"] = f"inferred: {source.found} ({source.width}x{source.height} {source.mode})"
    for clip in audio:
        decisions[f"audio:{clip.column}"] = (f"inferred: {clip.found} ({clip.sample_rate} Hz, {clip.channels} "
                                             f"channel(s), {clip.seconds:g} s)")
    labels, test_ids, n_test = needed_columns(files, cols)
    if files.layout is not None:
        layout = files.layout
        where = f"{layout.train_dir}/<class>/"
        if layout.label_from == "name":
            where = (f"{layout.train_dir}/<class>.<n>.<ext> (the class is the name's leading word)"
                     if layout.label_pattern == NAME_LABEL else
                     f"{layout.train_dir}/<name>_<class>.<ext> (the class is the name's last _token)")
        decisions["layout"] = (f"inferred: no train.csv; one row per {layout.kind_of_file} of {where} "
                               f"({labels[cols.target].nunique()} classes) and of {layout.test_dir}/, ids are file "
                               f"{'names' if layout.id_style == 'name' else 'names without extension'}")
    for name in cols.targets:
        check_target_values(labels[name], name, files.train.name)
    missing = labels.isna().any(axis=1)
    if missing.any():
        decisions["target_missing"] = f"{int(missing.sum())} train rows have no target and are left out"
    y = labels[cols.target].dropna()
    sample = None
    if files.sample_submission is not None:
        wanted = [c for c in sample_cols if c in (cols.id_column, cols.row_number) or c in cols.prediction_columns[:1]]
        sample = read_columns(files.sample_submission, wanted)
    if sample is not None and len(sample) != n_test:
        raise TaskError(f"{files.sample_submission.name} has {len(sample)} rows but {_test_name(files)} has {n_test}",
                        "The sample submission needs one row per test row.")

    if description is None:
        description = files.description.read_text(errors="replace") if files.description else ""
    metric = stated.get("metric")
    if metric:
        decisions["metric"] = "stated in task.yaml"
    else:
        metric = find_metric_in_text(description) if description else None
        if metric:
            decisions["metric"] = f"inferred: the description names {metric}"

    if len(cols.targets) > 1:
        problem_type, spec, fmt = several_targets(labels.dropna(), cols, metric, stated, sample, decisions)
    else:
        prediction_cols = cols.prediction_columns
        problem_type = stated.get("problem_type")
        if problem_type:
            decisions["problem_type"] = "stated in task.yaml"
        else:
            problem_type, why = infer_problem_type(y, metric, prediction_cols)
            decisions["problem_type"] = f"inferred: {why}"
        if not metric:
            metric, why = default_metric(problem_type, sample, prediction_cols, y)
            decisions["metric"] = f"default: {why}"
        spec = get_metric(metric)
        if spec.unit is not None:          # "mean AUC" over one target is AUC
            spec = get_metric(spec.unit)
        if problem_type not in spec.problem_types:
            raise TaskError(f"the metric {metric} does not fit a {problem_type} task (target '{cols.target}')",
                            "State `metric:` and `problem_type:` in task.yaml.")
        fmt = submission_format(cols.id_column, tuple(prediction_cols), cols.submission_columns, cols.passthrough,
                                problem_type, spec, sample, y, stated, labels[cols.target].dtype, decisions,
                                description, cols.target)
    if sample is not None and cols.id_column and cols.id_column in sample.columns:
        missing = set(sample[cols.id_column].astype(str)) - set(test_ids.astype(str))
        if missing:
            raise TaskError(f"{len(missing)} id(s) of {files.sample_submission.name} are not in {_test_name(files)} "
                            f"(e.g. {sorted(missing)[0]!r})", "The sample submission must list the test ids.")

    if cols.row_number and sample is not None:
        from dataclasses import replace

        start = row_number_start(sample[cols.row_number], cols.row_number, files.sample_submission.name, n_test)
        fmt = replace(fmt, row_number_column=cols.row_number, row_number_start=start)
        decisions["submission"] += f"; '{cols.row_number}' numbers the test rows from {start}"

    forecast = None
    if problem_type == "regression" and len(cols.targets) == 1 and files.layout is None and not images and not audio:
        forecast, why = find_forecast(files, cols.feature_columns)
        if forecast is not None:
            decisions["forecast"] = why
    for key in hinted:
        if decisions.get(key, "").startswith("stated"):
            decisions[key] = f"{hints_from}: {hints.get('why') or 'from the description and the files'}"[:300]
    return TaskSummary(
        name=files.name,
        task_dir=str(files.root),
        train_file=files.relative(files.train),
        test_file=files.relative(files.test),
        sample_submission_file=files.relative(files.sample_submission),
        target=cols.target,
        targets=cols.targets if len(cols.targets) > 1 else (),
        forecast=forecast,
        id_column=cols.id_column,
        problem_type=problem_type,
        metric=spec.name,
        submission=fmt,
        feature_columns=cols.feature_columns,
        dropped_columns=cols.dropped_columns,
        images=tuple(images),
        audio=tuple(audio),
        layout=files.layout,
        test_columns=files.test_columns,
        n_train=int(len(labels)),
        n_test=int(n_test),
        decisions=decisions,
        description=description[:4000],
    )


def needed_columns(files: TaskFiles, cols: ColumnResolution) -> tuple[pd.DataFrame, pd.Series | None, int]:
    """The targets of every train row, the test ids (when there is an id column) and the test row count.

    Only these columns are read, a chunk at a time: a large train.csv is never held whole."""
    targets = list(cols.targets or (cols.target,))
    if files.layout is not None:
        train, test = files.read("train"), files.read("test")      # built from the folder listing
        ids = test[cols.id_column] if cols.id_column in test.columns else None
        return train[targets].reset_index(drop=True), ids, len(test)
    labels = read_columns(files.train, targets)
    if cols.id_column:
        ids = read_columns(files.test, [cols.id_column])[cols.id_column]
        return labels, ids, len(ids)
    return labels, None, count_rows(files.test)


def _test_name(files: TaskFiles) -> str:
    return f"{files.test.name}/ (its images)" if files.layout else files.test.name
