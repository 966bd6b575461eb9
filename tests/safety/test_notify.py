"""Saved searches pushed when new reports are indexed: owners as they stand now, and the attacks on the pushes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from safety_world import Loaded
from search_world import City, make_city

from massalia.engine import Engine, connect
from massalia.governance import AccessDenied, NotFound, Role, operator_principal
from massalia.safety import notify, search, views
from massalia.safety.alarms.timer import AlarmTimer
from massalia.safety.ingest import ensure_live_tables
from massalia.safety.log import INCIDENTS, REPORTS
from massalia.safety.query import IncidentFilter
from massalia.text import TantivyIndex

MATCHING = "vol"
NOTHING = "zeppelin"


@dataclass
class World:
    """The loaded log copied into its own warehouse, indexed up to a cut, with saved searches made before the rest."""

    city: City
    engine: Engine
    root: Path
    cut: int
    saved: dict[str, int]
    summary: dict[str, object]


@pytest.fixture(scope="module")
def world(loaded: Loaded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    city = make_city(tmp_path_factory.mktemp("notify-gov"))
    engine = connect("duckdb")  # its own warehouse: the saved searches of other modules are not evaluated here
    for table in (INCIDENTS, REPORTS):
        engine.create_table(table, loaded.engine.query(f"SELECT * FROM {table}"))
    cut = engine.scalar_int(f"SELECT CAST(quantile_disc(report_id, 0.5) AS BIGINT) FROM {REPORTS}")
    later = engine.query(f"SELECT * FROM {REPORTS} WHERE report_id > {cut}")
    engine.execute(f"DELETE FROM {REPORTS} WHERE report_id > {cut}")
    root = tmp_path_factory.mktemp("notify-index")
    admin = city.caller("admin")
    notify.index_and_notify(admin, engine, root)
    saved = {
        "operator": views.save_search(city.caller("operator"), engine, root, "Vols", MATCHING)["search_id"],
        "operator_nothing": views.save_search(city.caller("operator"), engine, root, "Rien", NOTHING)["search_id"],
        "manager": views.save_search(city.caller("manager"), engine, root, "Vols", MATCHING)["search_id"],
        "analyst": views.save_search(city.caller("analyst"), engine, root, "Vols", MATCHING)["search_id"],
        "operator2": views.save_search(city.caller("operator2"), engine, root, "Vols", MATCHING)["search_id"],
        "analyst2": views.save_search(city.caller("analyst2"), engine, root, "Vols", MATCHING)["search_id"],
    }
    # Before the new incidents come: operator2 is moved to a role without search, analyst2's account is disabled.
    city.gov.set_roles("operator2.search", [Role.RESEARCHER], actor=operator_principal())
    city.gov.set_disabled("analyst2.search", True, actor=operator_principal())
    engine.insert(REPORTS, later)  # the rest of the log arrives (a load), then the index run pushes
    summary = notify.index_and_notify(admin, engine, root)
    try:
        yield World(city, engine, root, cut, saved, summary)
    finally:
        engine.close()
        city.gov.close()


def _new_matches(world: World, query: str) -> int:
    """What the owner's own search over the new reports finds (the notification must say the same)."""
    ids = [r["report_id"] for r in world.engine.query(f"SELECT report_id FROM {REPORTS} WHERE report_id > "
                                                      f"{world.cut}").to_pylist()]  # fmt: skip
    found = search.search_reports(world.city.caller("manager"), world.engine, world.root, query,
                                  where=IncidentFilter(), report_ids=ids)  # fmt: skip
    return int(found.total or 0)


def test_the_owner_gets_a_notification_for_new_matches_and_none_for_a_search_that_matches_nothing(
    world: World,
) -> None:
    listed = notify.list_notifications(world.city.caller("operator"), world.engine)
    assert listed["unread"] == 1
    [note] = listed["notifications"]
    assert note["search_id"] == world.saved["operator"], "none for the search that matches nothing new"
    expected = _new_matches(world, MATCHING)
    assert expected > 0 and note["new_matches"] == expected
    assert note["from_report"] <= world.cut < note["to_report"]
    assert note["hits"] and all(h["report_id"] > world.cut for h in note["hits"])
    assert all(set(h) == set(notify.HIT_FIELDS) for h in note["hits"]), "no narrative nor snippet in a notification"
    # The push moved the mark: a manual check finds nothing new again.
    checked = views.check_searches(world.city.caller("operator"), world.engine, world.root)["searches"]
    assert {s["search_id"]: s["new_reports"] for s in checked}[world.saved["operator"]] == 0
    # Read once, it stays listed but no longer counts as unread.
    notify.mark_read(world.city.caller("operator"), world.engine, [note["notification_id"]])
    assert notify.list_notifications(world.city.caller("operator"), world.engine)["unread"] == 0
    assert world.summary["notifications"] == {"evaluated": 6, "notified": 2, "skipped": 3,  # type: ignore[comparison-overlap]
                                              "up_to": search.max_indexed(world.root)}  # fmt: skip


