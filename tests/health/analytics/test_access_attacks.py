"""Attacks on the analyses: no approval, another project, out-of-scope sites, small cells over HTTP.

Each is refused (403 ``AccessDenied``, audited before any row is read) or contained (only the project's
sites' rows are analysed; counts under the threshold read ``<10``).
"""

from __future__ import annotations

from typing import Any

import pytest
from analytics_world import World

from massalia.governance import AccessDenied, Caller, operator_principal
from massalia.health.analytics import run_survival
from massalia.health.analytics.requests import SurvivalRequest
from massalia.health.marts.filters import FilterSpec, parse_clause
from massalia.ledger import TransparencyLog


def _count_of(world: World, where: str) -> int:
    return int(world.engine.query(f"SELECT count(*) AS n FROM mart_patient WHERE {where}").column(0)[0].as_py())


@pytest.mark.parametrize("who", ["olga", "nora", "operator"])
def test_callers_without_an_approved_membership_are_refused(world: World, who: str) -> None:
    principal = {"olga": world.olga, "nora": world.nora, "operator": operator_principal()}[who]
    # olga owns another approved project but is no member of `study`; nora's own project was never approved;
    # the local operator is nobody's member.
    for project in (world.study, world.draft if who == "nora" else world.study):
        with pytest.raises(AccessDenied, match="approved members of an approved, unexpired project"):
            run_survival(Caller(principal, world.gov), world.engine, SurvivalRequest(project_id=project))


def test_a_member_of_another_project_cannot_borrow_it(world: World) -> None:
    # olga is an approved member of `other`, which works; naming rita's project does not.
    allowed = run_survival(Caller(world.olga, world.gov), world.engine, SurvivalRequest(project_id=world.other))
    assert allowed["km"]["all"]["n"]["count"] > 0
    with pytest.raises(AccessDenied):
        run_survival(Caller(world.olga, world.gov), world.engine, SurvivalRequest(project_id=world.north))


def test_a_site_scoped_project_analyses_only_its_sites(world: World) -> None:
    everyone = run_survival(Caller(world.rita, world.gov), world.engine, SurvivalRequest(project_id=world.study))
    north = run_survival(Caller(world.rita, world.gov), world.engine, SurvivalRequest(project_id=world.north))
    assert everyone["km"]["all"]["n"]["count"] == _count_of(world, "os_days IS NOT NULL")
    assert north["km"]["all"]["n"]["count"] == _count_of(world, "os_days IS NOT NULL AND care_site_code = 'chu_nord'")
    # Asking for another site's patients under the site-scoped project gives nothing of them.
    other_site = SurvivalRequest(
        project_id=world.north, filters=FilterSpec(all=[parse_clause("care_site_code = clcc_sud")])
    )
    result = run_survival(Caller(world.rita, world.gov), world.engine, other_site)
    assert result["km"]["all"]["n"] == {"count": None, "shown": "<10"}
    assert result["provenance"]["rows_read"] == 0


def test_a_small_group_leaks_no_event_time(world: World) -> None:
    """Attack: a KM curve of a handful of patients (one rare site) would show each death as a step."""
    request = SurvivalRequest(project_id=world.study, filters=FilterSpec(all=[parse_clause("primary_site = uterus")]),
                              group_by="stage_group")  # fmt: skip
    result = run_survival(Caller(world.rita, world.gov), world.engine, request)
    for group in result["km"]["groups"].values():
        if group["n"]["count"] is None:
            assert [point["time"] for point in group["curve"]] == [0.0], "a masked group shows no step"
            assert group["events"]["shown"] == "<10" and group["median"] is None
        for point in group["curve"]:
            assert point["at_risk"]["count"] is None or point["at_risk"]["count"] >= 10


def _ledger(world: World) -> list[dict[str, Any]]:
    with TransparencyLog(world.gov.ledger_path, readonly=True) as log:
        return [log.get(index).entry for index in range(log.size)]


def test_every_decision_is_audited_before_rows_are_read(world: World) -> None:
    before = len(_ledger(world))
    with pytest.raises(AccessDenied):
        run_survival(Caller(world.nora, world.gov), world.engine, SurvivalRequest(project_id=world.study))
    run_survival(Caller(world.rita, world.gov), world.engine, SurvivalRequest(project_id=world.study))
    new = _ledger(world)[before:]
    decisions = [(entry.get("action"), entry.get("decision")) for entry in new]
    assert ("health.analysis.run", "denied") in decisions and ("health.analysis.run", "allowed") in decisions
