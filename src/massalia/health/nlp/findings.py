"""One patient's NLP findings (NOTE_NLP) with their qualifiers, for those who may open that patient.

The same right, scope and audit as the patient timeline (``health.patient.view``): the decision is taken
through :func:`massalia.health.research.patient_view` (audited with the purpose before anything is read), so

- a **clinician** of the patient's own site names the person by ``person_id`` and gets identified findings:
  the note's id and date, the words found (``lexical_variant``), their offset and the stored snippet;
- a **member of an approved pseudonymized project** names the person by the project pseudonym (searched
  among the project cohort's persons of its sites) and gets, for the notes of the project's period only, the
  note's ordinal (the ``record`` of the timeline and of the de-identified notes, date order), the note's date
  and a date finding's value moved by the person's project shift, labels, values, concepts and qualifiers.
  The words found are free text: each is shown only when no identifier the de-identifier finds in the whole
  note (with the names found in all the person's notes) touches it, else it is withheld. No offset, no
  snippet, no warehouse id;
- **anybody else** is refused (audited) before the person is looked up, so a refusal is the same for an
  unknown and an existing pseudonym.

Examples
--------
>>> found = patient_findings(caller, warehouse, 42, purpose="Tumour board of 12 May")  # doctest: +SKIP
>>> found.findings[0]["label"], found.findings[0]["negated"]  # doctest: +SKIP
('biomarker', False)
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from massalia.engine import Engine
from massalia.governance import Caller
from massalia.governance.limits import time_limited
from massalia.governance.policy import RowPolicy
from massalia.health.documents.deid import MAX_KNOWN_NAMES, MAX_TEXT_CHARS, deidentify_note, detect_identifiers
from massalia.health.nlp.store import SYSTEM_PREFIX
from massalia.health.research import patient_view, person_rows, project_person, project_scope

ACTION = "health.patient.view"
"""The timeline's right: whoever may open the patient may read the findings in their notes."""
QUALIFIERS = ("negated", "hypothesis", "family", "history")
MAX_FINDINGS = 20_000
"""Most findings returned for one person (a person has a few hundred)."""
IN_CHUNK = 1_000
"""Note ids per ``IN`` list (bounded queries)."""


@dataclass(frozen=True)
class PatientFindings:
    """The person as named, whether pseudonymized, the audit entry of the decision, the findings in note order."""

    person: int | str
    pseudonymized: bool
    audit_index: int | None
    findings: list[dict[str, Any]] = field(default_factory=list)
    withheld: int = 0
    """Findings whose words were withheld (an identifier touches them): counted, their words not shown."""


def parse_modifiers(text: str | None) -> dict[str, str]:
    """The ``term_modifiers`` text of a NOTE_NLP row as a mapping (``label=…;value=…;negated=…``).

    Examples
    --------
    >>> parse_modifiers("label=biomarker;value=her2:positive;negated=false")["value"]
    'her2:positive'
    """
    return dict(part.split("=", 1) for part in str(text or "").split(";") if "=" in part)


def _name_words(texts: Sequence[str]) -> list[str]:
    """Name words found in a person's notes (most frequent first, bounded), replaced in every note of theirs."""
    counts: Counter[str] = Counter()
    for text in texts:
        for start, end, kind in detect_identifiers(text):
            if kind == "name":
                counts.update(w for w in text[start:end].split() if len(w) >= 3 and not w.endswith("."))
    return [word for word, _ in counts.most_common(MAX_KNOWN_NAMES)]


