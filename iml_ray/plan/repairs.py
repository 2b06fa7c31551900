"""The rules ErrorAnalyzer and Debugger.

The analyser localises a failure (prep | model | contract | resources) from the
sandbox status, the traceback and the contract violations. The debugger repairs
what it recognises by re-planning the failing module with smaller or safer
settings, one escalation step per round; what it cannot repair it says so.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Literal

from iml_ray.blueprint import Blame, ModuleRole, PrepPlan, TrackPlan, TrainPlan


@dataclass(frozen=True)
class Failure:
    """What went wrong in one round, as the runner observed it."""

    stage: Literal["prep_probe", "assemble", "pipeline", "verify"]
    status: str                   # sandbox status, or "invalid" for verification failures
    message: str                  # one line
    stderr_tail: str = ""
    violations: tuple[str, ...] = ()
    failing_section: Literal["prep", "model", "runner"] | None = None   # from the traceback's line numbers


@dataclass(frozen=True)
class Diagnosis:
    blamed: Blame        # the rules say "contract"; the LLM says which side of it
    kind: Literal["timeout", "memory", "disk", "dtype", "shape", "nonfinite", "lightgbm", "linear", "unknown", "output"]
    explanation: str
    by: Literal["rules", "llm"] = "rules"  # who localised it

    def module(self, failing_section: str | None = None, stage: str = "") -> str:
        """The module to change: "prep" or "model"."""
        if self.blamed in ("prep", "contract_fulfilment"):
            return "prep"
        if self.blamed in ("model", "contract_usage"):
            return "model"
        if failing_section in ("prep", "model"):
            return failing_section
        return "prep" if stage == "prep_probe" else "model"


@dataclass(frozen=True)
class Plans:
    prep: PrepPlan
    track: TrackPlan
    train: TrainPlan

    def to_json(self) -> dict:
        return {"prep": self.prep.to_json(), "track": self.track.to_json(), "train": asdict(self.train)}

    def with_threads(self, threads: int) -> Plans:
        """The same plans, their models run on `threads` threads (LightGBM's num_threads, torch's, ...)."""
        return self if self.track.num_threads == threads else Plans(self.prep, self.track.replace(num_threads=threads),
                                                                    self.train)


@dataclass(frozen=True)
class Repair:
    plans: Plans
    module: ModuleRole
    change: str          # what changed, for people


# The smallest input side a pretrained image encoder is given (the planner's halving and the Debugger's stop here).
ENCODER_FLOOR_SIDE = 64


def image_encoder_side(prep: PrepPlan) -> int:
    """The pretrained image encoder's input side; 0 when the images are not read by one."""
    return int((prep.image_encoder or {}).get("input", {}).get("size", 0)) if prep.image_mode == "pretrained" else 0


DTYPE = re.compile(r"could not convert string to float|invalid literal for int|Cannot cast|DTypePromotionError|"
                   r"unsupported operand type|must be real number|not supported between instances|dtype", re.IGNORECASE)
SHAPE = re.compile(r"shape|dimension mismatch|features, but|inconsistent numbers of samples|index \d+ is out of bounds|"
                   r"Length mismatch|Wrong number of items", re.IGNORECASE)
NONFINITE = re.compile(r"Input (X )?contains (NaN|infinity)|NaN/inf|infinit", re.IGNORECASE)
MEMORY = re.compile(r"MemoryError|std::bad_alloc|Unable to allocate|Cannot allocate memory|out of memory", re.IGNORECASE)


def diagnose(failure: Failure) -> Diagnosis:
    text = "\n".join([failure.message, failure.stderr_tail, *failure.violations])
    if failure.status == "timeout":
        return Diagnosis("resources", "timeout", failure.message)
    if failure.status == "memory" or MEMORY.search(text):
        return Diagnosis("resources", "memory", failure.message)
    if failure.status == "disk_limit":
        return Diagnosis("resources", "disk", failure.message)
    if failure.status == "output_limit":
        return Diagnosis("model" if failure.failing_section == "model" else "prep", "output", failure.message)
    section = failure.failing_section or ("prep" if failure.stage == "prep_probe" else None)
    if "lightgbm" in failure.stderr_tail.lower() and section in (None, "model"):
        return Diagnosis("model", "lightgbm", "LightGBM failed: " + failure.message)
    if NONFINITE.search(text):
        return Diagnosis("prep" if section != "model" else "model", "nonfinite", failure.message)
    if DTYPE.search(text):
        return Diagnosis("prep" if section != "model" else "model", "dtype", failure.message)
    if SHAPE.search(text) or failure.violations:
        blamed = "contract" if failure.stage == "verify" or failure.violations else (section or "prep")
        return Diagnosis(blamed, "shape", failure.message)
    if section == "model" and re.search(r"sklearn|LogisticRegression|Ridge", failure.stderr_tail):
        return Diagnosis("model", "linear", failure.message)
    return Diagnosis(section or "prep", "unknown", failure.message)


