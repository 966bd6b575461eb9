"""Fixtures of the cohort tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest
from cohort_omop import omop_tables

from massalia.engine import Engine


@pytest.fixture
def load_omop() -> Callable[[Engine, Mapping[str, Iterable[Mapping[str, Any]]]], None]:
    """Load small OMOP tables into an engine (portable: ``Engine.create_table``)."""

    def load(engine: Engine, rows: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        for name, table in omop_tables(rows).items():
            engine.create_table(name, table)

    return load
