"""One patient's records over HTTP (``health.patient.view``).

Identified for a clinician's own site, pseudonymized under an approved pseudonymized project, refused to
everybody else.

The route calls ``research.patient_view``, which writes the decision (allowed or denied, with the purpose)
to the transparency log before any record is read. It is a ``POST`` so that the purpose and the
pseudonym travel in the body, never in a URL that proxies and access logs would keep.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.pagination import paginate
from massalia.health.records import json_table
from massalia.health.research import MIN_PURPOSE_LENGTH
from massalia.health.timeline import patient_timeline

router = APIRouter(prefix="/patients", tags=["patients"])

CHANNEL = "api"
MAX_EVENTS = 5000
"""Recorded in audit entries: which interface the access came through."""

PersonId = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]  # a BIGINT; strict: true is no person
Pseudonym = Annotated[str, Field(min_length=1, max_length=128)]


class PatientViewBody(BaseModel):
    """Whom to show (a person id, or a project pseudonym), why, and under which project."""

    person: PersonId | Pseudonym = Field(
        description="person_id (clinicians), or the project pseudonym under a pseudonymized project"
    )
    purpose: str = Field(
        min_length=MIN_PURPOSE_LENGTH, max_length=1000, description="Why the records are looked at (audited)."
    )
    project_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class PatientTable(BaseModel):
    """One OMOP table of the patient: its columns and its rows (dates as ISO 8601 strings)."""

    columns: list[str]
    rows: list[dict[str, Any]]


class PatientViewOut(BaseModel):
    """The person as the caller named them, whether the records are pseudonymized, the audit entry, the tables."""

    person: int | str
    pseudonymized: bool
    audit_index: int | None
    tables: dict[str, PatientTable]


@router.post("/view", response_model=PatientViewOut, **action("health.patient.view"))
def view(body: PatientViewBody, context: Context, caller: Caller, warehouse: Warehouse) -> PatientViewOut:
    """One patient's OMOP records, table by table (audited, with the purpose, before anything is read).

    Clinicians name a person of their own site by ``person_id`` and see identified records; members of an
    approved pseudonymized project name the person by its project pseudonym and see records with shifted
    dates and no record ids or source values. Everybody else is refused.
    """
    from massalia.health import research

    result = research.patient_view(
        caller, warehouse, body.person, purpose=body.purpose, project_id=body.project_id,
    )  # fmt: skip
    return PatientViewOut(
        person=result.person,
        pseudonymized=result.grant.pseudonymized,
        audit_index=result.grant.audit_index,
        tables={name: PatientTable(**json_table(table)) for name, table in result.tables.items()},
    )


EventKind = Literal["diagnosis", "episode", "drug", "procedure", "lab", "document", "visit", "observation", "death"]


class TimelineBody(PatientViewBody):
    """Whom, why and under which project, as for a patient view; which events, whether documents' text, a page."""

    kinds: list[EventKind] | None = Field(default=None, max_length=9, description="Only these kinds of event.")
    with_text: bool = Field(default=False, description="The documents' text (a clinician's own site; audited).")
    order: Literal["asc", "desc"] = "asc"
    limit: int = Field(default=1000, ge=1, le=MAX_EVENTS, description=f"Events per page (1 to {MAX_EVENTS}).")
    cursor: str | None = Field(default=None, max_length=64, description="The `next` cursor of the previous page.")


@router.post("/timeline", **action("health.patient.view"))
def timeline(body: TimelineBody, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """One patient's dated events (diagnoses, episodes, treatments, labs, documents...), audited with the purpose.

    The same rights, scope and audit as ``POST /patients/view``, whose records it reshapes; a page of events in
    date order. Documents carry their text only with ``with_text`` for a clinician of the patient's own site.
    """
    result = patient_timeline(
        caller, warehouse, body.person, purpose=body.purpose, project_id=body.project_id,
        kinds=body.kinds, with_text=body.with_text,
    )  # fmt: skip
    events = result.events if body.order == "asc" else result.events[::-1]
    page = paginate(events, body.limit, body.cursor)
    return {"person": result.person, "pseudonymized": result.pseudonymized, "audit_index": result.audit_index,
            "text_audit_index": result.text_audit_index, "demographics": result.demographics,
            "items": page.items, "next": page.next, "total": page.total}  # fmt: skip
