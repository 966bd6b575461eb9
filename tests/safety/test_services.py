"""The guarded services: who reads what, what a partner sees, what is audited. Each attack is a regression test."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from safety_world import Loaded

from massalia.governance import AccessDenied, Caller, Governance, InvalidRequest, Principal, Role, operator_principal
from massalia.ledger import TransparencyLog
from massalia.safety import services
from massalia.safety.log import INCIDENTS
from massalia.safety.query import FilterError, IncidentFilter

ROLES = {
    "operator": Role.SAFETY_OPERATOR,
    "analyst": Role.SAFETY_ANALYST,
    "manager": Role.SAFETY_MANAGER,
    "partner": Role.PARTNER,
    "researcher": Role.RESEARCHER,
    "admin": Role.ADMIN,
}
YEAR = IncidentFilter(dt.datetime(2025, 1, 1), dt.datetime(2026, 1, 1))


@dataclass
class City:
    gov: Governance
    principals: dict[str, Principal]

    def caller(self, name: str) -> Caller:
        return Caller(self.principals[name], self.gov, "api")

    def size(self) -> int:
        with TransparencyLog(self.gov.ledger_path, readonly=True) as log:
            return log.size

    def entries(self, since: int) -> list[str]:
        with TransparencyLog(self.gov.ledger_path, readonly=True) as log:
            return [json.dumps(log.get(i).entry, default=str) for i in range(since, log.size)]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    root = tmp_path_factory.mktemp("safety-gov")
    gov = Governance(f"sqlite:///{(root / 'meta.sqlite').as_posix()}", root / "ledger", key_path=root / "master.key")
    try:
        principals = {
            n: gov.create_user(f"{n}.safety", None, [r], actor=operator_principal()) for n, r in ROLES.items()
        }
        yield City(gov, principals)
    finally:
        gov.close()


def test_a_partner_asking_for_narratives_or_incidents_is_refused_and_audited(city: City, loaded: Loaded) -> None:
    before = city.size()
    partner = city.caller("partner")
    with pytest.raises(AccessDenied, match=r"safety\.incident\.list"):
        services.list_incidents(partner, loaded.engine, YEAR, include=("narrative",))
    with pytest.raises(AccessDenied, match=r"safety\.incident\.list"):
        services.incident_detail(partner, loaded.engine, 1, include=("parties",))
    trail = city.entries(before)
    assert any("safety.incident.list" in e and "partner" in e for e in trail), "refusals are in the audit trail"


def test_an_analyst_asking_for_parties_is_refused_before_anything_is_read(city: City, loaded: Loaded) -> None:
    analyst = city.caller("analyst")
    listed = services.list_incidents(analyst, loaded.engine, YEAR, limit=5)
    assert listed["incidents"] and all("reports" not in row for row in listed["incidents"])
    for include in (("parties",), ("narrative",), ("narrative", "parties")):
        with pytest.raises(AccessDenied, match=r"safety.incident.(parties|narrative)"):
            services.list_incidents(analyst, loaded.engine, YEAR, include=include)
    incident = listed["incidents"][0]["incident_id"]
    with pytest.raises(AccessDenied, match=r"safety\.incident\.parties"):
        services.incident_detail(analyst, loaded.engine, incident, include=("parties",))
    detail = services.incident_detail(analyst, loaded.engine, incident)
    assert all("parties" not in r and "narrative" not in r for r in detail["reports"])


def test_a_manager_reads_narratives_but_not_parties(city: City, loaded: Loaded) -> None:
    manager = city.caller("manager")
    found = services.list_incidents(manager, loaded.engine, YEAR, include=("narrative",), limit=3)
    reports = [r for row in found["incidents"] for r in row["reports"]]
    assert reports and all(r["narrative"] and "parties" not in r for r in reports)
    with pytest.raises(AccessDenied, match=r"safety\.incident\.parties"):
        services.list_incidents(manager, loaded.engine, YEAR, include=("parties",))


def test_every_read_of_personal_data_is_in_the_audit_trail(city: City, loaded: Loaded) -> None:
    before = city.size()
    operator = city.caller("operator")
    where = IncidentFilter(zones=("D03",), families=("ATP",))
    found = services.list_incidents(operator, loaded.engine, where, include=("narrative", "parties"), limit=7)
    assert found["incidents"]
    trail = city.entries(before)
    for action in ("safety.incident.list", "safety.incident.narrative", "safety.incident.parties"):
        matching = [e for e in trail if action in e]
        assert matching, f"no audit entry for {action}"
        assert all("D03" in e and "operator" in e for e in matching), "the entry names who and which filter"
    before = city.size()
    services.incident_detail(operator, loaded.engine, found["incidents"][0]["incident_id"], include=("parties",))
    assert any("safety.incident.parties" in e for e in city.entries(before))


def test_health_roles_see_nothing_of_the_incident_log(city: City, loaded: Loaded) -> None:
    researcher = city.caller("researcher")
    for call in (
        lambda: services.list_incidents(researcher, loaded.engine, YEAR),
        lambda: services.statistics(researcher, loaded.engine, YEAR),
        lambda: services.map_grid(researcher, loaded.engine, YEAR),
        lambda: services.catalogue_view(researcher),
    ):
        with pytest.raises(AccessDenied):
            call()
    with pytest.raises(AccessDenied, match=r"safety\.incident\.list"):
        services.list_incidents(city.caller("admin"), loaded.engine, YEAR)


def test_statistics_give_rates_the_previous_period_and_a_bias_note(city: City, loaded: Loaded) -> None:
    analyst = city.caller("analyst")
    summer = IncidentFilter(dt.datetime(2025, 7, 1), dt.datetime(2025, 10, 1))
    stats = services.statistics(analyst, loaded.engine, summer, "zone")
    assert stats["exact"] and stats["previous_period"]["start"] == "2025-03-31T00:00:00"  # the 92 days before
    rows = {r["key"]: r for r in stats["rows"]}
    truth = loaded.engine.scalar_int(
        f"SELECT count(*) FROM {INCIDENTS} WHERE zone = 'D13' AND occurred_at >= '2025-07-01' "
        "AND occurred_at < '2025-10-01'"
    )
    assert rows["D13"]["count"] == truth
    assert rows["D13"]["rate_per_10k"] == round(truth * 10_000 / rows["D13"]["population"], 2)
    assert rows["D13"]["previous"] is not None
    year = services.statistics(analyst, loaded.engine, YEAR, "zone")
    noted = {(n["zone"], n["source"]) for n in year["bias"]}
    assert any(source == "csu" and zone in ("D13", "D14", "D15", "D16", "D09", "D11") for zone, source in noted), noted
    assert ("D01", "csu") not in noted, "downtown is covered by cameras"
    by_hour = services.statistics(analyst, loaded.engine, YEAR, "hour")
    assert sum(r["count"] for r in by_hour["rows"]) == by_hour["total"]


def test_a_partner_gets_aggregates_with_small_counts_masked(city: City, loaded: Loaded) -> None:
    partner = city.caller("partner")
    stats = services.statistics(partner, loaded.engine, IncidentFilter(families=("ATP",)), "type")
    assert not stats["exact"] and stats["threshold"] == 10
    counts = [r["count"] for r in stats["rows"]]
    assert None in counts, "some ATP types are rare: masked"
    assert all(c is None or c >= 10 for c in counts)
    assert all(r["rate_per_10k"] is None for r in stats["rows"] if r["count"] is None), "no rate leaks a masked count"
    fine = services.map_grid(partner, loaded.engine, IncidentFilter(families=("ATP",)), 250)
    assert fine["masked_cells"] > 0, "rare incidents on a fine grid: cells masked, and only their number said"
    assert all(c["count"] >= 10 for c in fine["cells"])
    coarse = services.map_grid(partner, loaded.engine, IncidentFilter(), 2000)
    assert coarse["cells"] and all(c["count"] >= 10 for c in coarse["cells"])
    timeline = services.timeline(partner, loaded.engine, IncidentFilter(zones=("D16",)), "day")
    assert all(p["count"] is None or p["count"] >= 10 for p in timeline["points"])


def test_the_map_grid_honours_every_filter_with_no_cap(city: City, loaded: Loaded) -> None:
    manager = city.caller("manager")
    where = IncidentFilter(dt.datetime(2025, 3, 1), dt.datetime(2025, 9, 1), families=("VOL", "BRU"), sources=("mc",))
    grid = services.map_grid(manager, loaded.engine, where, 200)
    expected = loaded.engine.scalar_int(f"SELECT count(*) FROM {INCIDENTS} AS i WHERE {where.where('i')}")
    placed = sum(c["count"] for c in grid["cells"])
    assert placed + sum(grid["without_point"].values()) == expected
    everything = services.map_grid(manager, loaded.engine, IncidentFilter(), 10_000)
    total = loaded.engine.scalar_int(f"SELECT count(*) FROM {INCIDENTS}")
    assert sum(c["count"] for c in everything["cells"]) + sum(everything["without_point"].values()) == total
    line = services.timeline(manager, loaded.engine, where, "month")
    assert sum(p["count"] for p in line["points"]) == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"zones": ("D01') OR true --",)},
        {"families": ("VOL' OR '1'='1",)},
        {"types": ("VOL.ARRACHAGE'; DROP TABLE safety_incident; --",)},
        {"sources": ("mc' OR 1=1",)},
        {"start": dt.datetime(2025, 2, 1), "end": dt.datetime(2025, 1, 1)},
    ],
)
def test_a_filter_smuggling_sql_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(FilterError):
        IncidentFilter(**bad)  # type: ignore[arg-type]


def test_quality_reports_rejects_unmapped_codes_and_dedup_rules(city: City, loaded: Loaded) -> None:
    report = services.quality(city.caller("analyst"), loaded.engine)
    assert {r["reason"] for r in report["rejects"]} >= {"invalid_date", "unmapped_code", "impossible_coordinates"}
    assert {u["local_code"] for u in report["unmapped_codes"]} <= {"PM999", "XX", "DIVERS", "ZZZ", "NUI-999"}
    assert {r["rule"] for r in report["links"]} >= {"new_incident", "same_place_time"}
    with pytest.raises(AccessDenied):
        services.quality(city.caller("partner"), loaded.engine)


def test_the_incident_list_is_sorted_and_paged_by_the_server(city: City, loaded: Loaded) -> None:
    analyst = city.caller("analyst")
    first = services.list_incidents(analyst, loaded.engine, YEAR, limit=50, sort="zone", descending=False)
    second = services.list_incidents(analyst, loaded.engine, YEAR, limit=50, offset=50, sort="zone", descending=False)
    rows = first["incidents"] + second["incidents"]
    keys = [(r["zone"], r["incident_id"]) for r in rows]
    assert keys == sorted(keys) and len({r["incident_id"] for r in rows}) == 100, "pages follow one order, no overlap"
    newest = services.list_incidents(analyst, loaded.engine, YEAR, limit=20)
    times = [r["occurred_at"] for r in newest["incidents"]]
    assert times == sorted(times, reverse=True), "newest first by default"
    with pytest.raises(InvalidRequest, match="sort: unknown column"):
        services.list_incidents(analyst, loaded.engine, YEAR, sort="narrative")
