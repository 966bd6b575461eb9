"""The warehouse kept open between requests: cheap connections that grant nothing and never read a stale file."""

from __future__ import annotations

import os
import time
from pathlib import Path

from api_world import ApiWorld

from massalia.api.warehouse import WarehouseKeeper
from massalia.config import Home
from massalia.engine.duckdb import DuckDBEngine
from massalia.ledger import TransparencyLog

API = "/api/v1"


def _last_entry(world: ApiWorld) -> dict[str, object]:
    with TransparencyLog(world.home.ledger, readonly=True) as log:
        return log.get(log.size - 1).entry


def test_a_warm_warehouse_grants_nothing(api_world: ApiWorld) -> None:
    """Once the warehouse is kept open, callers without the right are still refused, and audited."""
    keeper = api_world.app.state.massalia.warehouses
    body = {"definition": api_world.cohort, "project_id": api_world.own_project}
    member = api_world.client("researcher").post(f"{API}/cohorts/count", json=body)
    assert member.status_code == 200, member.text
    assert member.json()["release"]["mode"] == "exact"
    assert keeper.anchored  # the next requests reuse the open database
    refused = api_world.client("other_owner").post(f"{API}/cohorts/count", json=body)
    assert refused.status_code == 403, refused.text
    entry = _last_entry(api_world)
    assert entry["decision"] == "denied" and entry["action"] == "health.cohort.count"
    assert "not a member" in str(entry["denied_because"])
    anonymous = api_world.client().post(f"{API}/mart/dashboard", json={"project_id": api_world.own_project})
    assert anonymous.status_code in (401, 403), anonymous.text
    again = api_world.client("researcher").post(f"{API}/cohorts/count", json=body)
    assert again.json()["persons"] == member.json()["persons"]


def _warehouse_with(path: Path, value: int) -> None:
    with DuckDBEngine(path) as engine:
        engine.execute_native(f"CREATE OR REPLACE TABLE probe AS SELECT {int(value)} AS v")


def _read(keeper: WarehouseKeeper) -> int:
    engine = keeper.connect()
    try:
        return engine.scalar_int("SELECT v FROM probe")
    finally:
        keeper.release(engine)


def test_a_replaced_warehouse_is_read_by_the_next_request(tmp_path: Path) -> None:
    """A warehouse file replaced under the same name (a rebuild, a restore) is never served from the old one."""
    home = Home(tmp_path / "home").ensure()
    _warehouse_with(home.warehouse, 1)
    keeper = WarehouseKeeper(home, keep_open_s=60)
    try:
        assert _read(keeper) == 1 and keeper.anchored
        _warehouse_with(tmp_path / "rebuilt.duckdb", 2)
        os.replace(tmp_path / "rebuilt.duckdb", home.warehouse)
        assert _read(keeper) == 2
        # A write through this process's own connections is seen at once (one open database).
        _warehouse_with(home.warehouse, 3)
        assert _read(keeper) == 3
    finally:
        keeper.close()
    assert not keeper.anchored


def test_an_idle_warehouse_is_let_go(tmp_path: Path) -> None:
    """After the idle delay the file is free again: another process (an ETL run) may take it."""
    home = Home(tmp_path / "home").ensure()
    _warehouse_with(home.warehouse, 1)
    keeper = WarehouseKeeper(home, keep_open_s=0.2)
    assert _read(keeper) == 1 and keeper.anchored
    deadline = time.monotonic() + 5
    while keeper.anchored and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not keeper.anchored
    # Another configuration (read-only) opens only when no connection of this process holds the file.
    with DuckDBEngine(home.warehouse, read_only=True) as engine:
        assert engine.scalar_int("SELECT v FROM probe") == 1
    assert _read(keeper) == 1  # and the next request opens it again
    keeper.close()
