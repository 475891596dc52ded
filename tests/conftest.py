"""Shared fixtures: the real-dataset directory, read from FACETREC_DATA_DIR.

Tests that need a public dataset ask for ``shared_dataset("ml-100k")``; when the folder is
absent they are skipped with a message saying where they looked and how to point at it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download models
_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def data_dir() -> Path:
    """FACETREC_DATA_DIR, else ../shared/datasets beside the checkout."""
    return Path(os.environ.get("FACETREC_DATA_DIR", _DEFAULT))


@pytest.fixture
def shared_dataset() -> Callable[[str], Path]:
    def find(name: str) -> Path:
        path = data_dir() / name
        if not path.is_dir():
            pytest.skip(f"dataset {name!r} not found at {path}; set FACETREC_DATA_DIR to the folder holding it")
        return path

    return find
