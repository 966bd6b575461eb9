"""Capability flags and engine methods say what an engine does, and callers test them, not engine names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from massalia.engine import Engine, WarehouseBusyError, connect_for_home
from massalia.engine.duckdb import DuckDBEngine

SRC = Path(__file__).resolve().parents[2] / "src" / "massalia"

# `engine.name == "duckdb"`, `warehouse.name in {...}`, `"lock" in str(error)`, DuckDB's SET memory_limit.
ENGINE_NAME_TEST = re.compile(
    r"""\.name\s*(==|!=|in|not in)\s*[\(\[\{]?\s*["'](duckdb|postgres|spark)["']"""
    r"""|["'](duckdb|postgres|spark)["']\s*(in|not in)\s+\w+\.name"""
    r"""|_ENGINES\s*=\s*frozenset|["']lock["']\s+in\s+str\(|SET\s+memory_limit"""
)


def test_no_engine_name_test_outside_engine() -> None:
    """Callers chose paths by engine name (TEMPORARY_TABLE_ENGINES, MATERIALIZING_ENGINES, 'lock' in str(error))."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] == "engine":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if ENGINE_NAME_TEST.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not offenders, "engine-name tests outside engine/ (use a capability flag or method):\n" + "\n".join(
        offenders
    )


def test_temporary_tables_flag_is_true_to_the_engine(engine: Engine) -> None:
    """Where the flag is set, staging tables are session-temporary: usable, and never listed as warehouse tables."""
    if not engine.capabilities.temporary_tables:
        pytest.skip(f"{engine.name} stages in plain tables (capability temporary_tables is off)")
    engine.execute("CREATE TEMPORARY TABLE t_flag AS SELECT 1 AS one")
    try:
        assert engine.scalar("SELECT one FROM t_flag") == 1
        assert "t_flag" not in engine.list_tables()
    finally:
        engine.execute("DROP TABLE t_flag")


def test_bounded_memory_runs_on_every_engine(engine: Engine) -> None:
    with engine.bounded_memory("1GB"):
        assert engine.scalar("SELECT 40 + 2") == 42
    with engine.bounded_memory(None):
        assert engine.scalar("SELECT 1") == 1


def test_duckdb_bounded_memory_never_takes_a_quoted_value(tmp_path: Path) -> None:
    with DuckDBEngine(tmp_path / "w.duckdb") as engine:
        before = engine.scalar("SELECT current_setting('memory_limit')")
        with engine.bounded_memory("1GB'; DROP TABLE x; --"):
            assert engine.scalar("SELECT current_setting('memory_limit')") == before


def test_a_duckdb_file_held_by_another_process_is_a_busy_warehouse(tmp_path: Path) -> None:
    """The API tested `"lock" in str(error)`; the engine now raises WarehouseBusyError."""
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseBusyError, match="in use by another process"):
            DuckDBEngine(path)
    finally:
        holder.communicate("", timeout=30)


def test_each_engine_opens_itself_for_a_home(tmp_path: Path) -> None:
    with connect_for_home("duckdb", tmp_path) as engine:
        assert Path(engine.path) == tmp_path / "warehouse.duckdb"  # type: ignore[attr-defined]
