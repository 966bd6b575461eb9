"""The quality machinery is the core's: a domain that is not health registers its own checks and the runner
plans, batches and reports them the same way (statuses, not-applicable reasons, JSON and HTML reports)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pytest

from massalia.engine import connect
from massalia.quality import (
    CheckDescription,
    CheckInstance,
    CheckRegistry,
    Fragment,
    MetadataCheck,
    QueryCheck,
    ScanCheck,
    run_checks,
)
from massalia.quality.checks import count_if, ident
from massalia.quality.report import FAILED, NOT_APPLICABLE, PASSED


def described(name: str, level: str = "FIELD") -> CheckDescription:
    return CheckDescription(
        name, level, f"@cdmTableName.@cdmFieldName: {name}", "Verification", "Plausibility", None, "", "fatal"
    )


class StopExists(MetadataCheck):
    name = "stopExists"
    level = "TABLE"

    def violated(self, instance: CheckInstance, catalogue: Mapping[str, frozenset[str]]) -> bool:
        return instance.table not in catalogue


class FareNotNegative(ScanCheck):
    name = "fareNotNegative"

    def fragment(self, instance: CheckInstance) -> Fragment:
        column = f"t.{ident(instance.field or '')}"
        return Fragment(count_if(f"{column} < 0"), f"COUNT({column})")


class StopCodeUnique(QueryCheck):
    name = "stopCodeUnique"

    def query(self, instances: Sequence[CheckInstance]) -> str:
        parts = [
            f"SELECT {k} AS k, COUNT(*) - COUNT(DISTINCT {ident(i.field or '')}) AS num_violated_rows, "
            f"COUNT(*) AS num_denominator_rows FROM {ident(i.table)}"
            for k, i in enumerate(instances)
        ]
        return " UNION ALL ".join(parts)


def transit_registry() -> CheckRegistry:
    registry = CheckRegistry()
    exists = described("stopExists", "TABLE")
    registry.register(StopExists(), exists, [CheckInstance(exists, "stop"), CheckInstance(exists, "depot")])
    fare = described("fareNotNegative")
    registry.register(
        FareNotNegative(),
        fare,
        [CheckInstance(fare, "ticket", "fare", threshold=10.0), CheckInstance(fare, "pass", "fare")],
    )
    unique = described("stopCodeUnique")
    registry.register(StopCodeUnique(), unique, [CheckInstance(unique, "stop", "code")])
    return registry


def test_a_domains_own_checks_run_and_report(tmp_path: Path) -> None:
    with connect("duckdb") as engine:
        engine.create_table("stop", pa.table({"code": ["A", "B", "B", "C"]}))
        engine.create_table("ticket", pa.table({"fare": [2.0, -1.0, 3.0, 4.0, 5.0]}))
        engine.create_table("pass", pa.table({"fare": [1.0]}))
        report = run_checks(engine, transit_registry(), tables=["stop", "ticket", "depot"], out_dir=tmp_path)
    by_id = {r.check_id: r for r in report.results}
    assert by_id["stopexists.stop"].status == PASSED
    assert by_id["stopexists.depot"].status == FAILED
    ticket = by_id["farenotnegative.ticket.fare"]
    assert (ticket.num_violated_rows, ticket.num_denominator_rows, ticket.status) == (1, 5, FAILED)  # 20% > 10%
    assert ticket.description == "TICKET.fare: fareNotNegative"
    # ``pass`` is not among the domain's tables: the runner does not look at it
    assert by_id["farenotnegative.pass.fare"].status == NOT_APPLICABLE
    assert by_id["farenotnegative.pass.fare"].message == "table pass is absent"
    assert (by_id["stopcodeunique.stop.code"].num_violated_rows, by_id["stopcodeunique.stop.code"].status) == (
        1,
        FAILED,
    )
    saved = json.loads((tmp_path / "quality.json").read_text(encoding="utf-8"))
    assert len(saved["results"]) == 5
    assert "fareNotNegative" in (tmp_path / "quality.html").read_text(encoding="utf-8")


def test_the_registry_refuses_a_duplicate_and_names_the_known_checks() -> None:
    registry = transit_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(StopExists(), described("stopExists", "TABLE"), [])
    with pytest.raises(KeyError, match="known: stopExists, fareNotNegative, stopCodeUnique"):
        registry.checks(["busExists"])
