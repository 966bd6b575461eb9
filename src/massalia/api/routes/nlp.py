"""One patient's NLP findings over HTTP (``health.patient.view``, the timeline's right).

``POST /api/v1/patients/findings`` returns the findings the clinical NLP pipeline wrote to NOTE_NLP for one
patient's notes, with their qualifiers (negated, hypothetical, about a relative, historical): identified for a
clinician of the patient's own site, by pseudonym for a member of an approved pseudonymized project (shifted
dates, note ordinals, words withheld where an identifier touches them), refused to everybody else. The route
calls :func:`massalia.health.nlp.findings.patient_findings`, which decides and audits (with the purpose) through
the patient view before anything is read. A ``POST``: the pseudonym and the purpose stay out of URLs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Warehouse, action
from massalia.health.nlp.findings import patient_findings
from massalia.health.research import MIN_PURPOSE_LENGTH

router = APIRouter(prefix="/patients", tags=["patients"])

PersonId = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]  # strict: true is no person
Pseudonym = Annotated[str, Field(min_length=1, max_length=128)]


class FindingsBody(BaseModel):
    """Whose findings (a person id, or the project pseudonym), why, and under which project."""

    person: PersonId | Pseudonym = Field(
        description="person_id (clinicians), or the project pseudonym under a pseudonymized project"
    )
    purpose: str = Field(
        min_length=MIN_PURPOSE_LENGTH, max_length=1000, description="Why the findings are looked at (audited)."
    )
    project_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class FindingsOut(BaseModel):
    """The person as named, whether pseudonymized, the audit entry, the findings and how many words were withheld."""

    person: int | str
    pseudonymized: bool
    audit_index: int | None
    findings: list[dict[str, Any]]
    withheld: int


@router.post("/findings", response_model=FindingsOut, **action("health.patient.view"))
def findings(body: FindingsBody, caller: Caller, warehouse: Warehouse) -> FindingsOut:
    """One patient's NOTE_NLP findings with qualifiers (audited with the purpose, before anything is read)."""
    result = patient_findings(caller, warehouse, body.person, purpose=body.purpose, project_id=body.project_id)
    return FindingsOut(person=result.person, pseudonymized=result.pseudonymized, audit_index=result.audit_index,
                       findings=result.findings, withheld=result.withheld)  # fmt: skip