def test_the_notifying_search_is_audited_as_its_owner_on_the_notify_channel(world: World) -> None:
    entries = [json.loads(e) for e in world.city.entries(0)]
    pushed = [e for e in entries if e["action"] == search.ACTION and e.get("channel") == notify.CHANNEL]
    expected = {("operator.search", "allowed"), ("manager.search", "allowed"), ("operator2.search", "denied")}
    decided = {(e["actor"], e["decision"]) for e in pushed}
    assert decided >= expected, "each push is the owner's own search, decided again (a lost right refused, audited)"
    assert all(e["actor"] != "analyst2.search" for e in pushed), "a disabled account is not searched for"
    assert not any(MATCHING in json.dumps(e["resource"]) for e in pushed), "the query is a keyed hash, never its text"


def test_attack_another_user_cannot_read_or_mark_someone_elses_notifications(world: World) -> None:
    mine = notify.list_notifications(world.city.caller("manager"), world.engine)["notifications"]
    theirs = notify.list_notifications(world.city.caller("operator"), world.engine)["notifications"]
    assert mine and theirs and {n["notification_id"] for n in mine}.isdisjoint(n["notification_id"] for n in theirs)
    assert all(n["search_id"] == world.saved["manager"] for n in mine), "only one's own searches' notifications"
    stolen = theirs[0]["notification_id"]
    with pytest.raises(NotFound) as other:
        notify.mark_read(world.city.caller("manager"), world.engine, [stolen])
    with pytest.raises(NotFound) as unknown:
        notify.mark_read(world.city.caller("manager"), world.engine, [10**9])
    assert str(other.value) == str(unknown.value), "another user's id answers as an unknown one"
    # The analyst's own search matched too, but a count-only grant is pushed nothing (nor charged a release).
    assert notify.list_notifications(world.city.caller("analyst"), world.engine) == {"notifications": [], "unread": 0}
    with pytest.raises(AccessDenied):
        notify.list_notifications(world.city.caller("partner"), world.engine)


def test_attack_a_user_whose_role_lost_the_right_or_whose_account_is_disabled_gets_nothing(world: World) -> None:
    rows = world.engine.query(f"SELECT owner FROM {notify.NOTIFICATIONS}").to_pylist()
    assert {r["owner"] for r in rows} == {"operator.search", "manager.search"}
    marks = {r["search_id"]: r["checked_up_to"] for r in
             world.engine.query(f"SELECT search_id, checked_up_to FROM {views.SEARCHES}").to_pylist()}  # fmt: skip
    for who in ("operator2", "analyst2", "analyst"):
        assert marks[world.saved[who]] <= world.cut, f"{who}: nothing evaluated for them, the mark stays"


def test_the_alarm_timer_indexes_live_reports_and_pushes_and_an_idle_tick_writes_nothing(world: World) -> None:
    """Live reports reach the index (and the saved searches) on the API server's timer tick, not at the next load."""
    engine, root = world.engine, world.root
    ensure_live_tables(engine)  # a warehouse with a live feed: the timer ticks it
    timer = AlarmTimer(world.city.gov, lambda: engine, lambda _: None, interval_s=60,
                       after_tick=lambda e: notify.index_new_reports(world.city.gov, e, root))  # fmt: skip
    before = world.city.size()
    assert timer.run_once() is not None
    assert world.city.size() == before, "an idle tick (nothing newer than the index) writes no audit entry"
    # The last reports arrive live: the index has not seen them yet (removed from it here), a search is saved.
    newest = engine.query(f"SELECT report_id FROM {REPORTS} ORDER BY report_id DESC LIMIT 400").to_pylist()
    index = TantivyIndex.open(root, search.INDEX_NAME, search.SCHEMA)
    index.delete([r["report_id"] for r in newest])
    index.commit()
    saved = views.save_search(world.city.caller("manager"), engine, root, "Vols en direct", MATCHING)
    assert saved["checked_up_to"] < newest[0]["report_id"]
    timer.run_once()
    assert search.max_indexed(root) == newest[0]["report_id"], "the tick indexed the live reports"
    notes = notify.list_notifications(world.city.caller("manager"), world.engine)["notifications"]
    pushed = [n for n in notes if n["search_id"] == saved["search_id"]]
    assert len(pushed) == 1 and pushed[0]["new_matches"] > 0
