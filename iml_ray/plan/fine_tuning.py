"""The fine-tuning step: a track on a frozen pretrained encoder's features trains the encoder itself.

The text encoder reads the text's token ids, the EfficientNet-Lite backbone the images' RGB pixels, in the custom_nn
template with a head beside the tabular columns. The step is sized from the frozen round's prep check (which
encoded every train and test row once) and taken only when an epoch per pipeline fit fits the time left; a GPU
makes it about ten times cheaper. The track keeps the round only when it scores better (track/improve.py).
"""
from __future__ import annotations

from iml_ray.plan.guideline_rules import NN_MAX_PIXEL_BYTES
from iml_ray.plan.repairs import Plans
from iml_ray.plan.round_facts import PLANNED_SHARE, Improvement, RoundFacts

MIN_LIMIT_S = 2.0
# An epoch of fine-tuning against encoding each row once (what the prep check measured), by modality. Text: a
# forward and a backward pass (about 3 encodings) over rows in random order (more padding than the length-sorted
# encoding), plus scoring the inner split: MiniLM-L6 on 400 fine-food reviews, 2 threads, 3.1. Images: a CNN in
# training mode (batch statistics, no channels-last inference path): EfficientNet-Lite0, 2 threads, 6.6 at 64 px
# and 4.4 at 96 px (the encoding's image reading is a larger share of small images). benchmarks/RESULTS.md.
FINE_TUNE_EPOCH_COST = {"text": 3.5, "image": 6.0}
FINE_TUNE_EPOCHS = 3            # an epoch or two is usually enough for a pretrained encoder; a third when it fits
MIN_FINE_TUNE_EPOCHS = 1.0      # the step is taken when one epoch per pipeline fit fits the time left
FINE_TUNE_GPU_SPEEDUP = 10.0    # the prep check encodes on the CPU; the network trains on the GPU when there is one
FINE_TUNE_LOAD_S = 3.0          # loading the encoder's weights, once per fit
FINE_TUNE_TOKENS = 128
PROBE_START_S = 3.0             # of the prep check's seconds, starting Python, reading the data, loading the encoder
FINE_TUNE_MIN_SIDE = 64


def fine_tune(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    """The frozen encoder fine-tuned with a network head: the text encoder on its token ids, or (a task without text)
    the EfficientNet-Lite image backbone on the pixels. Always proposed where it applies: its expected time says
    whether it fits, and the track's stop message says why it did not."""
    prep, track = plans.prep, plans.track
    if track.model_template != "traditional" or not facts.prep_check_s:
        return None
    if prep.text and prep.text_mode == "pretrained" and (prep.text_encoder or {}).get("loader") == "transformers":
        modality, encoder, columns = "text", prep.text_encoder, prep.text
    elif (not prep.text and prep.image and prep.image_mode == "pretrained"
          and (prep.image_encoder or {}).get("loader") == "efficientnet_lite"):
        modality, encoder, columns = "image", prep.image_encoder, prep.image
    else:
        return None
    per_row = facts.scale * max(0.3 * facts.prep_check_s, facts.prep_check_s - PROBE_START_S) \
        / max(1, facts.n_train + facts.n_test)
    if facts.gpus:
        per_row /= FINE_TUNE_GPU_SPEEDUP
    # An epoch of the final fit (every row): the inner split's rows train, its held-out rows are scored (one encoding).
    inner = plans.train.inner_valid_fraction
    epoch_s = per_row * facts.n_train * ((1 - inner) * FINE_TUNE_EPOCH_COST[modality] + inner)
    # Predicting: the validation rows (every row under k folds) and the test rows (by each fold's fit under k folds).
    held = 1.0 if plans.train.holdout_folds else plans.train.holdout_fraction
    predict_s = per_row * (held * facts.n_train + facts.n_test * max(1, plans.train.holdout_folds))
    fits = plans.train.pipeline_fits
    rest = facts.seconds + predict_s + fits * FINE_TUNE_LOAD_S
    limit = min(FINE_TUNE_EPOCHS * epoch_s, (budget - rest) / fits)
    limit = max(limit, MIN_FINE_TUNE_EPOCHS * epoch_s, MIN_LIMIT_S)
    settings = dict(encoder.get("input") or {})
    nn = {"backbone": {"modality": modality, **{k: encoder.get(k) for k in ("name", "ref", "loader", "dim")},
                       "input": settings},
          "hidden": [256], "dropout": 0.1, "lr": 1e-3, "weight_decay": 0.01,
          # a CNN's pretrained weights take larger steps than a transformer's
          "backbone_lr": 3e-5 if modality == "text" else 3e-4,
          "batch_size": 32 if facts.gpus else 16, "max_epochs": FINE_TUNE_EPOCHS + 1, "patience": 2,
          "time_limit_s": round(limit, 1)}
    if modality == "text":
        length = min(FINE_TUNE_TOKENS, int(settings.get("max_length", FINE_TUNE_TOKENS)))
        new_prep = prep.replace(text_mode="tokens", token_length=length)
        what = f"{length} tokens"
    else:
        side = _fine_tune_side(int(settings.get("size", 224)), len(columns) * (facts.n_train + facts.n_test))
        new_prep = prep.replace(image_mode="pixels", image_size=(side, side), image_channels=3, image_stats=False)
        nn["augment"] = True
        what = f"{side}x{side} pixels"
    new_track = track.replace(model_template="custom_nn", models=("nn",), nn=nn, tune={}, bagging_folds=0, families={})
    where = "on the GPU" if facts.gpus else f"on {track.num_threads} CPU thread(s)"
    return Improvement(Plans(new_prep, new_track, plans.train), "fine_tune",
                       f"fine-tune {encoder.get('name') or 'the encoder'} on {', '.join(columns)} ({what}) with a "
                       f"network head, up to {limit:.0f} s per fit (an epoch about {epoch_s:.0f} s {where})",
                       rest + fits * limit)


def _fine_tune_side(side: int, images: int) -> int:
    """The encoder's input side, made smaller (by 32 pixels, not below 64) until every image's RGB pixels fit the
    network's pixel memory."""
    while side > FINE_TUNE_MIN_SIDE and images * 3 * side * side * 4 > NN_MAX_PIXEL_BYTES:
        side = max(FINE_TUNE_MIN_SIDE, side - 32)
    return side


def fine_tune_note(plans: Plans, facts: RoundFacts, seconds_left: float) -> str | None:
    """Why a track on a frozen encoder kept it frozen (None: the step does not apply)."""
    step = fine_tune(plans, facts, PLANNED_SHARE * seconds_left)
    if step is None:
        return None
    modality = step.plans.track.nn["backbone"]["modality"]
    return (f"the {modality} encoder stayed frozen: fine-tuning it needs about {step.expected_s:.0f} s (at least one epoch "
            f"per fit), {seconds_left:.0f} s were left")
