"""What encoding a task's text and images with the pretrained encoders costs, and the encoder input that fits.

The pretrained track's first check encodes every train and test row; a track that cannot finish that on a short
budget only slows the tracks that share its cores, so the planner shrinks the image encoder's input or skips the
track from this estimate. The estimate is what the generated code's own encoders cost on one idle thread, plus
what loading them costs once, slowed by the cores the track shares with the other tracks.
"""
from __future__ import annotations

from iml_ray.blueprint import PrepPlan
from iml_ray.plan.repairs import ENCODER_FLOOR_SIDE
from iml_ray.task.profile import Profile

# Measured on one idle thread with the generated code's encoders (encoders.py.tmpl's encode_text and
# encode_images, 2026-12-01): MiniLM-L6 4.1 / 7.1 / 16.6 / 49.6 / 113 ms a row for texts of 20 / 60 / 150 / 400 /
# ~1,000 characters (tokenising and the model: about 2 ms + 0.115 ms a character), 5.9-8.5 s once (torch and
# transformers imported, the weights loaded); EfficientNet-Lite0 4.6 ms (64 px) and 8.7 ms (96 px) an image of
# scikit-learn's digits read from PNG (about 1.4 ms to read, decode and resize + 0.8 µs a pixel of its input),
# 2.3 s once. The constants these replace (5.5e-5 s a character, 0.2 ms + 0.34 µs a pixel, nothing once) were
# 2-3x lower, and a pretrained track sized by them ran out of time in its first check on every image task of
# the suite at 90 s.
TEXT_S_PER_ROW = 2e-3
TEXT_S_PER_CHAR = 1.15e-4
TEXT_S_ONCE = 7.0
TEXT_MAX_CHARS_PER_TOKEN = 4
IMAGE_S_PER_ROW = 1.4e-3
IMAGE_S_PER_PIXEL = 8e-7
IMAGE_S_ONCE = 2.3
# On a GPU the network's part (per character, per pixel) is small beside reading and tokenising, which stay on
# the CPU. Not measured here (no GPU); public throughputs of both models on one GPU are 80-300x one CPU thread's,
# so 20 is a cautious reading.
GPU_SPEEDUP = 20.0
ENCODE_BUDGET_SHARE = 0.3      # of the time left when planning that encoding train and test may take


def encoding_seconds(changes: dict, profile: Profile, prep: PrepPlan, num_threads: int,
                     cpus: float | None = None, gpus: float = 0.0) -> float:
    """Seconds to encode every train and test row with the encoders in `changes`.

    num_threads: the track's threads; cpus: its share of the cluster's CPUs (a track with 0.65 of a CPU runs its
    one thread at about 0.65 of a core: 400 digit images at 64 px took 4.7 ms each beside one busy process on
    two cores, 7.5 ms beside two); gpus: a GPU of its own encodes the network's part GPU_SPEEDUP times faster.
    """
    rows = profile.n_train + profile.n_test
    model_speed = GPU_SPEEDUP if gpus >= 0.5 else 1.0
    seconds = 0.0
    text_encoder = changes.get("text_encoder")
    if text_encoder:
        max_chars = int((text_encoder.get("input") or {}).get("max_length", 256)) * TEXT_MAX_CHARS_PER_TOKEN
        lengths = {c.name: c.mean_length for c in profile.columns}
        seconds += TEXT_S_ONCE
        for name in prep.text:
            chars = min(float(lengths.get(name) or 200.0), max_chars)
            seconds += rows * (TEXT_S_PER_ROW + TEXT_S_PER_CHAR * chars / model_speed)
    image_encoder = changes.get("image_encoder")
    if image_encoder:
        side = int((image_encoder.get("input") or {}).get("size", 224))
        seconds += IMAGE_S_ONCE
        seconds += rows * len(prep.image) * (IMAGE_S_PER_ROW + IMAGE_S_PER_PIXEL * side * side / model_speed)
    threads = max(1, num_threads)
    shared = max(1.0, threads / cpus) if cpus else 1.0
    return seconds / threads * shared


def fit_encoders_to_budget(changes: dict, profile: Profile, prep: PrepPlan, num_threads: int, time_budget_s: float,
                           cpus: float | None = None, gpus: float = 0.0) -> tuple[dict, float]:
    """Halve the image encoder's input (not below 64 px) until encoding fits its share of the
    budget; the changes and the estimated seconds."""
    allowed = ENCODE_BUDGET_SHARE * time_budget_s
    seconds = encoding_seconds(changes, profile, prep, num_threads, cpus, gpus)
    while seconds > allowed and changes.get("image_encoder"):
        encoder = changes["image_encoder"]
        side = int((encoder.get("input") or {}).get("size", 0))
        smaller = max(ENCODER_FLOOR_SIDE, side // 2 // 32 * 32)
        if not side or smaller >= side:
            break
        changes = {**changes, "image_encoder": {**encoder, "input": {**encoder["input"], "size": smaller}}}
        seconds = encoding_seconds(changes, profile, prep, num_threads, cpus, gpus)
    return changes, seconds
