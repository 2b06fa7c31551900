"""The rules GuidelineAgent: a Blueprint and an InterfaceContract from the profile and the cards."""
from __future__ import annotations

import math

from iml_ray.blueprint import Blueprint, EvalPlan, InterfaceContract, PrepPlan, TrackPlan, TrainPlan, pipeline_fits
from iml_ray.metrics.labels import class_sort_key
from iml_ray.metrics.registry import get_metric, quantile_level
from iml_ray.plan.encoding_cost import ENCODE_BUDGET_SHARE, encoding_seconds, fit_encoders_to_budget
from iml_ray.plan.first_fit import lightgbm_time_limit, sample_for_budget
from iml_ray.plan.knowledge import Knowledge
from iml_ray.scoring.evaluate import validation_folds
from iml_ray.task.files import TaskSummary
from iml_ray.task.profile import Profile

PREP_KNOBS = {"max_categories", "min_category_count", "frequency_encoding", "tfidf_max_features", "tfidf_ngram_max",
              "tfidf_min_df", "tfidf_char_ngram_max", "text_clean", "missing_indicators", "datetime_parts",
              "text_tree_terms"}


def make_blueprint(summary: TaskSummary, profile: Profile, knowledge: Knowledge, tracks: tuple[str, ...],
                   seed: int, holdout_fraction: float, num_threads: int, time_budget_s: float | None = None,
                   pretrained: dict[str, dict | None] | None = None, cpus: float | None = None,
                   gpus: float = 0.0, alone_cpus: float | None = None) -> Blueprint:
    """pretrained: modality → PretrainedModel JSON the retriever found (None: nothing usable); cpus, gpus: what
    each track holds (a share of a CPU when tracks outnumber CPUs), which the encoders' cost depends on;
    alone_cpus: what a track that waits for the others gets when they stop (None: no track waits for its cost)."""
    settings = knowledge.settings()
    prep = plan_prep(summary, profile, settings.get("prep", {}), time_budget_s)
    notes = []
    track_plans = []
    for track in tracks:
        plan, note = plan_track(track, summary, profile, prep, settings, num_threads, time_budget_s, pretrained or {},
                                cpus, gpus, alone_cpus)
        if plan is not None:
            track_plans.append(plan)
        if note:
            notes.append(note)
    folds = validation_folds(summary)
    max_rows = None
    if time_budget_s:
        # The first fit must surely finish: the costliest track's prep sizes the sample (a track that has time
        # left grows it, plan/improvements.py).
        n_classes = len(summary.submission.classes) if summary.problem_type == "multiclass" else 1
        # A track that waits for the others' CPUs does not size the sample the others fit at the start.
        preps = [prep.with_changes(t.prep_changes) for t in track_plans
                 if t.model_template == "traditional" and not t.deferred_encode_s] or [prep]

        text_chars = {c.name: c.mean_length for c in profile.columns if c.role == "text"}

        def sample(fits: int) -> tuple[int | None, str | None]:
            sampled = [sample_for_budget(p, profile.n_train, num_threads, time_budget_s, len(summary.all_targets),
                                         n_classes, fits=fits, text_chars=text_chars) for p in preps]
            return min(sampled, key=lambda s: s[0] or profile.n_train + 1)

        max_rows, note = sample(pipeline_fits(folds))
        if folds and max_rows is not None:
            # Fitting on every row matters more than validating on every row: k folds that would force a sample
            # (long texts, a short budget) give way to the holdout.
            folds = 0
            max_rows, note = sample(pipeline_fits(0))
            notes.append("validated on a holdout, not k folds: k fits of most rows would not fit the first "
                         "round's share of the budget")
        if note:
            notes.append(note)
    if folds:
        # A network's time limit is per fit, sized for two (validation, final): k folds make k.
        track_plans = [_per_fit_limit(t, pipeline_fits(0) / pipeline_fits(folds)) for t in track_plans]
    if time_budget_s:
        track_plans = [_lightgbm_limit(t, time_budget_s, pipeline_fits(folds)) for t in track_plans]
    train = TrainPlan(seed=seed, holdout_fraction=holdout_fraction, holdout_folds=folds,
                      stratified=summary.problem_type != "regression",
                      inner_valid_fraction=float(settings.get("train", {}).get("inner_valid_fraction", 0.15)),
                      max_train_rows=max_rows)
    metric = get_metric(summary.metric)
    return Blueprint(prep=prep, tracks=tuple(track_plans), train=train,
                     eval=EvalPlan(metric.name, metric.higher_is_better, summary.submission.kind),
                     cards=tuple(knowledge.card_ids), notes=tuple(notes))


