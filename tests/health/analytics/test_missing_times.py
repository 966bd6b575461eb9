"""Persons without a follow-up time (a dirty diagnosis or end date) never crash an analysis.

At 10,000 demo patients some mart rows have no ``os_days``: before, the comparison fed them to the
estimators and failed with an internal error (lifelines refuses NaN). They are left out and counted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from analytics_world import AnalyticsWarehouse, World

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller
from massalia.health.analytics import run_compare, run_survival
from massalia.health.analytics.requests import CompareRequest, SurvivalRequest
from massalia.health.marts.filters import FilterSpec, parse_clause


def test_persons_without_a_time_are_left_out_and_counted(
    world: World, analytics_warehouse: AnalyticsWarehouse, tmp_path: Path
) -> None:
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(analytics_warehouse.path, copy)
    with DuckDBEngine(copy) as engine:
        engine.execute("UPDATE mart_patient SET os_days = NULL WHERE person_id % 7 = 0")
        missing = engine.scalar_int("SELECT count(*) FROM mart_patient WHERE os_days IS NULL")
        flagged = engine.scalar_int(
            "SELECT count(*) FROM mart_patient WHERE os_days IS NULL AND received_chemotherapy IS NOT NULL"
        )
        assert missing > 100
        caller = Caller(world.rita, world.gov)
        request = CompareRequest(
            project_id=world.study, negative_controls=["second_cancer", "relapse"],
            treated=FilterSpec(all=[parse_clause("received_chemotherapy = true")]),
            comparator=FilterSpec(all=[parse_clause("received_chemotherapy = false")]),
        )  # fmt: skip
        compared = run_compare(caller, engine, request)
        assert compared["excluded_no_time"]["count"] == flagged
        assert compared["hazard_ratios"]["ipw"]["hr"] > 0
        survival = run_survival(caller, engine, SurvivalRequest(project_id=world.study, group_by="stage_group"))
        assert survival["excluded_no_time"]["count"] == missing
