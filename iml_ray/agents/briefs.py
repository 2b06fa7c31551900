"""Compact views of the task, the profile and the logs, as the agents' prompts show them."""
from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from iml_ray.llm.extract import clip_middle

if TYPE_CHECKING:
    from iml_ray.task.files import TaskSummary
    from iml_ray.task.profile import Profile

LOG_TOKENS = 1500           # a traceback or log tail in a prompt: head and tail kept, code never cut

def task_brief(summary: "TaskSummary") -> dict[str, Any]:
    brief = {"name": summary.name, "target": summary.target, "id_column": summary.id_column,
             "problem_type": summary.problem_type, "metric": summary.metric, "n_train": summary.n_train,
             "n_test": summary.n_test, "submission": summary.submission.to_json(),
             "description": clip_middle(summary.description, 600)}
    if summary.targets:
        brief["targets"] = list(summary.targets)
        brief["several_targets"] = (f"{summary.task_type}: the pipeline fits one model per target column over the "
                                    f"shared preprocessing; each is a {summary.problem_type} problem, and the "
                                    f"score is {summary.metric}, the mean over the targets")
    return brief


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




MODEL_LIBRARIES = ("numpy", "scipy", "scikit-learn", "lightgbm", "torch", "catboost", "xgboost-cpu", "xgboost")


def library_versions() -> str:
    """The model libraries installed where generated code runs (the same environment as the agents)."""
    from importlib import metadata

    found = []
    for name in MODEL_LIBRARIES:
        try:
            found.append(f"{name.replace('-cpu', '')} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(dict.fromkeys(found)) or "(none found)"


RULES_CODES = ("whole numbers per column: 0..k-1 for its k codes, where k-2 stands for a rare or unseen value and k-1 "
               "for a missing one")


def run_facts(context: dict, fits: int) -> dict[str, str]:
    """How the framework runs a model module, for the ModelingCoder's prompts: calls, time limit, codes, libraries."""
    limit = context.get("round_limit_s")
    return {"fits": str(fits),
            "time_limit": f"{float(limit):.0f} s" if limit else "the track's time left",
            "codes": RULES_CODES if context.get("prep_source") == "rules" else "as the preprocessing module writes them",
            "libraries": library_versions()}


EXAMPLE_ROWS = 5
EXAMPLE_CHARS = 300         # a text cell shown this long: enough to see its language, length and style


def labelled_examples(summary: "TaskSummary", n: int = EXAMPLE_ROWS) -> list[dict[str, Any]]:
    """The first labelled training rows (the target and the input columns; long texts cut at EXAMPLE_CHARS), so an
    agent sees what the text and the labels look like together. Empty when the files cannot be read here."""
    from iml_ray.task.files import locate_task

    try:
        frame = locate_task(summary.task_dir).read("train", nrows=200)
    except Exception:                   # noqa: BLE001 - the prompt then shows no examples
        return []
    targets = [t for t in (summary.targets or (summary.target,)) if t in frame.columns]
    columns = [c for c in (*targets, *summary.feature_columns) if c in frame.columns]
    labelled = frame.dropna(subset=targets)[columns].head(n) if targets else frame[columns].head(n)
    return [{c: (v[:EXAMPLE_CHARS] + "…" if isinstance(v, str) and len(v) > EXAMPLE_CHARS else v) for c, v in row.items()}
            for row in json.loads(labelled.to_json(orient="records", date_format="iso"))]


def run_options(pretrained: dict[str, dict | None], gpus: float = 0.0) -> dict[str, Any]:
    """What this run can choose from for text and images, and the GPUs its tracks get, for the GuidelineAgent."""
    def named(kind: str) -> str:
        found = pretrained.get(kind)
        return f"{found.get('name')} ({found.get('source')})" if found else "none installed"

    text_modes = {"tfidf": "word n-grams (tfidf_ngram_max) and character n-grams (tfidf_char_ngram_max)",
                  "pretrained": f"sentence embeddings from {named('text')}"}
    if pretrained.get("text"):
        text_modes["tokens"] = ("its token ids (token_length), for a custom_nn track that fine-tunes the encoder: the "
                                "track's nn.backbone is {modality: 'text'} with the text_encoder's name, ref, loader, dim and "
                                "input; slow without a GPU")
    return {"text_mode": text_modes,
            "image_mode": {"pixels": "resized pixels (image_size, image_channels) and per-image statistics",
                           "pretrained": f"backbone features from {named('image')}"},
            "gpus": (f"{gpus:g} GPU(s) for the pretrained and custom_nn tracks" if gpus else
                     "none: every track runs on CPUs (a network trains slowly; encoders embed at CPU speed)")}