def _lightgbm_limit(plan: TrackPlan, time_budget_s: float, fits: int) -> TrackPlan:
    if plan.model_template != "traditional" or "lightgbm" not in plan.models or "time_limit_s" in plan.lightgbm:
        return plan
    limit = lightgbm_time_limit(time_budget_s, fits)
    return plan.replace(lightgbm={**plan.lightgbm, "time_limit_s": limit},
                        reasons=plan.reasons + (f"the first round's early-stopped LightGBM fits stop at {limit:g} s "
                                                "each (a later round lets a stopped fit train longer)",))


def _per_fit_limit(plan: TrackPlan, scale: float) -> TrackPlan:
    limit = plan.nn.get("time_limit_s")
    if plan.model_template != "custom_nn" or not limit:
        return plan
    return plan.replace(nn={**plan.nn, "time_limit_s": round(float(limit) * scale, 1)})


def plan_prep(summary: TaskSummary, profile: Profile, knobs: dict, time_budget_s: float | None = None) -> PrepPlan:
    groups: dict[str, list[str]] = {"numeric": [], "numeric_coerce": [], "categorical": [], "text": [], "datetime": []}
    dropped: dict[str, str] = {}
    for column in profile.columns:
        if column.name not in summary.feature_columns:
            continue
        role = column.role
        if role == "numeric":
            key = "numeric" if _is_numeric_dtype(column.dtype) else "numeric_coerce"
            groups[key].append(column.name)
        elif role in groups:
            groups[role].append(column.name)
        elif role == "id":
            dropped[column.name] = f"an identifier ({column.why}); it carries no signal"
        elif role == "constant":
            dropped[column.name] = "constant in train"
        elif role == "path":
            dropped[column.name] = "file paths: the traditional track does not read files"
    for column in summary.dropped_columns:
        dropped[column] = "in train but not in test"
    extra = {k: (tuple(v) if isinstance(v, list) else v) for k, v in knobs.items() if k in PREP_KNOBS}
    images = [i for i in profile.images if i.n_checked > i.n_unreadable]
    if images:
        for source in summary.images:
            if source.column in dropped or source.column in summary.feature_columns:
                dropped[source.column] = f"names image files: read as images through {source.name}"
        channels = max(i.channels for i in images)
        side = max(max(i.max_width, i.max_height) for i in images)
        # Trees and linear models take the pixels themselves only when there are few of them;
        # on a short budget fewer still (LightGBM at 28x28 on MNIST took the whole of a 90 s run).
        full = not time_budget_s or time_budget_s >= FULL_PIXELS_MIN_BUDGET_S
        largest = TRADITIONAL_MAX_IMAGE_SIDE if full else TRADITIONAL_SMALL_SIDE
        side = side if side <= largest else TRADITIONAL_SMALL_SIDE
        extra.update(image=tuple(i.name for i in images), image_mode="pixels", image_size=(side, side),
                     image_channels=channels, image_stats=True)
    clips = [a for a in profile.audio if a.n_checked > a.n_unreadable]
    if clips:
        for source in summary.audio:
            if source.column in dropped or source.column in summary.feature_columns:
                dropped[source.column] = f"names audio clips: read as audio through {source.name}"
        extra.update(audio=tuple(a.name for a in clips), audio_mode="stats", **audio_settings(clips))
    return PrepPlan(**{k: tuple(v) for k, v in groups.items()}, dropped=dropped, **extra)


