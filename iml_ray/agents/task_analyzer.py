"""TaskAnalyzer: what the competition asks (target, id column, metric, problem type, submission format).

Rules: `task.inference.analyze_task` reads the files, the description and the
sample submission. LLM: the rules' summary is checked against the description;
where the model differs and its answer fits the files, the task is analysed
again with its answer as hints.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iml_ray.agents.base import Agent
from iml_ray.llm.errors import BadAnswer, LLMError
from iml_ray.llm.extract import clip_middle, extract_json
from iml_ray.llm.prompt import render

if TYPE_CHECKING:
    from iml_ray.llm.brain import Brain
    from iml_ray.task.files import TaskSummary

FIELDS = ("target", "id_column", "metric", "problem_type")


class TaskAnalyzer(Agent):
    name = "task_analyzer"
    warm_imports = ("iml_ray.task.inference", "iml_ray.metrics.registry")
    prompt = "task_analyzer"

    def analyze(self, task_dir: str, description: str | None = None) -> TaskSummary:
        from iml_ray.errors import TaskError
        from iml_ray.task.inference import analyze_task

        try:
            summary, problem = analyze_task(task_dir, description=description), None
        except TaskError as exc:
            # The rules cannot read the task (e.g. two columns could be the target): the LLM may, from the
            # description; when it cannot either, the user gets the rules' error.
            if self.brain is None or "task.yaml" not in exc.fix:
                raise
            summary, problem = None, exc
        answer = self._with_llm("task summary", lambda brain: ask_llm(brain, task_dir, summary, description, problem))
        if answer is None and problem is not None:
            raise problem
        return summary if answer is None else answer


def ask_llm(brain: Brain, task_dir: str, draft: TaskSummary | None, description: str | None,
            problem: Exception | None = None) -> TaskSummary:
    """The rules summary checked by the LLM against the description; where they differ and the LLM's answer
    holds up against the files, the task is analysed again with the LLM's answer as hints. With no rules
    summary (`problem` says why the rules could not read the task), the LLM's answer is the only hint."""
    from iml_ray.metrics.registry import METRICS
    from iml_ray.task.files import locate_task, read_table
    from iml_ray.task.inference import analyze_task as rules_analyze

    files = locate_task(task_dir)
    train = files.read("train", nrows=5)
    test = files.read("test", nrows=5)
    train_columns, test_columns = [str(c) for c in train.columns], [str(c) for c in test.columns]
    sample_columns = [str(c) for c in read_table(files.sample_submission, nrows=2).columns] if files.sample_submission else None
    metrics = [*sorted(METRICS), "pinball_<level>", "map@<k>"]   # levels in the name: pinball_0.9, map@3
    if draft is not None:
        now = {k: getattr(draft, k) for k in FIELDS}
        shown = {**now, "why": {k: draft.decisions.get(k, "") for k in FIELDS}}
        text, n_train, n_test = draft.description, str(draft.n_train), str(draft.n_test)
    else:
        now, shown = {}, {"the rules could not read the task": str(problem)}
        text = description if description is not None else \
            (files.description.read_text(errors="replace")[:4000] if files.description else "")
        n_train = n_test = "?"
    answer = brain.ask(messages(text, train_columns, test_columns, sample_columns, n_train, n_test,
                                clip_middle(train.head(3).to_string(), 400), shown, metrics),
                       lambda reply: parse(reply, train_columns, test_columns, metrics))
    hints = {k: answer[k] for k in FIELDS if answer[k] != now.get(k)}
    if draft is not None and draft.targets and answer["target"] in draft.targets:
        # The answer names one target of several the files show (one model per label): the files stand.
        hints.pop("target", None)
        if hints.get("metric") and _column_wise_of(hints["metric"]) == draft.metric:
            hints.pop("metric")
    if not hints:
        brain.note("llm", "agrees with the rules analysis")
        return draft
    try:
        summary = rules_analyze(task_dir, {**hints, "why": answer["why"]}, "llm TaskAnalyzer", description)
    except Exception as exc:       # noqa: BLE001 - the files contradict the LLM: the rules summary stands
        if draft is None:
            raise LLMError(f"the LLM's reading of the task does not fit the files: {exc}") from None
        brain.note("rules", f"the LLM's {hints} do not fit the files: {exc}")
        return draft
    brain.note("llm", f"changed {', '.join(sorted(hints))}: {answer['why']}")
    return summary


def _column_wise_of(metric: str) -> str | None:
    from iml_ray.metrics.registry import UnknownMetric, column_wise

    try:
        return column_wise(metric).name
    except UnknownMetric:
        return None


def messages(description: str, train_columns: list[str], test_columns: list[str], sample_columns: list[str] | None,
             n_train: str, n_test: str, train_head: str, draft: dict, metrics: list[str]) -> list[dict]:
    return render(__package__, TaskAnalyzer.prompt, description=description or "(none)", train_columns=train_columns,
                  test_columns=test_columns, sample_columns=sample_columns or "(no sample submission)",
                  n_train=n_train, n_test=n_test, train_head=train_head, draft=draft,
                  metrics=", ".join(metrics))


def parse(text: str, train_columns: list[str], test_columns: list[str], metrics: list[str]) -> dict[str, Any]:
    """The answer as task.yaml-like hints; raises BadAnswer naming what is wrong."""
    from iml_ray.metrics.submission import PROBLEM_TYPES

    answer = extract_json(text)
    target = answer.get("target")
    if target not in train_columns:
        raise BadAnswer(f"target {target!r} is not a column of train ({train_columns})")
    if target in test_columns:
        raise BadAnswer(f"target {target!r} is also a test column; the target is what test lacks")
    id_column = answer.get("id_column")
    if id_column in ("", "null", "None"):
        id_column = None
    if id_column is not None and id_column not in test_columns:
        raise BadAnswer(f"id_column {id_column!r} is not a column of test ({test_columns})")
    metric = answer.get("metric")
    if metric not in metrics:
        # An alias ("roc_auc", "RMSE") or a pinball loss at a level ("pinball_0.9") names a metric the registry knows.
        from iml_ray.metrics.registry import UnknownMetric, get_metric

        try:
            metric = get_metric(str(metric)).name
        except UnknownMetric:
            raise BadAnswer(f"metric {metric!r} is not one of {metrics}") from None
    problem_type = answer.get("problem_type")
    if problem_type not in PROBLEM_TYPES:
        raise BadAnswer(f"problem_type {problem_type!r} is not one of {list(PROBLEM_TYPES)}")
    return {"target": target, "id_column": id_column, "metric": metric, "problem_type": problem_type,
            "why": str(answer.get("why", ""))[:300]}
