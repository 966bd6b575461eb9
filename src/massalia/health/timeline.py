"""A patient's timeline: their records as one list of dated events, for those allowed to see the patient.

Built on the guarded patient view (:func:`massalia.health.research.patient_view`): the same right
(``health.patient.view``: a clinician's own site, identified; a member of an approved pseudonymized project,
by project pseudonym, allow-listed with shifted dates), the same scope (the project's sites and period), and
the same audit entry written with the purpose before anything is read. This module only reshapes the tables
the view returned into events: diagnoses, episodes, treatments (drug exposures, procedures), labs
(measurements), documents, visits, observations and death, each with its date, concept and name.

Documents show their date, type and (identified only) title. Their **text** is shown only when asked for and
only under ``health.document.read`` (a clinician of the patient's own site), a second audited decision; under
a pseudonymized grant free text never leaves (the allow-list drops it), so asking for it is refused.

Examples
--------
>>> timeline = patient_timeline(caller, warehouse, 42, purpose="Tumour board of 12 May")  # doctest: +SKIP
>>> timeline.events[0]["kind"]  # doctest: +SKIP
'diagnosis'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlglot import exp

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest, Role
from massalia.health.pseudonymized import RECORD, VISIT_REFERENCES
from massalia.health.records import json_value
from massalia.health.research import patient_view, person_site

TEXT_ACTION = "health.document.read"


@dataclass(frozen=True)
class EventSource:
    """How the rows of one OMOP table become events: their kind, dates, concept and extra fields."""

    table: str
    kind: str
    start: str
    end: str | None
    concept: str
    extra: tuple[str, ...] = ()


EVENT_SOURCES: tuple[EventSource, ...] = (
    EventSource("condition_occurrence", "diagnosis", "condition_start_date", "condition_end_date",
                "condition_concept_id", ("condition_status_concept_id",)),
    EventSource("episode", "episode", "episode_start_date", "episode_end_date", "episode_concept_id",
                ("episode_object_concept_id",)),
    EventSource("drug_exposure", "drug", "drug_exposure_start_date", "drug_exposure_end_date", "drug_concept_id",
                ("route_concept_id", "quantity", "days_supply")),
    EventSource("procedure_occurrence", "procedure", "procedure_date", "procedure_end_date", "procedure_concept_id"),
    EventSource("measurement", "lab", "measurement_date", None, "measurement_concept_id",
                ("value_as_number", "value_as_concept_id", "unit_concept_id", "range_low", "range_high")),
    EventSource("note", "document", "note_date", None, "note_type_concept_id", ("note_class_concept_id",)),
    EventSource("visit_occurrence", "visit", "visit_start_date", "visit_end_date", "visit_concept_id"),
    EventSource("observation", "observation", "observation_date", None, "observation_concept_id",
                ("value_as_number", "value_as_concept_id", "unit_concept_id")),
    EventSource("death", "death", "death_date", None, "cause_concept_id"),
)  # fmt: skip
"""Every table of the timeline and how its rows read as events (OMOP's own column names)."""

KINDS: tuple[str, ...] = tuple(source.kind for source in EVENT_SOURCES)
TREATMENT_KINDS = frozenset({"drug", "procedure"})
"""The kinds a portal groups as treatments."""
TIMELINE_TABLES: tuple[str, ...] = ("person", *(source.table for source in EVENT_SOURCES))


@dataclass(frozen=True)
class Timeline:
    """A patient's events in date order, the person as named, and the audit entries of the decisions."""

    person: int | str
    pseudonymized: bool
    audit_index: int | None
    text_audit_index: int | None
    demographics: dict[str, Any]
    events: list[dict[str, Any]]


def _concept_names(engine: Engine, ids: Iterable[int]) -> dict[int, str]:
    """Names of the concepts ``ids`` (vocabulary metadata, the same for everyone)."""
    wanted = sorted({int(i) for i in ids if i})
    if not wanted or not engine.table_exists("concept"):
        return {}
    names: dict[int, str] = {}
    for start in range(0, len(wanted), 1000):  # bounded IN lists
        chunk = [exp.Literal.number(i) for i in wanted[start : start + 1000]]
        query = exp.select("concept_id", "concept_name").from_("concept").where(exp.column("concept_id").isin(*chunk))
        names.update({int(row["concept_id"]): str(row["concept_name"]) for row in engine.query(query).to_pylist()})
    return names


def _events(source: EventSource, table: pa.Table, *, pseudonymized: bool, with_text: bool) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    record_column = RECORD if pseudonymized else f"{source.table}_id"
    visit_column = VISIT_REFERENCES["visit_occurrence_id"] if pseudonymized else "visit_occurrence_id"
    for row in table.to_pylist():
        event: dict[str, Any] = {
            "kind": source.kind,
            "date": json_value(row.get(source.start)),
            "end_date": json_value(row.get(source.end)) if source.end else None,
            "concept_id": row.get(source.concept),
            "record": row.get(record_column),
            "visit": row.get(visit_column) if source.table != "visit_occurrence" else None,
        }
        event.update({name: json_value(row[name]) for name in source.extra if row.get(name) is not None})
        if source.table == "note" and not pseudonymized:
            event["title"] = row.get("note_title")
            if with_text:
                event["text"] = row.get("note_text")
        events.append(event)
    return events


def _named(events: list[dict[str, Any]], names: Mapping[int, str]) -> list[dict[str, Any]]:
    for event in events:
        for key in [k for k in event if k.endswith("concept_id")]:
            value = event[key]
            if isinstance(value, int) and value in names:
                event[key.removesuffix("_id") + "_name"] = names[value]
    return events


def _demographics(table: pa.Table | None) -> dict[str, Any]:
    rows = table.to_pylist() if table is not None else []
    if not rows:
        return {}
    keep = ("year_of_birth", "month_of_birth", "gender_concept_id", "race_concept_id", "ethnicity_concept_id")
    return {name: json_value(rows[0][name]) for name in keep if rows[0].get(name) is not None}


def patient_timeline(
    caller: Caller,
    engine: Engine,
    person: int | str,
    *,
    purpose: str,
    project_id: int | None = None,
    kinds: Sequence[str] | None = None,
    with_text: bool = False,
) -> Timeline:
    """One patient's events in date order, through the guarded patient view (audited with ``purpose``).

    ``kinds`` keeps only some kinds of event (:data:`KINDS`); ``with_text`` asks for the documents' text,
    decided (and audited) first as ``health.document.read``: a refusal stops the call before any record is read.
    """
    principal = caller.principal
    chosen = tuple(kinds) if kinds is not None else KINDS
    unknown = sorted(set(chosen) - set(KINDS))
    if unknown:
        raise InvalidRequest(f"unknown event kind(s) {', '.join(unknown)}; kinds are {', '.join(KINDS)}")
    text_index = None
    if with_text:
        site = person_site(engine, person) if principal.has_role(Role.CLINICIAN) and isinstance(person, int) else None
        detail = {"resource": {"person_id": person}, "purpose": purpose.strip() if isinstance(purpose, str) else None,
                  "channel": caller.channel}  # fmt: skip
        text_index = caller.authorize(TEXT_ACTION, project_id=project_id, site=site, detail=detail).audit_index
    sources = [source for source in EVENT_SOURCES if source.kind in chosen]
    tables = ("person", *{source.table for source in sources} | ({"visit_occurrence"} if sources else set()))
    view = patient_view(caller, engine, person, purpose=purpose, project_id=project_id,
                        sections=[name for name in TIMELINE_TABLES if name in tables])  # fmt: skip
    pseudonymized = view.grant.pseudonymized
    text = with_text and not pseudonymized
    events = [
        event
        for source in sources
        if source.table in view.tables
        for event in _events(source, view.tables[source.table], pseudonymized=pseudonymized, with_text=text)
    ]
    events.sort(key=lambda event: (event["date"] is None, event["date"] or "", KINDS.index(event["kind"])))
    names = _concept_names(engine, (v for e in events for k, v in e.items() if k.endswith("concept_id") and v))
    return Timeline(view.person, pseudonymized, view.grant.audit_index, text_index,
                    _demographics(view.tables.get("person")), _named(events, names))  # fmt: skip
