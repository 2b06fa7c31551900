"""Fixtures shared by unit and integration tests."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import binary_frames, write_task


@pytest.fixture
def binary_task(tmp_path: Path) -> Path:
    train, test, sample = binary_frames()
    return write_task(tmp_path / "binary", train, test, sample,
                      "# Toy\n\n## Evaluation\nSubmissions are evaluated on accuracy.\n")
