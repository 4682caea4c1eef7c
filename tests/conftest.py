"""Shared fixtures: where the golden outputs of the real tools live (../shared, never copied)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file of golden records."""
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


GOLDEN_RECORDS = load_jsonl(SHARED_DIR / "golden" / "cases.jsonl") if SHARED_DIR.exists() else []
GOLDEN_DW_RECORDS = (load_jsonl(SHARED_DIR / "golden_dw" / "cases.jsonl")
                     if SHARED_DIR.exists() else [])
ALL_GOLDEN_RECORDS = GOLDEN_RECORDS + GOLDEN_DW_RECORDS


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder with golden data (skips when absent, e.g. in a bare sdist)."""
    if not SHARED_DIR.exists():
        pytest.skip("../shared (golden data) is not present")
    return SHARED_DIR


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO_ROOT