def repair(diagnosis: Diagnosis, plans: Plans, n_rows: int, stage: str = "") -> Repair | None:
    """The next escalation step for this kind of failure, or None when none is left.
    stage: the Failure's; a prep check out of time or memory is repaired in the preprocessing only."""
    in_prep = stage == "prep_probe"
    steps = {
        "timeout": _resource_steps(plans, n_rows, memory=False, prep_only=in_prep),
        "memory": _resource_steps(plans, n_rows, memory=True, prep_only=in_prep),
        "dtype": _prep_safety_steps(plans),
        "nonfinite": _prep_safety_steps(plans),
        "shape": _prep_safety_steps(plans),
        "unknown": _prep_safety_steps(plans) + _model_safety_steps(plans),
        "lightgbm": _model_safety_steps(plans),
        "linear": _model_safety_steps(plans, drop="linear"),
        "output": [],
        "disk": [],
    }[diagnosis.kind]
    for step in steps:
        if step is not None and step.plans != plans:
            return step
    return None


def _resource_steps(plans: Plans, n_rows: int, memory: bool, prep_only: bool = False) -> list[Repair | None]:
    """prep_only: the prep check ran out: it fits and transforms every train and test row and no model, so a
    smaller model or a row sample cannot shorten it (with nothing left to shrink in the preprocessing the track
    stops and its CPUs go to the others)."""
    prep, track, train = plans.prep, plans.track, plans.train
    lgb = dict(track.lightgbm)
    steps: list[Repair | None] = []
    if track.model_template == "custom_nn" and not prep_only:
        steps += _network_steps(plans, memory)
    encoder_side = image_encoder_side(prep)
    if encoder_side > ENCODER_FLOOR_SIDE:
        # The backbone's cost grows with the square of its input side.
        side = max(ENCODER_FLOOR_SIDE, encoder_side // 2 // 32 * 32)
        encoder = {**prep.image_encoder, "input": {**prep.image_encoder["input"], "size": side}}
        steps.append(Repair(Plans(prep.replace(image_encoder=encoder), track, train), "prep",
                            f"image encoder input {encoder_side} → {side} pixels"))
    if prep.image and prep.image_size[0] > 16 and (memory or prep.image_mode == "pixels"):
        side = max(16, prep.image_size[0] // 2)
        steps.append(Repair(Plans(prep.replace(image_size=(side, side)), track, train), "prep",
                            f"images {prep.image_size[0]}x{prep.image_size[1]} → {side}x{side} pixels"))
    if memory and (prep.text_mode == "pretrained" or prep.image_mode == "pretrained") and prep.encoder_batch_size > 4:
        steps.append(Repair(Plans(prep.replace(encoder_batch_size=prep.encoder_batch_size // 4), track, train), "prep",
                            f"encoder batches of {prep.encoder_batch_size} → {prep.encoder_batch_size // 4}"))
    if prep_only:
        return steps + [_smaller_vocabulary(plans)]
    if memory:
        steps.append(_smaller_vocabulary(plans))
        if lgb.get("max_bin", 255) > 63:
            steps.append(Repair(Plans(prep, track.replace(lightgbm={**lgb, "max_bin": 63}), train), "model",
                                f"LightGBM histograms {lgb.get('max_bin', 255)} → 63 bins"))
    else:
        rate = float(lgb.get("learning_rate", 0.05))
        if rate < 0.2 or int(lgb.get("max_rounds", 3000)) > 500:
            faster = {**lgb, "learning_rate": min(0.3, rate * 2.5), "max_rounds": max(300, int(lgb.get("max_rounds", 3000)) // 3),
                      "early_stopping_rounds": 30}
            grid_key = "c_grid" if track.linear.get("c_grid") is not None or "alpha_grid" not in track.linear else "alpha_grid"
            linear = {**track.linear, grid_key: [1.0 if grid_key == "c_grid" else 10.0]}
            steps.append(Repair(Plans(prep, track.replace(lightgbm=faster, linear=linear), train), "model",
                                f"LightGBM learning rate {rate} → {faster['learning_rate']}, "
                                f"at most {faster['max_rounds']} rounds; "
                                "one linear setting instead of a grid"))
        steps.append(_smaller_vocabulary(plans))
    current = train.max_train_rows or n_rows
    for cap in (current // 2, current // 4, current // 8):
        if cap >= 1000 and cap < current:
            steps.append(Repair(Plans(prep, track, train.replace(max_train_rows=cap)), "model",
                                f"train on a seeded sample of {cap} rows instead of {current}"))
            break
    if len(track.models) > 1:
        keep = "linear" if prep.text else "lightgbm"
        steps.append(Repair(Plans(prep, track.replace(models=(keep,)), train), "model", f"fit {keep} only"))
    return steps


def _smaller_vocabulary(plans: Plans) -> Repair | None:
    """A quarter of the TF-IDF vocabulary (at least 5000 terms), unigrams only; None when there is no TF-IDF text to
    shrink (a pretrained encoder's or a fine-tuned network's text has no vocabulary of ours)."""
    prep = plans.prep
    if not prep.text or prep.text_mode != "tfidf" or prep.tfidf_max_features <= 5000:
        return None
    new = prep.replace(tfidf_max_features=max(5000, prep.tfidf_max_features // 4), tfidf_ngram_max=1)
    return Repair(Plans(new, plans.track, plans.train), "prep",
                  f"TF-IDF vocabulary {prep.tfidf_max_features} → {new.tfidf_max_features} terms, unigrams only")


def _network_steps(plans: Plans, memory: bool) -> list[Repair | None]:
    prep, track, train = plans.prep, plans.track, plans.train
    nn = dict(track.nn)
    if memory:
        batch = int(nn.get("batch_size", 256))
        return [Repair(Plans(prep, track.replace(nn={**nn, "batch_size": batch // 4}), train), "model",
                       f"network batches of {batch} → {batch // 4} rows")] if batch >= 32 else []
    limit = nn.get("time_limit_s")
    if limit and limit > 10:
        return [Repair(Plans(prep, track.replace(nn={**nn, "time_limit_s": round(limit / 2, 1)}), train), "model",
                       f"network training time limit {limit} s → {round(limit / 2, 1)} s")]
    return []


def _prep_safety_steps(plans: Plans) -> list[Repair | None]:
    prep, track, train = plans.prep, plans.track, plans.train
    steps: list[Repair | None] = []
    if prep.numeric:
        steps.append(Repair(Plans(prep.replace(numeric=(), numeric_coerce=prep.numeric_coerce + prep.numeric), track, train),
                            "prep", "coerce every numeric column with to_numeric(errors='coerce')"))
    if prep.datetime or prep.text:
        dropped = dict(prep.dropped)
        dropped.update({c: "dropped by the Debugger after a preprocessing failure" for c in prep.datetime + prep.text})
        new = prep.replace(datetime=(), text=(), categorical=prep.categorical, dropped=dropped)
        steps.append(Repair(Plans(new, track, train), "prep", f"drop date/text columns {list(prep.datetime + prep.text)}"))
    if prep.categorical and prep.frequency_encoding:
        steps.append(Repair(Plans(prep.replace(frequency_encoding=False), track, train), "prep", "no frequency encoding"))
    return steps


def _model_safety_steps(plans: Plans, drop: str = "lightgbm") -> list[Repair | None]:
    prep, track, train = plans.prep, plans.track, plans.train
    remaining = tuple(m for m in track.models if m != drop)
    if remaining and remaining != track.models:
        return [Repair(Plans(prep, track.replace(models=remaining), train), "model", f"drop {drop}; fit {', '.join(remaining)}")]
    return []
