"""A person's documents, de-identified, for a member of an approved pseudonymized project.

The one way a researcher reads clinical text (``health.document.deidentified``). Decided and audited
first, with the purpose, before anything is read; then:

- the person is named by the project pseudonym and searched among the project cohort's persons of the
  project's sites (a person of another site, or of no project cohort, is not found);
- only the person's notes dated within the project's period are read;
- every note's text and title go through :func:`massalia.health.documents.deid.deidentify_note` with the
  person's project date shift, the one their structured records get: names, addresses, phones, e-mails,
  NIR, hospital ids are replaced, dates moved. Names found in any of the person's notes are replaced in
  all of them (a first name written once with a title and once alone is caught in both);
- a note longer than the de-identifier accepts is withheld (cutting it could cut a name in half);
- out go the pseudonym, ordinals in date order, shifted dates, concept ids and the de-identified text:
  no warehouse id, no source value, and the replaced identifiers only as counts per type.

Clinicians read identified text through ``health.document.read`` (the patient timeline); this service
refuses a grant that is not pseudonymized.

Examples
--------
>>> notes = deidentified_notes(caller, warehouse, "p3-0123456789ABCDEF", project_id=3,
...                            purpose="Reviewing the relapse reports")  # doctest: +SKIP
>>> "[NOM]" in notes.notes[0].text  # doctest: +SKIP
True
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from massalia.engine import Engine
from massalia.governance import AccessDenied, Caller, Grant, InvalidRequest
from massalia.governance.limits import time_limited
from massalia.governance.policy import RowPolicy
from massalia.health.documents.deid import MAX_KNOWN_NAMES, MAX_TEXT_CHARS, deidentify_note, detect_identifiers
from massalia.health.research import MIN_PURPOSE_LENGTH, person_rows, project_person, project_scope

ACTION = "health.document.deidentified"
MAX_NOTES = 2_000
"""Most notes returned for one person (the oldest first); a person has a few dozen."""

_CONCEPTS = ("note_type_concept_id", "note_class_concept_id")


@dataclass(frozen=True)
class DeidentifiedNote:
    """One note as a project member sees it."""

    record: int
    note_date: dt.date | None
    text: str | None
    title: str | None
    concepts: dict[str, int | None]
    identifiers: dict[str, int]
    withheld: bool = False


@dataclass(frozen=True)
class DeidentifiedNotes:
    """A person's de-identified notes (by pseudonym), the grant and the audit entry of the decision."""

    person: str
    grant: Grant
    notes: list[DeidentifiedNote] = field(default_factory=list)


def _name_words(texts: list[str]) -> list[str]:
    """The name words found in a person's notes, most frequent first (bounded: MAX_KNOWN_NAMES)."""
    counts: Counter[str] = Counter()
    for text in texts:
        for start, end, kind in detect_identifiers(text):
            if kind == "name":
                counts.update(w for w in text[start:end].split() if len(w) >= 3 and not w.endswith("."))
    return [word for word, _ in counts.most_common(MAX_KNOWN_NAMES)]


def _note(position: int, row: dict[str, Any], shift: int, names: list[str]) -> DeidentifiedNote:
    text, title = row.get("note_text"), row.get("note_title")
    day = row.get("note_date")
    shifted = day + dt.timedelta(days=shift) if isinstance(day, dt.date) else None
    concepts = {name: row.get(name) for name in _CONCEPTS}
    if any(isinstance(v, str) and len(v) > MAX_TEXT_CHARS for v in (text, title)):
        return DeidentifiedNote(position, shifted, None, None, concepts, {}, withheld=True)
    found: Counter[str] = Counter()
    out: list[str | None] = []
    for value in (text, title):
        if not isinstance(value, str):
            out.append(None)
            continue
        result = deidentify_note(value, shift_days=shift, known_names=names)
        found.update(span.type for span in result.spans)
        out.append(result.text)
    return DeidentifiedNote(position, shifted, out[0], out[1], concepts, dict(found))


@time_limited
def deidentified_notes(
    caller: Caller, engine: Engine, person: str | int, *, project_id: int | None, purpose: str
) -> DeidentifiedNotes:
    """A person's notes de-identified (see the module docstring), decided and audited with ``purpose`` first.

    Raises
    ------
    InvalidRequest
        No purpose, or the person not named by a project pseudonym.
    AccessDenied
        Not a member of an approved pseudonymized project (the refusal is audited).
    NotFound
        No person of the project's cohort and sites has this pseudonym.
    """
    if not isinstance(purpose, str) or len(purpose.strip()) < MIN_PURPOSE_LENGTH:
        raise InvalidRequest(f"a purpose (at least {MIN_PURPOSE_LENGTH} characters) is required to read documents")
    reference = person if isinstance(person, str | int) and not isinstance(person, bool) else repr(person)
    detail = {"resource": {"person_id": reference}, "purpose": purpose.strip(), "channel": caller.channel}
    # Decided (and audited) first, whatever the person reference: a refusal says nothing of the person.
    grant = caller.authorize(ACTION, project_id=project_id, detail=detail)
    if not grant.pseudonymized or not grant.row_level or project_id is None:
        reason = "documents are de-identified for pseudonymized project access only"
        caller.governance.audit(caller.principal, ACTION, decision="denied", denied_because=reason,
                                project_id=project_id, resource={"person_id": reference})  # fmt: skip
        raise AccessDenied(ACTION, reason)
    if not isinstance(person, str):
        raise InvalidRequest("under a pseudonymized project, name the person by its project pseudonym")
    real, shift = project_person(caller, engine, ACTION, project_id, person)
    if not engine.table_exists("note"):
        return DeidentifiedNotes(person, grant)
    policy = RowPolicy.of(project_scope(caller, ACTION, project_id))
    table = engine.query(person_rows("note", real, policy))
    rows = sorted(table.to_pylist(), key=lambda r: (r.get("note_date") or dt.date.min, r.get("note_id") or 0))
    rows = rows[:MAX_NOTES]
    names = _name_words([r["note_text"] for r in rows if isinstance(r.get("note_text"), str)
                         and len(r["note_text"]) <= MAX_TEXT_CHARS])  # fmt: skip
    return DeidentifiedNotes(person, grant, [_note(i + 1, row, shift, names) for i, row in enumerate(rows)])