# Clips are read at most this long (from their start) and at most this rate: 16 kHz keeps what speech, birds and
# instruments are told apart by, at a third of 48 kHz's cost.
AUDIO_MAX_SECONDS = 10.0
AUDIO_MAX_RATE = 16000


def audio_settings(clips) -> dict:
    """Rate and length from the sampled clips: their highest rate up to 16 kHz, their longest length up to 10 s."""
    rate = min(AUDIO_MAX_RATE, max(a.max_rate for a in clips))
    seconds = min(AUDIO_MAX_SECONDS, max(0.25, max(a.max_seconds for a in clips)))
    return {"audio_rate": int(rate), "audio_seconds": round(seconds, 3)}


TRADITIONAL_MAX_IMAGE_SIDE = 32
TRADITIONAL_SMALL_SIDE = 16
FULL_PIXELS_MIN_BUDGET_S = 300.0


def plan_track(track: str, summary: TaskSummary, profile: Profile, prep: PrepPlan, settings: dict, num_threads: int,
               time_budget_s: float | None, pretrained: dict[str, dict | None], cpus: float | None = None,
               gpus: float = 0.0, alone_cpus: float | None = None) -> tuple[TrackPlan | None, str | None]:
    """The track's plan, or None and the reason it does not apply to this task (a plan may come with a note too).
    alone_cpus: the CPUs a track would have once the others have stopped (None: never more than `cpus`)."""
    lightgbm = dict(settings.get("lightgbm", {}))
    linear = dict(settings.get("linear", {}))
    model = settings.get("model", {})
    target = settings.get("target", {})
    models = ["lightgbm"]
    if linear.pop("enabled", True):
        models.append("linear")
    reasons = [f"objective from the problem type: {summary.problem_type}"]
    if target.get("transform"):
        reasons.append(f"target transform {target['transform']} for metric {summary.metric}")
    if quantile_level(summary.unit_metric) is not None:
        reasons.append(f"pinball loss at {quantile_level(summary.unit_metric):g}: quantile objectives for the boosted "
                       "models and the network; the linear model moved by its residuals' quantile")
    if model.get("class_weight"):
        reasons.append(f"class weights {model['class_weight']} (imbalance {profile.target.imbalance_ratio}:1)")
    common = dict(track=track, class_weight=model.get("class_weight"), target_transform=target.get("transform"),
                  clip_min=target.get("clip_min"), num_threads=max(1, num_threads))
    # The family's settings in a tree track's plan make it one an improvement round may add (plan/improvements.py);
    # a target the track fits on log1p already has no second log to take.
    families = ({"lightgbm_log": dict(settings["lightgbm_log"])}
                if "lightgbm_log" in settings and not target.get("transform") else {})
    n_classes = len(summary.submission.classes) if summary.problem_type == "multiclass" else 1
    if n_classes > 2:
        # LightGBM grows one tree per class per round: fewer, bolder rounds keep k classes affordable.
        lightgbm["learning_rate"] = max(float(lightgbm.get("learning_rate", 0.05)), 0.1)
        lightgbm["max_rounds"] = min(int(lightgbm.get("max_rounds", 3000)), 1000)
        lightgbm["early_stopping_rounds"] = min(int(lightgbm.get("early_stopping_rounds", 100)), 50)
        reasons.append(f"{n_classes} classes: LightGBM learning rate {lightgbm['learning_rate']}, at most "
                       f"{lightgbm['max_rounds']} rounds")
    if track == "traditional":
        if prep.image:
            reasons.append(f"images as {prep.image_size[0]}x{prep.image_size[1]} pixels and per-image statistics")
            # Hundreds of pixel columns of a few hundred levels each: half of them per tree and 63 bins
            # halve the cost of a tree and lose little (neighbouring pixels say much the same).
            lightgbm.setdefault("feature_fraction", 0.5)
            lightgbm["max_bin"] = min(int(lightgbm.get("max_bin", 255)), 63)     # also under a large table's 1,023
            reasons.append("LightGBM on pixels: half the columns per tree, 63 bins")
        if prep.audio:
            reasons.append(f"clips as log-mel statistics ({prep.audio_mels} bands) and MFCCs, the first "
                           f"{prep.audio_seconds:g} s at {prep.audio_rate} Hz")
        tune = lightgbm_search(prep)
        if tune:
            reasons.append("LightGBM tuned with Ray Tune (Optuna + ASHA) on the inner split")
        return TrackPlan(models=tuple(models), lightgbm=lightgbm, linear=linear, reasons=tuple(reasons), tune=tune,
                         families=families, **common), None
    if track == "pretrained":
        changes: dict = {}
        if prep.text and pretrained.get("text"):
            changes.update(text_mode="pretrained", text_encoder=pretrained["text"])
        if prep.image and pretrained.get("image"):
            changes.update(image_mode="pretrained", image_encoder=encoder_for_images(pretrained["image"], profile, prep),
                           image_stats=False)
        if not changes:
            if prep.audio and not prep.text and not prep.image:
                return None, ("track pretrained skipped: no pretrained audio encoder is installed (the traditional and "
                              "custom_nn tracks read the clips)")
            if not prep.text and not prep.image:
                return None, "track pretrained skipped: no text or image columns for a pretrained encoder"
            return None, "track pretrained skipped: no pretrained checkpoint found on disk for this task's text/images"
        deferred_s, note = 0.0, None
        if time_budget_s:
            changes, deferred_s, note = _fit_encoding(changes, profile, prep, num_threads, time_budget_s, cpus, gpus,
                                                      alone_cpus)
            if note and not deferred_s:
                return None, note
            if deferred_s:
                reasons.append("waits for the other tracks and starts on the CPUs they free: encoding beside them "
                               "would not fit its share of the budget")
        used = []
        if "text_encoder" in changes:
            used.append(f"text → {changes['text_encoder'].get('name')} sentence embeddings, frozen (a later round "
                        "fine-tunes the encoder when the time left allows an epoch of it)")
        if "image_encoder" in changes:
            encoder = changes["image_encoder"]
            used.append(f"images → {encoder.get('name')} features at {encoder.get('input', {}).get('size', '?')} px")
        # Hundreds of dense embedding columns: a tree's cost grows with columns x bins. On 1,797 digit images'
        # 1,280 EfficientNet features (five folds, one thread) 63 bins fitted 2.4x faster than 255 at the same AUC
        # (0.9910 against 0.9906), and half the columns per tree scored 0.9917.
        lightgbm["max_bin"] = min(int(lightgbm.get("max_bin", 255)), EMBEDDING_MAX_BIN)
        lightgbm["feature_fraction"] = min(float(lightgbm.get("feature_fraction", 1.0)), EMBEDDING_FEATURE_FRACTION)
        reasons += used + ["LightGBM and a linear model on the embeddings and the tabular columns (LightGBM with "
                           f"{lightgbm['max_bin']} bins and {lightgbm['feature_fraction']:.0%} of the columns per tree "
                           "on the wide embedding block)"]
        return TrackPlan(models=tuple(models), lightgbm=lightgbm, linear=linear, reasons=tuple(reasons),
                         prep_changes=changes, tune=lightgbm_search(prep.replace(**changes)), families=families,
                         deferred_encode_s=round(deferred_s, 1), **common), note
    if track == "custom_nn":
        changes = {}
        if prep.image:
            size = nn_image_size(profile, prep)
            changes.update(image_size=size, image_stats=False)
            reasons.append(f"a small CNN on {size[0]}x{size[1]} pixels")
        elif prep.audio:
            changes.update(audio_mode="spectrogram")
            reasons.append(f"a small CNN on {prep.audio_mels}x{prep.audio_frames} log-mel spectrograms, shifted in "
                           "time for augmentation")
        if prep.text:
            reasons.append("an embedding bag over the TF-IDF-weighted n-grams")
        reasons.append("an MLP on the tabular columns (category embeddings, BatchNorm, ReLU, Dropout)")
        nn = dict(settings.get("custom_nn", {}))
        cnn = bool(prep.image) or changes.get("audio_mode") == "spectrogram"
        nn.setdefault("batch_size", CNN_CPU_BATCH if cnn and not gpus else nn_batch_size(profile.n_train))
        if changes.get("audio_mode") == "spectrogram":
            nn.setdefault("shift_axes", "time")      # a shift in frequency changes the pitch, and maybe the class
        if time_budget_s:
            # The pipeline trains twice (validation fit, final fit); leave room for a repair.
            nn.setdefault("time_limit_s", round(max(10.0, NN_TRAIN_SHARE * time_budget_s), 1))
        reasons.append("learning rate, width, dropout, weight decay and batch size tuned with Ray Tune (Optuna + ASHA)")
        return TrackPlan(models=("nn",), reasons=tuple(reasons), model_template="custom_nn", prep_changes=changes,
                         nn=nn, tune=network_search(nn), **common), None
    return None, f"track {track} is unknown to the rules policy"


