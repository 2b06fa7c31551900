"""What each agent does under the llm policy, as plain functions over a Brain.

Each function takes the rules policy's answer as a draft where one exists, asks
the LLM, validates the answer with the framework's own checks, and returns the
same typed artifact as the rules policy; it raises LLMError when the LLM cannot
help, and the agent then keeps the rules answer.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .brain import Brain
from .errors import BadAnswer, LLMError
from .extract import clip_middle
from .prompts import coders, debugger, error_analyzer, guideline, knowledge, profiler, task_analyzer

if TYPE_CHECKING:
    from ..blueprint import Blueprint, InterfaceContract, PrepPlan, TrackPlan
    from ..knowledge.retriever import Knowledge
    from ..profile import Profile
    from ..rules.debugger import Failure
    from ..task import TaskSummary

log = logging.getLogger(__name__)

LOG_TOKENS = 1500           # a traceback or log tail in a prompt: head and tail kept, code never cut
PROFILE_LIMIT_S = 60.0


def analyze_task(brain: Brain, task_dir: str, draft: "TaskSummary | None", description: str | None,
                 problem: Exception | None = None) -> "TaskSummary":
    """The rules summary checked by the LLM against the description; where they differ and the LLM's answer
    holds up against the files, the task is analysed again with the LLM's answer as hints. With no rules
    summary (`problem` says why the rules could not read the task), the LLM's answer is the only hint."""
    from ..metrics import METRICS
    from ..task import locate_task, read_table
    from ..task_inference import analyze_task as rules_analyze

    files = locate_task(task_dir)
    train = files.read("train", nrows=5)
    test = files.read("test", nrows=5)
    train_columns, test_columns = [str(c) for c in train.columns], [str(c) for c in test.columns]
    sample_columns = [str(c) for c in read_table(files.sample_submission, nrows=2).columns] if files.sample_submission else None
    metrics = sorted(METRICS)
    fields = ("target", "id_column", "metric", "problem_type")
    if draft is not None:
        now = {k: getattr(draft, k) for k in fields}
        shown = {**now, "why": {k: draft.decisions.get(k, "") for k in fields}}
        text, n_train, n_test = draft.description, str(draft.n_train), str(draft.n_test)
    else:
        now, shown = {}, {"the rules could not read the task": str(problem)}
        text = description if description is not None else \
            (files.description.read_text(errors="replace")[:4000] if files.description else "")
        n_train = n_test = "?"
    answer = brain.ask(task_analyzer.messages(text, train_columns, test_columns, sample_columns, n_train, n_test,
                                              clip_middle(train.head(3).to_string(), 400), shown, metrics),
                       lambda reply: task_analyzer.parse(reply, train_columns, test_columns, metrics))
    hints = {k: answer[k] for k in fields if answer[k] != now.get(k)}
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


