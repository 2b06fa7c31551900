"""The plan of a run and what comes out of it, as frozen dataclasses ⇄ JSON.

Blueprint <prep, model (tracks), train, eval> and the InterfaceContract between
the preprocessing module and the model modules are written by the
GuidelineAgent; a Candidate is one track's verified (or failed) attempt.
Each lands in the run directory as JSON, so a run can be read, resumed, diffed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

# What a failed round is blamed on: a module, the contract between them (the ErrorAnalyzer's LLM step says
# which side: the prep's fulfilment or the model's usage), or the resources it ran out of.
Blame = Literal["prep", "model", "contract", "contract_fulfilment", "contract_usage", "resources"]
# The two modules of a pipeline that are written (the runner is the framework's).
ModuleRole = Literal["prep", "model"]


def _tuples_to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_tuples_to_lists(v) for v in value]
    if isinstance(value, list):
        return [_tuples_to_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _tuples_to_lists(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class PrepPlan:
    """Which columns become which features, and the knobs of each transformation."""

    numeric: tuple[str, ...] = ()
    numeric_coerce: tuple[str, ...] = ()     # strings that parse as numbers ('?' etc. become missing)
    categorical: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    datetime: tuple[str, ...] = ()
    dropped: dict[str, str] = field(default_factory=dict)   # column → why
    # numeric column → {"transform": "log1p", "why": ...}: log1p keeps the sign (sign(x) * log1p(|x|)), for skewed
    # counts and amounts that a linear model or a network reads better on a log scale (trees do not mind)
    column_transforms: dict[str, dict[str, str]] = field(default_factory=dict)
    missing_indicators: bool = True
    max_categories: int = 200
    min_category_count: int = 2
    frequency_encoding: bool = False
    tfidf_max_features: int = 20000
    tfidf_ngram_max: int = 2
    tfidf_min_df: int = 2
    tfidf_char_ngram_max: int = 0       # > 0: character n-grams (2..this, within words) beside the word terms
    text_clean: bool = False            # decode literal escapes and HTML entities, drop tags, links as ' url '
    # > 0 (TF-IDF text): each text column's length in characters and words and its this many most frequent words
    # (not stop words) as dense columns, which trees see (they do not see the TF-IDF block)
    text_tree_terms: int = 0
    datetime_parts: tuple[str, ...] = ("year", "month", "day", "day_of_week", "day_of_year", "hour", "elapsed_days")
    # pretrained: the encoder's sentence embeddings; tokens: its token ids, for a network that fine-tunes it
    text_mode: Literal["tfidf", "pretrained", "tokens"] = "tfidf"
    text_encoder: dict[str, Any] = field(default_factory=dict)     # PretrainedModel JSON when pretrained or tokens
    token_length: int = 128                   # tokens: ids per text, cut or padded to this
    image: tuple[str, ...] = ()               # ImageSource names: columns of absolute image paths
    image_mode: Literal["pixels", "pretrained"] = "pixels"   # pixels: resized, scaled to [0, 1]; pretrained: backbone features
    image_size: tuple[int, int] = (28, 28)    # (height, width) of the pixel block
    image_channels: int = 1
    image_stats: bool = False                 # per-channel mean/std/min/max and the original size as dense columns
    image_encoder: dict[str, Any] = field(default_factory=dict)    # PretrainedModel JSON when pretrained
    encoder_batch_size: int = 32
    audio: tuple[str, ...] = ()               # AudioSource names: columns of absolute clip paths
    # stats: per-band log-mel summaries and MFCCs as dense columns; spectrogram: the log-mel image as the
    # image block (a CNN's input; only without pixel images)
    audio_mode: Literal["stats", "spectrogram"] = "stats"
    audio_rate: int = 16000                   # clips are resampled to this rate (Hz), mono
    audio_seconds: float = 5.0                # and cut or zero-padded to this length
    audio_mels: int = 40
    audio_frames: int = 64                    # the spectrogram's time steps (averaged windows)

    def replace(self, **changes: Any) -> "PrepPlan":
        return dataclasses.replace(self, **changes)

    def with_changes(self, changes: dict[str, Any]) -> "PrepPlan":
        """This plan with a track's prep_changes (JSON lists as tuples)."""
        return self.replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()})

    @property
    def used_columns(self) -> tuple[str, ...]:
        return self.numeric + self.numeric_coerce + self.categorical + self.text + self.datetime + self.image + self.audio

    def to_json(self) -> dict:
        return _tuples_to_lists(asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> "PrepPlan":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class TrackPlan:
    """One modelling track: which models, with which settings."""

    track: str
    models: tuple[str, ...] = ("lightgbm", "linear")
    lightgbm: dict[str, Any] = field(default_factory=dict)
    linear: dict[str, Any] = field(default_factory=dict)
    class_weight: str | None = None
    target_transform: str | None = None       # "log1p" for RMSLE
    clip_min: float | None = None
    num_threads: int = 1
    reasons: tuple[str, ...] = ()
    # The model module's template; "prior" only for the fallback track.
    model_template: Literal["traditional", "custom_nn", "prior"] = "traditional"
    prep_changes: dict[str, Any] = field(default_factory=dict)   # this track's changes to the shared PrepPlan
    nn: dict[str, Any] = field(default_factory=dict)             # custom_nn settings (layers, epochs, time limit ...)
    # Ray Tune search: {"space": {name: [kind, ...]}, "max_steps": ASHA's rungs, "grace_steps": ...}
    tune: dict[str, Any] = field(default_factory=dict)
    bagging_folds: int = 0          # traditional: k models per family on k folds, averaged (0: one inner split)
    bagging_repeats: int = 1        # traditional, bagged: the k folds drawn on this many shuffles of the rows
    # traditional: settings of the families beyond LightGBM and the linear model, by name (catboost: {depth: 8}, ...)
    families: dict[str, dict[str, Any]] = field(default_factory=dict)
    # > 0: too costly to start beside the other tracks, the track waits for them and starts on the CPUs they free,
    # when its encoding (this many seconds on one idle thread) fits a share of the time then left (track/waiting.py)
    deferred_encode_s: float = 0.0

    def replace(self, **changes: Any) -> "TrackPlan":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        return _tuples_to_lists(asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> "TrackPlan":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def pipeline_fits(holdout_folds: int) -> int:
    """The fits a validated pipeline makes: the validation fit and the final one, or k under k folds (the fold
    fits' average is the submission)."""
    return holdout_folds if holdout_folds else 2


@dataclass(frozen=True)
class TrainPlan:
    seed: int = 0
    holdout_fraction: float = 0.2
    holdout_folds: int = 0          # k >= 2: a small table is validated by k folds, every labelled row held out once
    stratified: bool = True
    inner_valid_fraction: float = 0.15
    max_train_rows: int | None = None          # subsample cap, lowered by the Debugger on resource failures
    # > 0: the final fit (the submission's) refits what the validation chose on up to this many rows while the
    # validation fit keeps max_train_rows; set by the final_rows improvement of a sampled track (plan/final_rows.py)
    final_train_rows: int = 0

    def replace(self, **changes: Any) -> "TrainPlan":
        return dataclasses.replace(self, **changes)

    @property
    def pipeline_fits(self) -> int:
        return pipeline_fits(self.holdout_folds)


@dataclass(frozen=True)
class EvalPlan:
    metric: str
    higher_is_better: bool
    submission_kind: str


@dataclass(frozen=True)
class Blueprint:
    prep: PrepPlan
    tracks: tuple[TrackPlan, ...]
    train: TrainPlan
    eval: EvalPlan
    cards: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def track(self, name: str) -> TrackPlan:
        return next(t for t in self.tracks if t.track == name)

    def prep_for(self, name: str) -> PrepPlan:
        """The shared PrepPlan with the track's own changes (image size, encoders, ...)."""
        return self.prep.with_changes(self.track(name).prep_changes)

    def to_json(self) -> dict:
        return {
            "prep": self.prep.to_json(),
            "tracks": [t.to_json() for t in self.tracks],
            "train": asdict(self.train),
            "eval": asdict(self.eval),
            "cards": list(self.cards),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Blueprint":
        return cls(
            prep=PrepPlan.from_json(data["prep"]),
            tracks=tuple(TrackPlan.from_json(t) for t in data["tracks"]),
            train=TrainPlan(**data["train"]),
            eval=EvalPlan(**data["eval"]),
            cards=tuple(data.get("cards", ())),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class InterfaceContract:
    """What the preprocessing module promises the model modules, checked at run time."""

    input_columns: tuple[str, ...]
    n_train_rows: int
    n_test_rows: int
    prep_class: str = "Preprocessor"
    prep_api: tuple[str, ...] = ("fit(frame: DataFrame) -> self", "transform(frame: DataFrame) -> matrix",
                                 "layout_: {n_features, categorical: [int], embedding: [start, end] | None, "
                                 "image: {start, shape: [C, H, W]} | None, text: [start, end] | None}")
    matrix: str = "float32 numpy.ndarray or scipy.sparse CSR, one row per input row, same order"
    finite: bool = True                        # no NaN or inf anywhere in the matrix
    model_api: tuple[str, ...] = ("fit_model(X, y, layout) -> model", "predict_model(model, X) -> ndarray",
                                  "describe_model(model) -> dict")
    target_encoding: str = "class index 0..k-1 in `classes` order"   # or "float" for regression
    classes: tuple[Any, ...] = ()
    prediction: str = "n × k class probabilities"                    # or "n values"

    def to_json(self) -> dict:
        return _tuples_to_lists(asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> "InterfaceContract":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class RepairRound:
    """One execution of a candidate and, when it failed, what was changed for the next."""

    round: int
    status: str                 # sandbox status, or "invalid" when verification failed
    wall_s: float
    failure: str | None = None  # one line
    blamed: Blame | None = None
    diagnosis: str | None = None
    change: str | None = None   # what the Debugger changed for the next round
    diff_file: str | None = None
    module: ModuleRole | None = None   # the module that change touched
    score: float | None = None         # the framework's validation score, when the round verified
    step: str | None = None            # an improvement round's step (plan/improvements.py); None: draft or repair
    kept: bool | None = None           # an improvement round: did its candidate replace the track's best?
    threads: int | None = None         # the round's threads, when more than the track's own (its peers had finished)
    author: str | None = None          # who wrote the modules it ran: "rules", "llm" or "prep: llm, model: rules"
    within_noise: bool = False         # scored better but not kept: its gain was within the validation rows' noise


@dataclass(frozen=True)
class Candidate:
    """One track's attempt: where its code is and how the framework scored it."""

    track: str
    code_dir: str
    # "not_run": a track that waited for others' CPUs (track/waiting.py) and had no time left to start
    status: Literal["verified", "failed", "not_run"]
    metric: str
    valid_score: float | None = None  # computed by the Evaluator, never parsed from stdout
    aps: float = 0.0
    repair_rounds: int = 0
    rounds: tuple[RepairRound, ...] = ()
    failure: str | None = None
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    pipeline_path: str | None = None
    submission_path: str | None = None
    details: dict[str, Any] = field(default_factory=dict)   # informational output of the run (never used for ranking)
    started_at: float = 0.0           # epoch seconds: with finished_at, shows which tracks overlapped
    finished_at: float = 0.0
    resources: dict[str, Any] = field(default_factory=dict)  # what the track asked Ray for

    def to_json(self) -> dict:
        data = asdict(self)
        data["rounds"] = [asdict(r) for r in self.rounds]
        return data

    def within_noise_rounds(self) -> tuple[RepairRound, ...]:
        """The verified rounds the track could not tell from its best: better on the validation rows when they ran,
        but by less than the rows' noise, so the track went on from its best (a blend may still want them)."""
        return tuple(r for r in self.rounds if r.within_noise and r.status == "ok" and r.score is not None)

    def round_pipeline(self, number: int) -> Path:
        """Where the track writes the standalone pipeline of one of its within_noise_rounds(), beside its own."""
        own = Path(self.pipeline_path or f"pipeline_{self.track}.py")
        return Path(self.code_dir) / f"{own.stem}.round_{number}.py"

    @classmethod
    def from_json(cls, data: dict) -> "Candidate":
        data = dict(data)
        data["rounds"] = tuple(RepairRound(**r) for r in data.get("rounds", ()))
        return cls(**data)
