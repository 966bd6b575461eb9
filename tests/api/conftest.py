"""Fixtures of the API tests (the world itself is built by ``api_world.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import ApiWorld, build_world


@pytest.fixture(scope="module")
def api_world(tmp_path_factory: pytest.TempPathFactory, demo_warehouse: Path) -> Iterator[ApiWorld]:
    """The shared API world of a test module (on a copy of the demo warehouse)."""
    world = build_world(tmp_path_factory.mktemp("api-home"), demo_warehouse)
    try:
        yield world
    finally:
        world.close()


@pytest.fixture(scope="module")
def empty_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    """A world without a warehouse copy (for tests of the HTTP layer itself), one per test module."""
    world = build_world(tmp_path_factory.mktemp("api-empty"), None)
    try:
        yield world
    finally:
        world.close()