def _fit_encoding(changes: dict, profile: Profile, prep: PrepPlan, num_threads: int, time_budget_s: float,
                  cpus: float | None, gpus: float, alone_cpus: float | None) -> tuple[dict, float, str | None]:
    """The encoders fitted to the budget beside the other tracks; when they cannot fit there but would on the CPUs
    the others free (alone_cpus), fitted to those, with the encoding's seconds on one idle thread (> 0: the track
    waits for the others). A note says why the track is skipped or waits.

    On two cores three tracks share the CPUs and a track's encoding runs at 0.65 of a core: drug_reviews' 888 texts
    (about 84 s so) were skipped at 300 s while the other two tracks stopped 185-220 s before the end."""
    allowed = ENCODE_BUDGET_SHARE * time_budget_s
    fitted, seconds = fit_encoders_to_budget(changes, profile, prep, num_threads, time_budget_s, cpus, gpus)
    if seconds <= allowed:
        return fitted, 0.0, None
    rows = profile.n_train + profile.n_test
    over = f"more than {ENCODE_BUDGET_SHARE:.0%} of the {time_budget_s:.0f} s budget"
    if not alone_cpus or alone_cpus <= (cpus or float(num_threads)) + 1e-9:
        return changes, 0.0, f"track pretrained skipped: encoding {rows} rows would take about {seconds:.0f} s, {over}"
    alone_threads = max(1, int(round(alone_cpus)))
    fitted, alone_s = fit_encoders_to_budget(changes, profile, prep, alone_threads, time_budget_s, alone_cpus, gpus)
    if alone_s > allowed:
        return changes, 0.0, (f"track pretrained skipped: encoding {rows} rows would take about {seconds:.0f} s "
                              f"beside the other tracks and {alone_s:.0f} s even on {alone_cpus:g} CPUs, {over}")
    return fitted, encoding_seconds(fitted, profile, prep, 1, 1.0, gpus), (
        f"track pretrained waits for the other tracks: encoding {rows} rows beside them would take about "
        f"{seconds:.0f} s, {over}, and about {alone_s:.0f} s on the {alone_cpus:g} CPUs they free; it starts when "
        f"they stop, if it then fits {ENCODE_BUDGET_SHARE:.0%} of the time left")