def profile_findings(brain: Brain, summary: "TaskSummary", profile: "Profile", work_dir: str) -> dict[str, str]:
    """Profiling code written by the LLM, run in the sandbox; what it found."""
    from ..sandbox import SandboxLimits, run_python

    root = Path(summary.task_dir)
    folder = Path(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    compact = profile_brief(profile)
    messages = profiler.messages(summary.target, summary.problem_type, summary.metric, str(root / summary.train_file),
                                 str(root / summary.test_file), summary.description, compact)
    problem = None
    for attempt in range(2):
        code = brain.ask(messages, profiler.parse_code)
        script = folder / f"profile_{attempt + 1}.py"
        script.write_text(code)
        (folder / "findings.json").unlink(missing_ok=True)
        limits = SandboxLimits(timeout_s=PROFILE_LIMIT_S, memory_mb=4096, max_log_bytes=2_000_000,
                               max_disk_bytes=200 * 2**20, cpus=1, read_only=(str(root),))
        result = run_python(script, [], folder, limits, log_prefix=f"profile_{attempt + 1}")
        try:
            if result.status != "ok":
                raise BadAnswer(f"the script {result.describe()}:\n{clip_middle(result.stderr_tail(), LOG_TOKENS)}")
            findings = profiler.parse_findings(folder / "findings.json")
            brain.note("llm", f"{len(findings)} findings from profiling code (attempt {attempt + 1})")
            return findings
        except BadAnswer as exc:
            problem = str(exc)
            from .prompts import re_ask

            messages = re_ask(messages, f"```python\n{code}\n```", problem)
    raise LLMError(f"profiling code failed twice: {problem.splitlines()[0] if problem else ''}")


def choose_cards(brain: Brain, summary: "TaskSummary", profile: "Profile", matched: "Knowledge") -> "Knowledge":
    from ..knowledge.retriever import Knowledge, MatchedCard, load_cards

    catalogue = load_cards()
    by_id = {c.id: c for c in catalogue}
    cards, advice = brain.ask(knowledge.messages(task_brief(summary), profile_brief(profile),
                                                 [{"id": m.card.id, "why": m.why} for m in matched.cards],
                                                 [{"id": c.id, "title": c.title, "advice": c.advice, "when": c.when}
                                                  for c in catalogue]),
                              lambda text: knowledge.parse(text, list(by_id)))
    why = {m.card.id: m.why for m in matched.cards}
    chosen = tuple(MatchedCard(by_id[i], why.get(i, "chosen by the LLM KnowledgeRetriever")) for i in cards)
    dropped = sorted(set(why) - set(cards))
    brain.note("llm", f"{len(chosen)} cards" + (f", dropped {dropped}" if dropped else ""))
    return Knowledge(chosen, advice)


def plan(brain: Brain, summary: "TaskSummary", profile: "Profile", knowledge_: "Knowledge", draft: "Blueprint",
         draft_contract: "InterfaceContract") -> tuple["Blueprint", "InterfaceContract"]:
    from ..rules.guideline import make_contract

    columns = list(summary.feature_columns) + [s.name for s in summary.images]
    blueprint, contract, why = brain.ask(
        guideline.messages(task_brief(summary), profile_brief(profile), profile.findings, knowledge_.advice,
                           {"blueprint": draft.to_json(), "contract": draft_contract.to_json()}),
        lambda text: guideline.parse(text, draft, draft_contract, columns, lambda prep: make_contract(summary, prep)))
    from dataclasses import replace

    blueprint = replace(blueprint, notes=tuple(blueprint.notes) + (f"GuidelineAgent (llm): {why or 'kept the draft'}",))
    brain.note("llm", why or "blueprint accepted")
    return blueprint, contract


def write_prep(brain: Brain, summary: "TaskSummary", plan_: "PrepPlan", contract: "InterfaceContract", columns: str) -> str:
    code = brain.ask(coders.prep_messages(summary.target, summary.problem_type, summary.metric, columns,
                                          plan_.to_json(), contract.to_json()),
                     lambda text: coders.parse_module(text, "prep"))
    brain.note("llm", "prep module written")
    return code


def write_model(brain: Brain, summary: "TaskSummary", plan_: "TrackPlan", contract: "InterfaceContract",
                prep_output: dict, threads: int) -> str:
    code = brain.ask(coders.model_messages(plan_.track, summary.target, summary.problem_type, summary.metric,
                                           summary.n_train, plan_.to_json(), prep_output, contract.to_json(), threads),
                     lambda text: coders.parse_module(text, "model"))
    brain.note("llm", f"model module for {plan_.track} written")
    return code


def diagnose(brain: Brain, failure: "Failure", contract: "InterfaceContract", sources: dict[str, str]) -> tuple[str, str]:
    blamed, explanation = brain.ask(
        error_analyzer.messages(failure.stage, failure.status, failure.failing_section or "unknown",
                                scrub_paths(failure.message), [scrub_paths(v) for v in failure.violations],
                                clip_middle(scrub_paths(failure.stderr_tail), LOG_TOKENS), contract.to_json(), sources),
        error_analyzer.parse)
    brain.note("llm", f"blamed {blamed}")
    return blamed, explanation


def rewrite(brain: Brain, role: str, code: str, failure: "Failure", blamed: str, explanation: str,
            contract: "InterfaceContract", columns: str, module_name: str) -> str:
    new = brain.ask(debugger.messages(scrub_paths(failure.message), blamed, explanation,
                                      clip_middle(scrub_paths(failure.stderr_tail), LOG_TOKENS), contract.to_json(),
                                      columns, module_name, role, code),
                    lambda text: debugger.parse_module(text, role))
    brain.note("llm", f"rewrote {module_name}")
    return new


# ---------------------------------------------------------------- compact views for prompts

def task_brief(summary: "TaskSummary") -> dict[str, Any]:
    return {"name": summary.name, "target": summary.target, "id_column": summary.id_column,
            "problem_type": summary.problem_type, "metric": summary.metric, "n_train": summary.n_train,
            "n_test": summary.n_test, "submission": summary.submission.to_json(),
            "description": clip_middle(summary.description, 600)}


def profile_brief(profile: "Profile") -> dict[str, Any]:
    return {"rows": [profile.n_train, profile.n_test], "target": {k: v for k, v in profile.target.__dict__.items() if v},
            "columns": [{"name": c.name, "role": c.role, "dtype": c.dtype, "missing": round(c.missing_frac, 3),
                         "unique": c.n_unique, "examples": list(c.examples[:3])} for c in profile.columns[:60]],
            "images": [i.name for i in profile.images]}


def columns_brief(profile: "Profile") -> str:
    """One line per column for the coders: name, role, dtype, missingness, examples."""
    lines = [f"- {c.name}: {c.role} ({c.dtype}), {c.missing_frac:.0%} missing, {c.n_unique} distinct, e.g. "
             f"{', '.join(repr(e) for e in c.examples[:3])}" for c in profile.columns[:80]]
    if len(profile.columns) > 80:
        lines.append(f"- ... {len(profile.columns) - 80} more columns")
    return "\n".join(lines)


PATH = re.compile(r"(/[^\s\"':]+)+/(?=(round_\d+|prep_check|candidates)\b)")


def scrub_paths(text: str) -> str:
    """Run-directory prefixes out of logs: a prompt must not change with --out (the cache key) nor show paths."""
    text = PATH.sub("", text or "")
    home = os.path.expanduser("~")
    return text.replace(home, "~") if home not in ("", "/") else text


