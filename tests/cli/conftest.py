"""Fixtures of the command-line tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def home(demo_warehouse: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    shutil.copy(demo_warehouse, folder / "warehouse.duckdb")  # the commands write the cohort table
    return folder