def _rows(engine: Engine, note_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The pipeline's NOTE_NLP rows of the notes ``note_ids`` joined with their concept's name."""
    out: list[dict[str, Any]] = []
    ids = sorted(set(note_ids))
    for start in range(0, len(ids), IN_CHUNK):
        chunk = [exp.Literal.number(i) for i in ids[start : start + IN_CHUNK]]
        query = (
            exp.select("x.note_id", exp.column("offset", table="x", quoted=True).as_("start"), "x.lexical_variant",
                       "x.snippet", "x.note_nlp_concept_id", "x.term_exists", "x.term_temporal", "x.term_modifiers",
                       exp.column("concept_name", table="c").as_("concept_name"))
            .from_(exp.to_table("note_nlp").as_("x"))
            .join(exp.to_table("concept").as_("c"), on="c.concept_id = x.note_nlp_concept_id", join_type="left")
            .where(exp.column("note_id", table="x").isin(*chunk))
            .where(exp.column("nlp_system", table="x").like(exp.Literal.string(f"{SYSTEM_PREFIX}%")))
        )  # fmt: skip
        out += engine.query(query).to_pylist()
    out.sort(key=lambda r: (int(r["note_id"]), int(r["start"] or 0), str(r["lexical_variant"] or "")))
    return out[:MAX_FINDINGS]


def _shifted_value(label: str, value: str, shift: int) -> str:
    """A date finding's ISO value moved by the person's shift (any other value is a code, kept)."""
    if label != "date" or shift == 0:
        return value
    try:
        return (dt.date.fromisoformat(value) + dt.timedelta(days=shift)).isoformat()
    except ValueError:  # a partial date (a year, a month): not shown rather than unshifted
        return ""


def _finding(row: Mapping[str, Any]) -> dict[str, Any]:
    fields = parse_modifiers(row.get("term_modifiers"))
    concept = int(row.get("note_nlp_concept_id") or 0)
    found: dict[str, Any] = {
        "label": fields.get("label", ""),
        "value": fields.get("value", ""),
        "concept_id": concept,
        "concept_name": row.get("concept_name") if concept else None,
        "term_exists": row.get("term_exists"),
        "term_temporal": row.get("term_temporal"),
    }
    found.update({q: fields.get(q) == "true" for q in QUALIFIERS})
    return found


def _has_findings_table(engine: Engine) -> bool:
    return engine.table_exists("note_nlp") and engine.table_exists("note")


@time_limited
def patient_findings(
    caller: Caller, engine: Engine, person: int | str, *, purpose: str, project_id: int | None = None
) -> PatientFindings:
    """One patient's NOTE_NLP findings as the caller may see them (see the module docstring).

    Raises
    ------
    InvalidRequest
        No purpose, or the person named the wrong way for the grant.
    AccessDenied
        The caller may not open this patient (audited; before the person is looked up).
    NotFound
        No person of the project's cohort and sites has this pseudonym.
    """
    # The timeline's decision, audit and scope check: a refusal is raised here, before any finding is read.
    view = patient_view(caller, engine, person, purpose=purpose, project_id=project_id, sections=("person",))
    pseudonymized = view.grant.pseudonymized
    audit_index = view.grant.audit_index
    if not _has_findings_table(engine):
        return PatientFindings(view.person, pseudonymized, audit_index)
    if pseudonymized and project_id is not None:
        real, shift = project_person(caller, engine, ACTION, project_id, person)
        policy: RowPolicy | None = RowPolicy.of(project_scope(caller, ACTION, project_id))
    else:
        real, shift, policy = int(person), 0, None
    notes = sorted(engine.query(person_rows("note", real, policy)).to_pylist(),
                   key=lambda r: (r.get("note_date") or dt.date.min, r.get("note_id") or 0))  # fmt: skip
    by_id = {int(n["note_id"]): (position + 1, n) for position, n in enumerate(notes)}
    rows = _rows(engine, list(by_id))
    if not pseudonymized:
        findings = []
        for row in rows:
            _, note = by_id[int(row["note_id"])]
            found = {"note_id": int(row["note_id"]), "note_date": _iso(note.get("note_date")),
                     "note_title": note.get("note_title"), **_finding(row),
                     "lexical_variant": row.get("lexical_variant"), "offset": int(row["start"] or 0),
                     "snippet": row.get("snippet")}  # fmt: skip
            findings.append(found)
        return PatientFindings(view.person, False, audit_index, findings)
    texts = [str(n.get("note_text") or "") for n in notes if len(str(n.get("note_text") or "")) <= MAX_TEXT_CHARS]
    names = _name_words(texts)
    spans: dict[int, list[tuple[int, int]] | None] = {}
    findings, withheld = [], 0
    for row in rows:
        note_id = int(row["note_id"])
        record, note = by_id[note_id]
        if note_id not in spans:
            text = str(note.get("note_text") or "")
            spans[note_id] = (
                None if len(text) > MAX_TEXT_CHARS
                else [(s.start, s.end) for s in deidentify_note(text, shift_days=shift, known_names=names).spans]
            )  # fmt: skip
        identifiers = spans[note_id]
        variant = str(row.get("lexical_variant") or "")
        start = int(row["start"] or 0)
        end = start + len(variant)
        # Shown only when the de-identifier could read the whole note and no identifier it found touches the words.
        touched = identifiers is None or any(a < end and start < b for a, b in identifiers)
        found = _finding(row)
        found["value"] = _shifted_value(found["label"], found["value"], shift)
        day = note.get("note_date")
        found = {"record": record, "note_date": _iso(day + dt.timedelta(days=shift) if isinstance(day, dt.date)
                                                      else None),
                 **found, "lexical_variant": None if touched else variant, "withheld": touched}  # fmt: skip
        withheld += touched
        findings.append(found)
    return PatientFindings(view.person, True, audit_index, findings, withheld)


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else None


__all__ = ["ACTION", "PatientFindings", "parse_modifiers", "patient_findings"]
