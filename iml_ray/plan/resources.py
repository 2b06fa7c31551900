"""What each track of a competition asks Ray for, decided from the cluster before anything is submitted.

Plain Python (the cluster's totals are passed in), so it is testable without Ray.
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from iml_ray.config import RunConfig

if TYPE_CHECKING:
    from iml_ray.blueprint import PrepPlan

# Tracks whose code can use a GPU; traditional (LightGBM, linear) runs on CPUs.
GPU_TRACKS = ("pretrained", "custom_nn")

# Ray Tune inside the generated code. A track's child waits while its trials run, so the
# trials use the CPUs (and GPU) the track already holds: each asks Ray for a sliver of a CPU
# only, at most the track's thread count run at once, and the tracks leave that sliver free.
TUNE_RESERVE_CPUS = 0.05        # of the cluster, kept out of the tracks' shares for trials
TRIAL_CPUS = 0.001              # what one trial asks Ray for
TUNE_SHARE = 0.25               # of a track's remaining time one search may take
MIN_TUNE_S = 30.0               # with "auto", a shorter search is not started: below it the search's start-up
                                # and its first (default) trial take most of it, and on a short budget the
                                # time is better spent letting every track finish (MNIST at 90 s: seen)
MAX_TUNE_S = 900.0              # one search never takes longer, whatever the budget
TUNE_TRIALS = 64                # trials one search may sample (ASHA stops the weak ones early)

# On a table of columns alone (no text, images or audio) gradient-boosted trees are the strong family and a network
# is at best a member of their ensemble. With fewer than two CPUs per track the network beside them took the trees'
# second thread: on two cores at 90 s the traditional track alone did better than the two tracks side by side
# (adult AUC 0.9405 against 0.9385, diamonds RMSE 534.2 against 537.1, penguins log loss 0.0031 against 0.0051), and
# a network at the lowest CPU priority beside them (SCHED_IDLE) still slowed the trees' rounds by 10-25% for no
# gain. There the network waits: it holds a sliver of a CPU until the trees' track has finished (out of
# improvements, or failed), then runs on the CPUs they freed; when the trees use the whole budget it does not run.
# The same holds for text the traditional track reads as TF-IDF terms, where the linear model leads: on two cores at
# 90 s the network over a bag of the words scored far below it (inner accuracy 0.85 against 0.97 on bbc_news, AUC
# 0.61 against 0.78 on drug_reviews, log loss 0.60 against 0.45 on fine_foods; weight 0 in every ensemble) and held
# a core for 32-47 s, once timing out without a candidate.
WAIT_BELOW_CPUS_PER_TRACK = 2.0
WAITING_TRACKS = {"custom_nn": "traditional"}    # a track that may wait → the track it waits for
WAITING_CPUS = 0.05             # what a waiting track asks Ray for: its CPUs come from the track it waited for

# Of a competition's time budget, what the plan phase's LLM calls may use (from the start of the run):
# a slow model (a small local one on CPUs) then leaves the tracks most of their time.
PLAN_LLM_SHARE = 0.4
# Of the time a track has left, what one LLM step (a module's draft, a diagnosis, a rewrite) may use.
LLM_TRACK_SHARE = 0.5


@dataclass(frozen=True)
class TrackResources:
    """What one track asks Ray for, and what its sandboxed child may use."""

    num_cpus: float          # Ray's share (fractional when tracks outnumber CPUs)
    threads: int             # BLAS / LightGBM / torch threads of the child
    num_gpus: float          # 0 on a GPU-less cluster: asking for a GPU there waits forever
    memory_mb: int
    waits_for: tuple[str, ...] = ()     # tracks that must finish before this one starts (waiting_tracks())

    def to_json(self) -> dict:
        data = {"num_cpus": self.num_cpus, "threads": self.threads, "num_gpus": self.num_gpus, "memory_mb": self.memory_mb}
        if self.waits_for:
            data["waits_for"] = list(self.waits_for)
        return data


@dataclass(frozen=True)
class TuneSettings:
    """Ray Tune inside a track's generated code: the cluster its trials join, and how long a search may take."""

    address: str                    # the cluster's GCS address
    concurrency: int                # trials at once: the track's threads
    env: dict[str, str] = field(default_factory=dict)   # what the child needs to join the cluster (token auth)
    trial_threads: int = 1
    trial_cpus: float = TRIAL_CPUS
    trials: int = TUNE_TRIALS
    share: float = TUNE_SHARE       # of the track's remaining time
    min_seconds: float = MIN_TUNE_S
    max_seconds: float = MAX_TUNE_S
    temp_dir: str | None = None     # the node's Ray temp dir (the track's Ray task fills it in): kept writable

    def search(self, remaining_s: float, storage: str, gpu_ids: tuple[int, ...]) -> dict | None:
        """What the generated code's tune_model() reads (tune.json) for a search in a round with
        remaining_s left; None when that leaves too little for a search to pay off."""
        seconds = min(self.max_seconds, self.share * remaining_s)
        if seconds < self.min_seconds:
            return None
        settings = {"address": self.address, "concurrency": self.concurrency, "trial_threads": self.trial_threads,
                    "trial_cpus": self.trial_cpus, "trials": self.trials}
        if self.temp_dir is not None:
            settings["temp_dir"] = self.temp_dir
        settings.update(seconds=round(seconds, 1), storage=storage, cuda_visible_devices=",".join(str(i) for i in gpu_ids),
                        # One network training may take at most a third of the search.
                        trial_seconds=round(seconds / 3.0, 1))
        return settings


