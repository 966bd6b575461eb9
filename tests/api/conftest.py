"""Fixtures of the API tests (the world itself is built by ``api_world.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import ApiWorld, build_world, circe_cohort


@pytest.fixture(scope="session")
def api_warehouse(tmp_path_factory: pytest.TempPathFactory, demo_warehouse: Path) -> Path:
    """A copy of the demo warehouse with the research mart built and the worlds' cohort generated as id 1.

    Read-only by convention: each world copies it (building the mart takes seconds, done once here).
    """
    import shutil

    from massalia.engine.duckdb import DuckDBEngine
    from massalia.health.cohorts import import_circe
    from massalia.health.cohorts.service import generate_cohort
    from massalia.health.marts.builder import build_mart

    path = tmp_path_factory.mktemp("api-warehouse") / "warehouse.duckdb"
    shutil.copy(demo_warehouse, path)
    with DuckDBEngine(path) as engine:
        build_mart(engine)
        generate_cohort(engine, import_circe(circe_cohort()), 1)
    return path


@pytest.fixture(scope="module")
def api_world(tmp_path_factory: pytest.TempPathFactory, api_warehouse: Path) -> Iterator[ApiWorld]:
    """The shared API world of a test module (on a copy of the prepared warehouse)."""
    world = build_world(tmp_path_factory.mktemp("api-home"), api_warehouse)
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
