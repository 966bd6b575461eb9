"""Fixtures of the open-data tests (the world itself is built by :mod:`opendata_world`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opendata_world import OpenDataWorld, copy_world, make_world

from massalia.engine.duckdb import DuckDBEngine


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenDataWorld]:
    made = make_world(tmp_path_factory.mktemp("opendata-template") / "home")
    made.gov.close()
    yield made


@pytest.fixture
def world(world_template: OpenDataWorld, tmp_path: Path) -> Iterator[OpenDataWorld]:
    made = copy_world(world_template, tmp_path / "home")
    try:
        yield made
    finally:
        made.gov.close()


@pytest.fixture
def engine(world: OpenDataWorld) -> Iterator[DuckDBEngine]:
    with DuckDBEngine(world.home.warehouse) as opened:
        yield opened