def trees_lead_on(prep: PrepPlan) -> bool:
    """Whether the data reaches the models as columns and TF-IDF terms alone (no encoder's text, no images, no
    audio): where the traditional track's trees and linear model are the strong families."""
    return not (prep.image or prep.audio or (prep.text and prep.text_mode != "tfidf"))


def waiting_tracks(tracks: tuple[str, ...], config: RunConfig, cluster: dict[str, float], trees_lead: bool,
                   deferred: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Which tracks wait for which (track → the tracks it waits for). Where the trees lead (trees_lead_on()), on a
    cluster without GPUs, with fewer than WAIT_BELOW_CPUS_PER_TRACK CPUs per track, a track of WAITING_TRACKS beside
    the one it waits for (none when the configuration fixes the CPUs per track). A deferred track (its plan's
    deferred_encode_s: too costly beside the others) waits for every other track that does not wait itself."""
    waiting: dict[str, tuple[str, ...]] = {}
    shared = float(cluster.get("CPU", 1.0)) / max(1, len(tracks)) < WAIT_BELOW_CPUS_PER_TRACK
    if trees_lead and shared and not config.cpus_per_track and float(cluster.get("GPU", 0.0)) < 0.01:
        waiting = {t: (first,) for t, first in WAITING_TRACKS.items() if t in tracks and first in tracks}
    for track in deferred:
        others = tuple(t for t in tracks if t != track and t not in deferred)
        if track in tracks and others:
            waiting[track] = others
    return waiting


def most_at_once(tracks: tuple[str, ...], waiting: dict[str, tuple[str, ...]]) -> int:
    """The most tracks that can run at the same time: the largest set none of whose tracks waits, directly or
    through another, for one of the set (waiting: track → the tracks it waits for)."""
    def before(track: str) -> set[str]:
        seen: set[str] = set()
        todo = list(waiting.get(track, ()))
        while todo:
            other = todo.pop()
            if other not in seen:
                seen.add(other)
                todo.extend(waiting.get(other, ()))
        return seen

    after = {t: before(t) for t in tracks}
    return max((len(group) for size in range(1, len(tracks) + 1) for group in itertools.combinations(tracks, size)
                if not any(a in after[b] for a in group for b in group)), default=1)


def plan_resources(tracks: tuple[str, ...], config: RunConfig, cluster: dict[str, float],
                   memory_fraction: float = 1.0,
                   waiting: dict[str, tuple[str, ...]] | None = None) -> dict[str, TrackResources]:
    """Each track's resources, from what the cluster has (decided before anything is submitted).

    All tracks run at once: with fewer CPUs than tracks each asks for a fraction of
    one, so none waits for another to finish; a GPU goes only to the tracks that
    can use one, and only when the cluster has GPUs at all. A track in `waiting`
    (waiting_tracks(): track → the tracks it waits for) asks for a sliver of a CPU
    and leaves its share to the others; it takes theirs when they finish. Memory: 60% of the node's RAM, split
    over the most tracks that run at once (most_at_once()).
    """
    import psutil

    n = max(1, len(tracks))
    total_cpus = float(cluster.get("CPU", 1.0))
    total_gpus = float(cluster.get("GPU", 0.0))
    usable = max(0.01, total_cpus - TUNE_RESERVE_CPUS) if config.tune != "off" else total_cpus
    waiting = {t: kept for t, others in (waiting or {}).items()
               if t in tracks and (kept := tuple(w for w in others if w in tracks))}
    if config.cpus_per_track:
        share = float(min(config.cpus_per_track, usable))
    else:
        share = max(0.01, math.floor((usable - WAITING_CPUS * len(waiting)) / (n - len(waiting)) * 100) / 100)
    gpu_tracks = [t for t in tracks if t in GPU_TRACKS]
    if total_gpus >= 0.01 and gpu_tracks:
        wanted = config.gpus_per_track if config.gpus_per_track is not None else min(1.0, total_gpus / len(gpu_tracks))
        gpus = float(min(wanted, total_gpus))
    else:
        gpus = 0.0
    if config.memory_mb:
        memory = config.memory_mb
    else:
        # Leave room for Ray and for the other tracks running beside this one (a waiting track runs after those it
        # waits for, so it shares the node with fewer).
        memory = int(psutil.virtual_memory().total / 2**20 * 0.6 / most_at_once(tracks, waiting) * memory_fraction)
    threads = max(1, int(round(share)))
    return {t: TrackResources(WAITING_CPUS if t in waiting else share, 1 if t in waiting else threads,
                              gpus if t in GPU_TRACKS else 0.0, memory, waiting.get(t, ())) for t in tracks}


def ray_auth_env() -> dict[str, str]:
    """What a process needs to join this cluster when token auth is on (the sandbox strips it otherwise).

    The sandbox gives generated code a HOME of its own, so a token in the default place
    (~/.ray/auth_token) is passed by its path.
    """
    env = {k: os.environ[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH") if os.environ.get(k)}
    default = Path.home() / ".ray" / "auth_token"
    if "RAY_AUTH_TOKEN" not in env and "RAY_AUTH_TOKEN_PATH" not in env and default.is_file():
        env["RAY_AUTH_TOKEN_PATH"] = str(default)
    return env


def local_server_resources(settings, cluster: dict[str, float]) -> dict[str, float]:
    """What a local model's server asks Ray for: a share of a GPU where the cluster has GPUs, CPUs otherwise."""
    if float(cluster.get("GPU", 0.0)) >= 0.01 and settings.local_gpus > 0:
        return {"num_gpus": float(min(settings.local_gpus, cluster["GPU"])), "num_cpus": 1.0}
    return {"num_gpus": 0.0, "num_cpus": float(min(settings.local_cpus, max(0.0, cluster.get("CPU", 1.0) - 0.5)))}
