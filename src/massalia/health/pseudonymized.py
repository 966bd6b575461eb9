"""What a pseudonymized person-level output may carry: an allow-list, every column classified.

A pseudonymized output (a patient view, a cohort explanation, under a project's pseudonymized grant)
carries only columns this module classifies; anything else is dropped, whatever it is called:

=================  ===================================================================================
``pseudonym``      ``person_id``, ``subject_id``: replaced by the project's pseudonym
``shifted date``   every date or timestamp: moved by the person's project shift
``date part``      ``year_of_birth``, ``month_of_birth``, ``day_of_birth``: derived from the *shifted*
                   birth date, so they agree with it and reveal nothing of the shift
``concept id``     ``*_concept_id``: vocabulary codes, the same for everyone
``value``          measured values and quantities (``value_as_number``, ``range_low``, ``quantity``...)
``ordinal``        the record's own id and visit references: replaced by numbers 1, 2, ... local to the
                   output (ordered by date), which link records within the output and nothing else
=================  ===================================================================================

Dropped therefore: every other ``*_id`` (visit, provider, care site, location, record ids of other
tables, event ids), every ``*_source_value``, free text (``sig``, ``stop_reason``, ``value_as_string``,
``lot_number``...), and any column a future table adds until it is classified here.

A birth date known only by its parts (no ``birth_datetime``) is rebuilt as the 1st of its month (July 1st
when the month is missing), shifted, and only the parts the warehouse had are released. The year a
shift can move: a person born near the 1st of January may be shown born the year before or after. That
is the point: a real year beside shifted dates would give away the shift, and with it every real date.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from massalia.governance.pseudonym import is_temporal, shift_dates

VALUE_COLUMNS = frozenset({"value_as_number", "range_low", "range_high", "quantity", "days_supply", "refills"})
"""Measured values and quantities released as they are (numbers: no identifier hides in them)."""

DATE_PARTS = ("year_of_birth", "month_of_birth", "day_of_birth")
"""OMOP PERSON's birth date parts, derived from the shifted birth date."""

PERSON_COLUMNS = frozenset({"person_id", "subject_id"})
RECORD_COLUMNS = frozenset({"event_id", "record_id"})
"""Record ids of a cohort explanation (entry events, evidence records): replaced by ordinals."""

VISIT_REFERENCES = {"visit_occurrence_id": "visit", "preceding_visit_occurrence_id": "preceding_visit"}
"""Visit references of a patient view: replaced by the visit's ordinal in the view."""

RECORD = "record"
"""The column that carries a record's ordinal in a pseudonymized table (1, 2, ... in date order)."""


class Release(enum.Enum):
    """How a column leaves a pseudonymized output."""

    PSEUDONYM = "pseudonym"
    SHIFTED_DATE = "shifted date"
    DATE_PART = "date part"
    CONCEPT_ID = "concept id"
    VALUE = "value"
    ORDINAL = "ordinal"


def release_of(name: str, kind: pa.DataType | None = None, *, table: str | None = None) -> Release | None:
    """How column ``name`` (of Arrow type ``kind``, in OMOP ``table``) may leave; ``None``: it is dropped.

    Examples
    --------
    >>> release_of("condition_concept_id"), release_of("visit_occurrence_id"), release_of("provider_id")
    (<Release.CONCEPT_ID: 'concept id'>, <Release.ORDINAL: 'ordinal'>, None)
    >>> release_of("year_of_birth"), release_of("condition_source_value")
    (<Release.DATE_PART: 'date part'>, None)
    """
    lowered = name.lower()
    if lowered in PERSON_COLUMNS:
        return Release.PSEUDONYM
    if lowered.endswith("_concept_id"):
        return Release.CONCEPT_ID
    if lowered in RECORD_COLUMNS or lowered in VISIT_REFERENCES or (table and lowered == f"{table}_id"):
        return Release.ORDINAL
    if kind is not None and is_temporal(kind):
        return Release.SHIFTED_DATE
    if lowered in DATE_PARTS:
        return Release.DATE_PART
    if lowered in VALUE_COLUMNS and (kind is None or pa.types.is_integer(kind) or pa.types.is_floating(kind)
                                     or pa.types.is_decimal(kind)):  # fmt: skip
        return Release.VALUE
    return None


def shift_value(value: object, days: int) -> object:
    """A Python date or timestamp moved by ``days`` (other values unchanged)."""
    if isinstance(value, dt.datetime | dt.date):
        return value + dt.timedelta(days=days)
    return value


def pseudonymized_record(row: Mapping[str, object], pseudonym: str, shift: int, ordinal: int) -> dict[str, object]:
    """One record of a cohort explanation, allow-listed: pseudonym, shifted dates, concept ids, values.

    ``event_id`` / ``record_id`` become ``ordinal``; every other id is dropped.

    Examples
    --------
    >>> pseudonymized_record({"person_id": 9, "event_id": 77, "visit_occurrence_id": 5,
    ...                       "start_date": dt.date(2020, 1, 10)}, "p1-X", -3, 1)
    {'person_id': 'p1-X', 'event_id': 1, 'start_date': datetime.date(2020, 1, 7)}
    """
    out: dict[str, object] = {}
    for key, value in row.items():
        temporal = isinstance(value, dt.date)
        release = release_of(key, pa.date32() if temporal else None)
        if release is Release.PSEUDONYM:
            out[key] = pseudonym
        elif release is Release.ORDINAL and key in RECORD_COLUMNS:
            out[key] = ordinal
        elif release is Release.SHIFTED_DATE:
            out[key] = shift_value(value, shift)
        elif release in (Release.CONCEPT_ID, Release.VALUE) and not temporal:
            out[key] = value
    return out


