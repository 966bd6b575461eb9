"""Filtered reads of the audit trail (governance.audit_trail.search_entries): filters, time bounds, sorts,
and the right checked before the log is opened."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from massalia.governance import AccessDenied, Caller, Governance, InvalidRequest, Principal, Role, operator_principal
from massalia.governance.audit_trail import EntryFilter, search_entries
from massalia.ledger import TransparencyLog

DPO = Principal("dora.dpo", frozenset({Role.DPO}), 1, auth="token")


@pytest.fixture
def gov(tmp_path: Path) -> Governance:
    governance = Governance(f"sqlite:///{tmp_path / 'm.sqlite'}", tmp_path / "ledger")
    entries = [
        {"time": "2026-03-01T23:59:59+00:00", "actor": "bob", "action": "health.cohort.count", "decision": "allowed"},
        {"time": "2026-03-02T08:00:00+00:00", "actor": "amy", "action": "health.patient.view", "decision": "denied"},
        {"time": "2026-03-03T08:00:00+00:00", "actor": "bob", "action": "project.create", "decision": "allowed"},
        {"time": "not a time", "actor": "cid", "action": "health.cohort.count", "decision": "allowed"},
    ]
    with TransparencyLog(tmp_path / "ledger") as log:
        log.append_many(entries)
        log.tree_head()
    return governance


def _indexes(gov: Governance, which: EntryFilter) -> list[int]:
    items, total = search_entries(Caller(DPO, gov), gov.ledger_path, which, 0, 100)
    assert total == len(items)
    return [item["index"] for item in items]


def test_filters_and_time_bounds(gov: Governance) -> None:
    assert _indexes(gov, EntryFilter(actor="bob")) == [0, 2]
    assert _indexes(gov, EntryFilter(action="health.*")) == [0, 1, 3]
    assert _indexes(gov, EntryFilter(action="health")) == []  # an action is exact; an area ends with .*
    assert _indexes(gov, EntryFilter(decision="denied")) == [1]
    assert _indexes(gov, EntryFilter(until=dt.date(2026, 3, 1))) == [0]  # a date is the whole day
    assert _indexes(gov, EntryFilter(since=dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC))) == [1, 2]
    assert _indexes(gov, EntryFilter(since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 2))) == [1]
    assert _indexes(gov, EntryFilter(sort="actor")) == [1, 0, 2, 3]
    assert _indexes(gov, EntryFilter(sort="actor", descending=True)) == [3, 2, 0, 1]
    assert _indexes(gov, EntryFilter(descending=True)) == [3, 2, 1, 0]
    items, total = search_entries(Caller(DPO, gov), gov.ledger_path, EntryFilter(descending=True), 1, 2)
    assert [item["index"] for item in items] == [2, 1] and total == 4


def test_bad_filters_and_callers_are_refused(gov: Governance) -> None:
    with pytest.raises(InvalidRequest):
        EntryFilter(since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 1))
    with pytest.raises(InvalidRequest):
        EntryFilter(sort="time; drop")
    with pytest.raises(InvalidRequest):
        EntryFilter(actor="x" * 201)
    researcher = Principal("rita", frozenset({Role.RESEARCHER}), 2, auth="token")
    with pytest.raises(AccessDenied):
        search_entries(Caller(researcher, gov), gov.ledger_path, EntryFilter(actor="bob"), 0, 10)
    assert search_entries(Caller(operator_principal(), gov), gov.ledger_path, EntryFilter(actor="bob"), 0, 10)[1] == 2