ENCODER_MIN_SIDE = 96
EMBEDDING_MAX_BIN = 63
EMBEDDING_FEATURE_FRACTION = 0.5


def encoder_for_images(encoder: dict, profile: Profile, prep: PrepPlan) -> dict:
    """Small images need no 224-pixel input: four times their side (at least 96, a multiple of 32) keeps
    the backbone's receptive fields meaningful at a quarter of the cost or less."""
    settings = dict(encoder.get("input") or {})
    if "size" not in settings:
        return encoder
    sides = [max(i.max_width, i.max_height) for i in profile.images if i.name in prep.image]
    if not sides:
        return encoder
    wanted = max(ENCODER_MIN_SIDE, int(math.ceil(4 * max(sides) / 32) * 32))
    if wanted >= int(settings["size"]):
        return encoder
    return {**encoder, "input": {**settings, "size": wanted}}


def lightgbm_search(prep: PrepPlan) -> dict:
    """Ray Tune's search over LightGBM's trees at the plan's learning rate; none when the trees see no columns
    (TF-IDF alone goes to the linear model).

    The learning rate is not searched: ASHA compares trials at equal numbers of rounds, where a faster rate leads
    before either converges, so the search chose fast rates and stopped the plan's own rate early (adult at 300 s:
    the 12 best of 68 trials at 0.09-0.21, the plan's 0.05 stopped at 300 rounds; the search's 0.158, halved by a
    later round, then scored better on the holdout). At one rate the rungs compare the trees' shapes; a finer rate
    is a step of its own (plan/improvements.py's finer_boosting).
    """
    dense = (prep.numeric or prep.numeric_coerce or prep.categorical or prep.datetime or prep.image or prep.audio
             or (prep.text and prep.text_mode == "pretrained"))
    if not dense:
        return {}
    return {"space": {"num_leaves": ["logint", 8, 128],
                      "min_child_samples": ["logint", 5, 100], "feature_fraction": ["uniform", 0.4, 1.0],
                      "lambda_l2": ["loguniform", 0.001, 30.0]},
            "max_steps": 20, "grace_steps": 2}


