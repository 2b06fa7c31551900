"""GuidelineAgent: the blueprint <prep, model tracks, train, eval> and the interface contract between prep and model.

Rules: `plan.guideline_rules` decides from the profile and the knowledge cards;
the Pretrained Model Retriever (`plan.pretrained`) names the encoders on disk.
LLM: the model revises the rules' draft. The schema is the draft's: every key
the LLM returns must exist in the draft with a value of the same JSON type, so
the answer loads into the typed Blueprint and InterfaceContract; the
framework-owned parts (evaluation, validation split, the contract's facts about
the data) must come back unchanged.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from iml_ray.agents.base import Agent
from iml_ray.agents.briefs import profile_brief, task_brief
from iml_ray.blueprint import Blueprint, InterfaceContract, PrepPlan, TrackPlan
from iml_ray.llm.errors import BadAnswer
from iml_ray.llm.extract import extract_json
from iml_ray.llm.prompt import render

if TYPE_CHECKING:
    from iml_ray.llm.brain import Brain
    from iml_ray.plan.knowledge import Knowledge
    from iml_ray.task.files import TaskSummary
    from iml_ray.task.profile import Profile

log = logging.getLogger(__name__)

MODEL_TEMPLATES = ("traditional", "custom_nn")
TRADITIONAL_MODELS = ("lightgbm", "linear", "catboost", "xgboost", "extra_trees", "knn", "lightgbm_log")


class GuidelineAgent(Agent):
    name = "guideline"
    warm_imports = ("iml_ray.plan.guideline_rules", "iml_ray.plan.pretrained")
    prompt = "guideline"

    def plan(self, summary: TaskSummary, profile: Profile, knowledge: Knowledge, tracks: tuple[str, ...],
             seed: int, holdout_fraction: float, num_threads: int,
             time_budget_s: float | None = None, allow_hub: bool = False,
             gpus: float = 0.0, cpus: float | None = None,
             alone_cpus: float | None = None) -> tuple[Blueprint, InterfaceContract]:
        """allow_hub: a model hub id may be chosen when no local encoder exists (the generated code then
        downloads it, so it must run with the network: --allow-network). gpus: what the GPU tracks get; cpus:
        what each track gets (a share of a CPU when tracks outnumber CPUs); alone_cpus: what a track too costly
        beside the others gets when they stop (make_blueprint)."""
        from iml_ray.plan.guideline_rules import make_blueprint, make_contract

        pretrained = find_encoders(summary, profile, allow_hub) if "pretrained" in tracks else {}
        blueprint = make_blueprint(summary, profile, knowledge, tracks, seed, holdout_fraction, num_threads, time_budget_s,
                                   pretrained, cpus=cpus, gpus=gpus, alone_cpus=alone_cpus)
        contract = make_contract(summary, blueprint.prep)
        revised = self._with_llm("the rules blueprint",
                                 lambda brain: ask_llm(brain, summary, profile, knowledge, blueprint, contract, pretrained,
                                                       gpus))
        return (blueprint, contract) if revised is None else revised


def find_encoders(summary: TaskSummary, profile: Profile, allow_hub: bool = False) -> dict[str, dict | None]:
    """The Pretrained Model Retriever's answer for each modality the task has."""
    from iml_ray.plan.pretrained import find_pretrained

    found: dict[str, dict | None] = {}
    wanted = []
    if profile.columns_with_role("text"):
        wanted.append("text")
    if summary.images:
        wanted.append("image")
    for modality in wanted:
        model = find_pretrained(modality, allow_hub=allow_hub)
        found[modality] = None if model is None else model.to_json()
        log.info("pretrained %s encoder: %s", modality, "none found" if model is None else f"{model.name} ({model.source})")
    return found


def ask_llm(brain: Brain, summary: TaskSummary, profile: Profile, knowledge: Knowledge, draft: Blueprint,
            draft_contract: InterfaceContract, pretrained: dict | None = None,
            gpus: float = 0.0) -> tuple[Blueprint, InterfaceContract]:
    from iml_ray.agents.briefs import labelled_examples, run_options
    from iml_ray.plan.guideline_rules import make_contract

    columns = list(summary.feature_columns) + [s.name for s in summary.images]
    blueprint, contract, why = brain.ask(
        messages(task_brief(summary), profile_brief(profile), profile.findings, knowledge.advice,
                 {"blueprint": draft.to_json(), "contract": draft_contract.to_json()}, labelled_examples(summary),
                 run_options(pretrained or {}, gpus)),
        lambda text: parse(text, draft, draft_contract, columns, lambda prep: make_contract(summary, prep)))
    blueprint = replace(blueprint, notes=tuple(blueprint.notes) + (f"GuidelineAgent (llm): {why or 'kept the draft'}",))
    brain.note("llm", why or "blueprint accepted")
    return blueprint, contract


