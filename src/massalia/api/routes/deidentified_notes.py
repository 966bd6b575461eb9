"""A person's notes de-identified over HTTP (``health.document.deidentified``).

For a member of an approved pseudonymized project, who names the person by its project pseudonym: names,
addresses, phones, e-mails, NIR and hospital ids replaced, dates moved by the person's project shift
(``docs/deidentification.md``). The route calls ``notes.deidentified_notes``, which writes the decision with
the purpose to the transparency log before anything is read. A ``POST``: the pseudonym and the purpose
travel in the body, never in a URL.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.health.documents.notes import deidentified_notes
from massalia.health.research import MIN_PURPOSE_LENGTH

router = APIRouter(prefix="/patients", tags=["patients"])

PersonId = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]
Pseudonym = Annotated[str, Field(min_length=1, max_length=128)]


class DeidentifiedNotesBody(BaseModel):
    """Whose notes (the project pseudonym), why, under which project."""

    person: Pseudonym | PersonId = Field(description="The person's project pseudonym.")
    purpose: str = Field(
        min_length=MIN_PURPOSE_LENGTH, max_length=1000, description="Why the documents are read (audited)."
    )
    project_id: int | None = Field(default=None, ge=1, le=2**31 - 1, description="The approved project.")


class DeidentifiedNoteOut(BaseModel):
    """One note: its ordinal, shifted date, concept ids, de-identified title and text, identifiers replaced."""

    record: int
    note_date: dt.date | None
    note_type_concept_id: int | None
    note_class_concept_id: int | None
    title: str | None
    text: str | None
    identifiers: dict[str, int]
    withheld: bool


class DeidentifiedNotesOut(BaseModel):
    """The person by pseudonym, the audit entry of the decision, the notes in date order."""

    person: str | int
    audit_index: int | None
    notes: list[DeidentifiedNoteOut]


@router.post("/notes/deidentified", response_model=DeidentifiedNotesOut, **action("health.document.deidentified"))
def notes(body: DeidentifiedNotesBody, context: Context, caller: Caller, warehouse: Warehouse) -> DeidentifiedNotesOut:
    """A person's notes de-identified, for a member of an approved pseudonymized project (audited first)."""
    result = deidentified_notes(caller, warehouse, body.person, project_id=body.project_id, purpose=body.purpose)
    items = [
        DeidentifiedNoteOut(record=n.record, note_date=n.note_date, title=n.title, text=n.text,
                            identifiers=n.identifiers, withheld=n.withheld,
                            note_type_concept_id=n.concepts.get("note_type_concept_id"),
                            note_class_concept_id=n.concepts.get("note_class_concept_id"))
        for n in result.notes
    ]  # fmt: skip
    return DeidentifiedNotesOut(person=result.person, audit_index=result.grant.audit_index, notes=items)