def visit_ordinals(visits: pa.Table | None) -> dict[int, int]:
    """Each visit id of a patient view → its ordinal (1, 2, ... by start date), for the visit references."""
    if visits is None or visits.num_rows == 0 or "visit_occurrence_id" not in visits.column_names:
        return {}
    ordered = _date_order(visits, "visit_occurrence")
    ids = ordered.column("visit_occurrence_id").to_pylist()
    return {int(visit): position + 1 for position, visit in enumerate(ids) if visit is not None}


def _date_order(table: pa.Table, name: str) -> pa.Table:
    """The rows in date order (then by record id): the output order must not follow the warehouse's ids."""
    keys = [(field.name, "ascending") for field in table.schema if is_temporal(field.type)][:1]
    if f"{name}_id" in table.column_names:
        keys.append((f"{name}_id", "ascending"))
    return table.sort_by(keys) if keys else table


def _birth_date(table: pa.Table) -> pa.Array:
    """Each PERSON row's birth date: ``birth_datetime``'s date, else rebuilt from the parts (see module doc)."""
    rows = table.select([c for c in ("birth_datetime", *DATE_PARTS) if c in table.column_names]).to_pylist()
    dates: list[dt.date | None] = []
    for row in rows:
        moment = row.get("birth_datetime")
        if isinstance(moment, dt.date):
            dates.append(moment.date() if isinstance(moment, dt.datetime) else moment)
        elif row.get("year_of_birth") is not None:
            month = row.get("month_of_birth") or 7
            day = (row.get("day_of_birth") or 1) if row.get("month_of_birth") else 1
            dates.append(dt.date(int(row["year_of_birth"]), int(month), int(day)))
        else:
            dates.append(None)
    return pa.array(dates, pa.date32())


def pseudonymized_table(
    table: pa.Table, name: str, pseudonym: str, shift: int, visits: Mapping[int, int] | None = None
) -> pa.Table:
    """One OMOP table of a patient view, allow-listed (see the module docstring), rows in date order.

    Parameters
    ----------
    table
        The person's rows of OMOP table ``name``.
    name
        The OMOP table name (its ``<name>_id`` is the record id, replaced by ``record``).
    pseudonym, shift
        The person's project pseudonym and date shift in days.
    visits
        Visit id → ordinal in this view (``visit_ordinals``); references to other visits become null.

    Examples
    --------
    >>> rows = pa.table({"person_id": [4], "condition_occurrence_id": [812], "condition_concept_id": [1],
    ...                  "condition_start_date": [dt.date(2020, 5, 1)], "visit_occurrence_id": [31],
    ...                  "provider_id": [2], "condition_source_value": ["C50"]})
    >>> shown = pseudonymized_table(rows, "condition_occurrence", "p1-X", 10, {31: 1})
    >>> shown.column_names
    ['person_id', 'record', 'condition_concept_id', 'condition_start_date', 'visit']
    >>> shown.column("condition_start_date").to_pylist(), shown.column("record").to_pylist()
    ([datetime.date(2020, 5, 11)], [1])
    """
    table = _date_order(table, name)
    rows = table.num_rows
    shifts = pa.array([shift] * rows, pa.int32())
    birth = shift_dates(_birth_date(table), shifts) if any(p in table.column_names for p in DATE_PARTS) else None
    columns: list[pa.Array | pa.ChunkedArray] = []
    names: list[str] = []
    for column_name, column in zip(table.column_names, table.columns, strict=True):
        release = release_of(column_name, column.type, table=name)
        if release is Release.PSEUDONYM:
            columns.append(pa.array([pseudonym] * rows, pa.string()))
        elif release is Release.ORDINAL and column_name == f"{name}_id":
            # The record's own id (a visit's too: its ``record`` is the ``visit`` number others refer to).
            columns.append(pa.array(range(1, rows + 1), pa.int64()))
            column_name = RECORD
        elif release is Release.ORDINAL and column_name in VISIT_REFERENCES:
            mapping = visits or {}
            values = [mapping.get(int(v)) if v is not None else None for v in column.to_pylist()]
            columns.append(pa.array(values, pa.int64()))
            column_name = VISIT_REFERENCES[column_name]
        elif release is Release.SHIFTED_DATE:
            columns.append(shift_dates(column.combine_chunks(), shifts))
        elif release is Release.DATE_PART and birth is not None:
            part = {"year_of_birth": pc.year, "month_of_birth": pc.month, "day_of_birth": pc.day}[column_name]
            derived = pc.cast(part(birth), column.type)
            # Only the parts the warehouse had: a missing month stays missing.
            columns.append(pc.if_else(pc.is_valid(column), derived, pa.nulls(rows, column.type)))
        elif release in (Release.CONCEPT_ID, Release.VALUE):
            columns.append(column)
        else:
            continue
        names.append(column_name)
    return pa.table(columns, names=names) if names else table.select([])