def messages(task: dict, profile: dict, findings: dict, advice: str, draft: dict, examples: list | None = None,
             options: dict | None = None) -> list[dict]:
    return render(__package__, GuidelineAgent.prompt, task=task, profile=profile, findings=findings or "(none)",
                  advice=advice or "(none)", draft=draft, models=list(TRADITIONAL_MODELS),
                  examples=examples or "(none)", options=options or "(not known)")


def parse(text: str, draft: Blueprint, draft_contract: InterfaceContract, columns: list[str],
          contract_for: Callable[[PrepPlan], InterfaceContract]) -> tuple[Blueprint, InterfaceContract, str]:
    answer = extract_json(text)
    for key in ("blueprint", "contract"):
        if not isinstance(answer.get(key), dict):
            raise BadAnswer(f'the answer needs a "{key}" object')
    _same_shape(draft.to_json(), answer["blueprint"], "blueprint")
    _same_shape(draft_contract.to_json(), answer["contract"], "contract")
    try:
        blueprint = Blueprint.from_json(merge(draft.to_json(), answer["blueprint"]))
        contract = InterfaceContract.from_json(merge(draft_contract.to_json(), answer["contract"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise BadAnswer(f"the blueprint or contract does not load: {exc}") from None
    if blueprint.eval != draft.eval:
        raise BadAnswer(f"blueprint.eval must stay {draft.to_json()['eval']}: the framework owns the evaluation")
    owned = ("seed", "holdout_fraction", "holdout_folds")
    if [getattr(blueprint.train, k) for k in owned] != [getattr(draft.train, k) for k in owned]:
        raise BadAnswer("blueprint.train.seed, holdout_fraction and holdout_folds must stay as drafted: the framework "
                        "owns the split")
    drafted = {t.track for t in draft.tracks}
    for plan in blueprint.tracks:
        if plan.track not in drafted:
            raise BadAnswer(f"track {plan.track!r} is not one of the drafted tracks {sorted(drafted)}")
        if plan.model_template not in MODEL_TEMPLATES:
            raise BadAnswer(f"track {plan.track}: model_template must be one of {list(MODEL_TEMPLATES)}")
        if plan.model_template == "traditional" and (not plan.models or set(plan.models) - set(TRADITIONAL_MODELS)):
            raise BadAnswer(f"track {plan.track}: models must be a non-empty subset of {list(TRADITIONAL_MODELS)}")
        if "lightgbm_log" in plan.models and draft_contract.classes:
            raise BadAnswer(f"track {plan.track}: lightgbm_log fits log1p of a regression target; this task has "
                            "classes")
    if not blueprint.tracks:
        raise BadAnswer("the blueprint needs at least one track")
    # A dropped column leaves every role (the answer need not repeat the role lists without it).
    prep = blueprint.prep
    roles = ("numeric", "numeric_coerce", "categorical", "text", "datetime")
    blueprint = replace(blueprint, prep=prep.replace(**{r: tuple(c for c in getattr(prep, r) if c not in prep.dropped)
                                                        for r in roles}))
    unknown = [c for c in blueprint.prep.used_columns if c not in columns]
    if unknown:
        raise BadAnswer(f"prep names column(s) {unknown} that the task does not have; the columns are {columns}")
    _check_column_transforms(blueprint.prep)
    fields = {f.name for f in dataclasses.fields(PrepPlan)}
    for plan in blueprint.tracks:
        if set(plan.prep_changes) - fields:
            raise BadAnswer(f"track {plan.track}: prep_changes has no key(s) {sorted(set(plan.prep_changes) - fields)}; "
                            f"it takes keys of blueprint.prep")
        _check_fine_tuning(plan, blueprint.prep.with_changes(plan.prep_changes))
    why = str(answer.get("why", ""))[:300]
    before = {t.track: t for t in draft.tracks}
    # Whether a track waits for the others' CPUs follows from the cluster and the encoders' measured cost.
    blueprint = replace(blueprint, tracks=tuple(
        _with_reasons(plan.replace(deferred_encode_s=before[plan.track].deferred_encode_s), before[plan.track], why)
        for plan in blueprint.tracks))
    # The contract's facts follow from the data and the prep: re-derived, whatever the answer said of them; only its
    # prose (the APIs and the matrix) is the model's to change.
    derived = contract_for(blueprint.prep)
    prose = {k: v for k, v in contract.to_json().items() if k in ("prep_api", "model_api", "matrix")}
    return blueprint, InterfaceContract.from_json({**derived.to_json(), **prose}), why


TRANSFORMS = ("log1p",)


def _check_fine_tuning(plan: TrackPlan, prep: PrepPlan) -> None:
    """A fine-tuned backbone reads its own input: the text encoder its token ids (and nothing else reads them), the
    image backbone RGB pixels."""
    backbone = plan.nn.get("backbone") if plan.model_template == "custom_nn" else None
    kind = (backbone or {}).get("modality")
    if backbone and kind not in ("text", "image"):
        raise BadAnswer(f"track {plan.track}: nn.backbone.modality must be 'text' or 'image'")
    tokens = bool(prep.text) and prep.text_mode == "tokens"
    if tokens != (kind == "text"):
        raise BadAnswer(f"track {plan.track}: text_mode 'tokens' goes with a custom_nn track whose nn.backbone names "
                        "the text encoder (both, or neither)")
    if tokens and (not prep.text_encoder or prep.text_encoder.get("ref") != backbone.get("ref")):
        raise BadAnswer(f"track {plan.track}: nn.backbone.ref must be the prep's text_encoder.ref (the tokenizer and "
                        "the encoder must match)")
    if kind == "image" and not (prep.image and prep.image_mode == "pixels" and prep.image_channels == 3):
        raise BadAnswer(f"track {plan.track}: an image nn.backbone reads RGB pixels: image_mode 'pixels', "
                        "image_channels 3")


def _check_column_transforms(prep: PrepPlan) -> None:
    numbers = set(prep.numeric) | set(prep.numeric_coerce)
    for column, spec in prep.column_transforms.items():
        if column not in numbers:
            raise BadAnswer(f"prep.column_transforms: {column!r} is not one of prep.numeric or prep.numeric_coerce")
        if not isinstance(spec, dict) or spec.get("transform") not in TRANSFORMS or not isinstance(spec.get("why"), str):
            raise BadAnswer(f'prep.column_transforms.{column} must be {{"transform": one of {list(TRANSFORMS)}, '
                            '"why": "<reason>"}')


def _with_reasons(plan: TrackPlan, drafted: TrackPlan, why: str) -> TrackPlan:
    """A track the answer changed says so in its reasons (the draft's reasons described the draft's settings)."""
    if replace(plan, reasons=()) == replace(drafted, reasons=()):
        return plan
    changed = [f.name for f in dataclasses.fields(TrackPlan)
               if f.name != "reasons" and getattr(plan, f.name) != getattr(drafted, f.name)]
    models = ", ".join(plan.models)
    return replace(plan, reasons=(f"models: {models} ({plan.model_template} template)",
                                  f"changed by the GuidelineAgent (llm): {', '.join(changed)}",
                                  *((f"why: {why}",) if why else ())))


def merge(draft: Any, change: Any) -> Any:
    """The draft with the answer's changes: objects merge key by key, tracks by their name, other values replace."""
    if isinstance(draft, dict) and isinstance(change, dict):
        merged = dict(draft)
        for key, value in change.items():
            merged[key] = merge(draft[key], value) if key in draft else value
        return merged
    if isinstance(draft, list) and isinstance(change, list) and draft and all(isinstance(t, dict) and "track" in t
                                                                               for t in draft):
        by_name = {t["track"]: t for t in draft}
        return [merge(by_name[t["track"]], t) if isinstance(t, dict) and t.get("track") in by_name else t for t in change]
    return change


def _same_shape(draft: Any, value: Any, path: str) -> None:
    """Raise BadAnswer where `value` has a key the draft lacks or a value of another JSON type."""
    if isinstance(draft, dict):
        if not isinstance(value, dict):
            raise BadAnswer(f"{path} must be an object")
        if path.endswith(("lightgbm", "linear", "nn", "tune", "dropped", "prep_changes", "text_encoder",
                          "image_encoder", "column_transforms", "families")):
            return   # free-form settings: the templates read what they know
        for key, item in value.items():
            if key not in draft:
                raise BadAnswer(f"{path} has no key {key!r}; its keys are {sorted(draft)}")
            _same_shape(draft[key], item, f"{path}.{key}")
    elif isinstance(draft, list):
        if not isinstance(value, list):
            raise BadAnswer(f"{path} must be a list")
        if draft and isinstance(draft[0], dict):
            by_name = {t.get("track"): t for t in draft}
            for i, item in enumerate(value):
                name = item.get("track") if isinstance(item, dict) else None
                _same_shape(by_name.get(name, draft[min(i, len(draft) - 1)]), item, f"{path}[{i}]")
    elif isinstance(draft, bool):
        if not isinstance(value, bool):
            raise BadAnswer(f"{path} must be true or false")
    elif isinstance(draft, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadAnswer(f"{path} must be a number")
        if isinstance(draft, int) and not isinstance(draft, bool) and isinstance(value, float) and not value.is_integer():
            raise BadAnswer(f"{path} must be a whole number")
    elif isinstance(draft, str):
        if not isinstance(value, str):
            raise BadAnswer(f"{path} must be a string")
