"""The patient timeline service (health.timeline) on the shared warehouse: events from the guarded patient
view, documents' text only under its own audited right, unknown kinds refused before anything is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import AccessDenied, Caller, Governance, InvalidRequest, Principal, Role
from massalia.health.timeline import KINDS, patient_timeline
from massalia.ledger import TransparencyLog

CLINICIAN = Principal("carl.clinician", frozenset({Role.CLINICIAN}), 1, site="chu_nord", auth="token")
OTHER_SITE = Principal("cleo.clinician", frozenset({Role.CLINICIAN}), 2, site="clcc_sud", auth="token")
PURPOSE = "Preparing the tumour board."


@pytest.fixture
def gov(tmp_path: Path) -> Governance:
    return Governance(f"sqlite:///{tmp_path / 'm.sqlite'}", tmp_path / "ledger", key_path=tmp_path / "k" / "m.key")


def _chu_nord_patient(engine: DuckDBEngine) -> int:
    return int(engine.query(
        "SELECT p.person_id FROM person p JOIN care_site cs ON cs.care_site_id = p.care_site_id "
        "JOIN note n ON n.person_id = p.person_id WHERE cs.care_site_source_value = 'chu_nord' ORDER BY 1 LIMIT 1"
    ).column(0)[0].as_py())  # fmt: skip


def test_events_are_dated_named_and_filtered_by_kind(gov: Governance, demo_warehouse: Path) -> None:
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        person = _chu_nord_patient(engine)
        timeline = patient_timeline(Caller(CLINICIAN, gov), engine, person, purpose=PURPOSE)
        labs = patient_timeline(Caller(CLINICIAN, gov), engine, person, purpose=PURPOSE, kinds=["lab"])
    assert {event["kind"] for event in timeline.events} <= set(KINDS)
    assert {event["kind"] for event in labs.events} == {"lab"}
    assert len(labs.events) == sum(1 for event in timeline.events if event["kind"] == "lab")
    diagnosis = next(event for event in timeline.events if event["kind"] == "diagnosis")
    assert diagnosis["concept_name"] and diagnosis["date"]
    assert all("text" not in event for event in timeline.events)
    assert timeline.audit_index is not None and timeline.text_audit_index is None


def test_text_is_decided_first_and_refused_to_another_site(gov: Governance, demo_warehouse: Path) -> None:
    """Attack: a clinician of another site asks for a patient's documents' text: refused, and nothing read."""
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        person = _chu_nord_patient(engine)
        with pytest.raises(AccessDenied):
            patient_timeline(Caller(OTHER_SITE, gov), engine, person, purpose=PURPOSE, with_text=True)
        with TransparencyLog(gov.ledger_path, readonly=True) as log:
            actions = [log.get(i).entry["action"] for i in range(log.size)]
        assert actions == ["health.document.read"]  # the view was never decided, so never read
        texts = patient_timeline(
            Caller(CLINICIAN, gov), engine, person, purpose=PURPOSE, kinds=["document"], with_text=True
        )
        assert texts.text_audit_index is not None and all("text" in event for event in texts.events)
        with pytest.raises(InvalidRequest):
            patient_timeline(Caller(CLINICIAN, gov), engine, person, purpose=PURPOSE, kinds=["billing"])
