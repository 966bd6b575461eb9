"""open_warehouse: the options it gives each engine are ones that engine takes."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from massalia.config import Home
from massalia.engine import engine_factory
from massalia.engine.duckdb import DuckDBEngine
from massalia.warehouse import open_warehouse, warehouse_options


@pytest.mark.parametrize("name", ["duckdb", "postgres", "spark"])
def test_the_options_for_each_engine_bind_to_its_constructor(name: str, tmp_path: Path) -> None:
    """Spark was once given ``warehouse_dir=``, which its constructor never took: every CLI command on
    ``--engine spark`` crashed with a TypeError before doing anything. Binding checks without a server."""
    factory = engine_factory(name)  # imports the driver module only, starts nothing
    options = warehouse_options(Home(tmp_path), name)
    inspect.signature(factory).bind(**options)  # raises TypeError on a keyword the engine does not take


def test_spark_keeps_its_tables_in_the_home(tmp_path: Path) -> None:
    assert warehouse_options(Home(tmp_path), "spark") == {"folder": tmp_path / "spark"}


def test_duckdb_opens_the_home_s_warehouse_file(tmp_path: Path) -> None:
    home = Home(tmp_path).ensure()
    with open_warehouse(home, "duckdb") as engine:
        assert isinstance(engine, DuckDBEngine)
        assert Path(engine.path) == home.warehouse
    assert home.warehouse.exists()


def test_an_explicit_option_wins_over_the_home_s(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.duckdb"
    assert warehouse_options(Home(tmp_path), "duckdb", path=other) == {"path": other}