def network_search(nn: dict) -> dict:
    return {"space": {"lr": ["loguniform", 3e-4, 1e-2], "dropout": ["uniform", 0.0, 0.5],
                      "weight_decay": ["loguniform", 1e-6, 1e-2], "hidden": ["choice", ["128-64", "256-128", "512-256"]],
                      "batch_size": ["choice", [64, 128, 256]]},
            "max_steps": int(min(60, nn.get("max_epochs", 200))), "grace_steps": 3}


def nn_batch_size(n_train: int) -> int:
    """About 40 batches per epoch, a power of two in 64..256: a fixed 256 gave a CNN on 2,700
    MNIST rows 11 updates per epoch, and 0.18 accuracy after the 11 s it had on a 90 s budget."""
    inner_rows = max(1.0, n_train * 0.8 * 0.85)
    return int(min(256, max(64, 2 ** round(math.log2(max(inner_rows / 40, 1.0))))))


# A CNN on a CPU trains on batches of 32, whatever the rows: a convolution's cost is per image, so a time limit buys
# as many images at any batch size, and smaller batches make more updates of them. On 1,012 28x28 digits, one
# thread, 10 s: held-out accuracy 0.92 at 16, 0.94 at 32, 0.93 at 64, 0.68 at 128 (the rows' rule gave 128).
CNN_CPU_BATCH = 32
NN_TRAIN_SHARE = 0.15           # of the run's budget one training of the network may take
NN_MAX_IMAGE_SIDE = 64
NN_MAX_PIXEL_BYTES = 1.5e9      # the dense pixel block of all training rows, in float32


def nn_image_size(profile: Profile, prep: PrepPlan) -> tuple[int, int]:
    """The CNN's input side: the images' own size up to 64, halved until the pixel block fits in memory."""
    sizes = [max(i.max_width, i.max_height) for i in profile.images if i.name in prep.image] or [28]
    side = max(8, min(max(sizes), NN_MAX_IMAGE_SIDE))
    channels = prep.image_channels * max(1, len(prep.image))
    while side > 16 and profile.n_train * channels * side * side * 4 > NN_MAX_PIXEL_BYTES:
        side //= 2
    return side, side


def make_contract(summary: TaskSummary, prep: PrepPlan) -> InterfaceContract:
    classification = summary.problem_type != "regression"
    classes = tuple(sorted_classes(summary)) if classification else ()
    return InterfaceContract(
        input_columns=prep.used_columns,
        n_train_rows=summary.n_train,
        n_test_rows=summary.n_test,
        target_encoding="class index 0..k-1 in `classes` order" if classification else "float",
        classes=classes,
        prediction=f"n × {len(classes)} class probabilities" if classification else "n values",
    )


def sorted_classes(summary: TaskSummary) -> list:
    """The model's class order: sorted class values (the submission may order its columns differently)."""
    return sorted(summary.submission.classes, key=class_sort_key)


def _is_numeric_dtype(dtype: str) -> bool:
    return dtype.startswith(("int", "uint", "float", "Int", "UInt", "Float", "bool"))
