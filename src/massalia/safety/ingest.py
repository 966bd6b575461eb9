"""Live ingest: one event at a time (HTTP or MQTT) into the same incident log as the batch deliveries.

An event is bounded JSON (:data:`MAX_EVENT_BYTES`), validated with pydantic; an error names the JSON path
(``$.occurred_at: ...``). It goes through the batch log's rules (:mod:`massalia.safety.log`):

- its source's local code is mapped with the catalogue (an unknown code is refused, naming it);
- its place is a point (WGS84 or Lambert-93) checked against the city outline and given its district, or a
  district alone;
- an exact repeat of a record already logged is not a new version, a changed record is its next version
  (history appends), a new record is matched across sources by :func:`massalia.safety.log.dedup.assign`,
  the very function of the batch loads, so a live report and a batch report of the same event share one incident.

Lineage: each report's ``source_file`` is ``live:<channel>:<message id>`` and its ``run_id`` the live batch's;
``safety_live_message`` keeps one row per ``(source, message id)`` -- the idempotency key: a redelivered
message (MQTT QoS 1 delivers *at least* once) or a feed sent twice is answered with the report it already made
and adds nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import threading
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from massalia.engine import Column, Engine
from massalia.governance import InvalidRequest
from massalia.safety.catalogue import load_catalogue
from massalia.safety.geo import district_of, to_lambert93
from massalia.safety.log import INCIDENTS, LINKS, REPORTS, ensure_tables
from massalia.safety.log.dedup import assign
from massalia.safety.log.tables import INCIDENT_COLUMNS, LINK_COLUMNS, REPORT_COLUMNS, STREETS, ZONES

MAX_EVENT_BYTES = 16 * 1024
MAX_BATCH = 5000
MESSAGES = "safety_live_message"
CITY_TIME = ZoneInfo("Europe/Paris")
"""The log keeps the city's wall-clock time (as the batch layouts write it); aware times are converted to it."""
MESSAGE_COLUMNS = (
    Column("source", "VARCHAR", False),
    Column("message_id", "VARCHAR", False),
    Column("report_id", "BIGINT"),
    Column("incident_id", "BIGINT"),
    Column("outcome", "VARCHAR", False),
    Column("channel", "VARCHAR", False),
    Column("actor", "VARCHAR", False),
    Column("received_at", "TIMESTAMP", False),
    Column("run_id", "VARCHAR", False),
)
Text = Annotated[str, Field(max_length=4000)]


class IngestError(InvalidRequest):
    """An event refused: the message names the JSON path (``$.field``) and what was wrong."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class LiveEvent(BaseModel):
    """One event of a source's feed (bounded; unknown fields refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    source: Literal["mc", "csu", "dtp"]
    message_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@/-]+$")
    source_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")
    occurred_at: dt.datetime
    local_code: str = Field(min_length=1, max_length=32)
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    x_l93: float | None = Field(default=None, ge=0, le=1_300_000)
    y_l93: float | None = Field(default=None, ge=6_000_000, le=7_200_000)
    zone: str | None = Field(default=None, pattern=r"^D(0[1-9]|1[0-6])$")
    address: str | None = Field(default=None, max_length=300)
    narrative: Text | None = None
    parties: str | None = Field(default=None, max_length=1000)
    status: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _place(self) -> LiveEvent:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("lon and lat come together")
        if (self.x_l93 is None) != (self.y_l93 is None):
            raise ValueError("x_l93 and y_l93 come together")
        if self.lon is None and self.x_l93 is None and self.zone is None:
            raise ValueError("a place is required: lon/lat, x_l93/y_l93 or zone")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs its UTC offset (e.g. 2026-12-07T21:00:00+01:00)")
        return self

    def content_hash(self) -> str:
        """MD5 of the record's content (not its message id): a repeat of the same record hashes the same.

        The bytes hashed are exactly ``json.dumps(body, sort_keys=True)`` of the JSON dump without the message id
        (the hashes already in the log must stay the same), written here field by field in sorted order: about
        half the generic encoder's time (5-7 us an event against 10-17), held equal to it by a Hypothesis test.
        """
        body = self.__pydantic_serializer__.to_python(self, mode="json", exclude=_NOT_HASHED)
        # Inline (no call per field): the model's JSON dump holds strings, floats and nulls only; anything else
        # (none today) goes to the generic encoder, so the bytes stay its own.
        text = ", ".join([
            key + ("null" if (value := body[name]) is None else encode_basestring_ascii(value)
                   if value.__class__ is str else value.__repr__()
                   if value.__class__ is float and math.isfinite(value) else json.dumps(value))
            for key, name in _HASH_KEYS
        ])  # fmt: skip
        return hashlib.md5(("{" + text + "}").encode()).hexdigest()  # noqa: S324 - a content key


_NOT_HASHED = {"message_id"}
_HASH_KEYS = tuple((f"{encode_basestring_ascii(name)}: ", name)
                   for name in sorted(LiveEvent.model_fields) if name not in _NOT_HASHED)  # fmt: skip
"""The hashed fields in ``json.dumps(sort_keys=True)`` order, each with its key as that encoder writes it."""


def _path(loc: Sequence[int | str]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def parse_event(raw: bytes | str | dict[str, Any], *, channel_source: str | None = None) -> LiveEvent:
    """Validate one event; ``channel_source`` is the source the channel is bound to (MQTT topic, URL).

    Raises
    ------
    IngestError
        Oversized, not JSON, a field out of bounds, or a ``source`` other than the channel's (a forged source).
    """
    if isinstance(raw, bytes | str):
        if len(raw) > MAX_EVENT_BYTES:
            raise IngestError("$", f"{len(raw)} bytes, over the {MAX_EVENT_BYTES} bytes an event may have")
        try:
            # One pass of pydantic's own JSON parser and validator (about 3 us an event, against 7 for
            # json.loads and then the model); a refused event takes the path below, which names its error.
            event = LiveEvent.model_validate_json(raw)
        except ValidationError:
            pass
        else:
            return _bound_to_channel(event, channel_source)
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise IngestError("$", f"not JSON ({error})") from None
    else:
        document = raw
    if not isinstance(document, dict):
        raise IngestError("$", "expected a JSON object")
    try:
        event = LiveEvent.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        raise IngestError(_path(first["loc"]), first["msg"]) from None
    return _bound_to_channel(event, channel_source)


def _bound_to_channel(event: LiveEvent, channel_source: str | None) -> LiveEvent:
    if channel_source is not None and event.source != channel_source:
        raise IngestError("$.source", f"{event.source!r} on the channel of source {channel_source!r} (forged source)")
    return event


@dataclass(frozen=True)
class Mapped:
    """An event after the log's rules: its type, family, wall-clock time, point and zone."""

    event: LiveEvent
    type_code: str
    family: str
    occurred_at: dt.datetime
    x_l93: float | None
    y_l93: float | None
    zone: str


def map_event(event: LiveEvent, *, now: dt.datetime | None = None) -> Mapped:
    """Apply the batch log's mapping and checks to one event (errors name the JSON path)."""
    mapped = map_events([event], now=now)[0]
    if isinstance(mapped, IngestError):
        raise mapped
    return mapped


def map_events(events: Sequence[LiveEvent], *, now: dt.datetime | None = None) -> list[Mapped | IngestError]:
    """Apply the batch log's mapping and checks to events; each is its :class:`Mapped` or the error naming its path.

    Points are projected and tested against the city outline for the whole batch at once (the outline has
    hundreds of vertices: one vectorised pass per batch, not one per event).
    """
    catalogue = load_catalogue()
    current = (now or dt.datetime.now(CITY_TIME)).astimezone(CITY_TIME).replace(tzinfo=None)
    xs = np.full(len(events), np.nan)
    ys = np.full(len(events), np.nan)
    lons = np.full(len(events), np.nan)
    lats = np.full(len(events), np.nan)
    for i, event in enumerate(events):
        if event.lon is not None and event.lat is not None:
            lons[i], lats[i] = event.lon, event.lat
        elif event.x_l93 is not None and event.y_l93 is not None:
            xs[i], ys[i] = event.x_l93, event.y_l93
    degrees = ~np.isnan(lons)
    if degrees.any():  # one projection for the batch's WGS84 points
        xs[degrees], ys[degrees] = to_lambert93(lons[degrees], lats[degrees])
    placed = ~np.isnan(xs)
    inside = np.zeros(len(events), dtype=bool)
    zones = np.zeros(len(events), dtype=np.int64)
    if placed.any():
        # district_of tests the city outline itself (0 outside): one outline test per batch, not two.
        zones[placed] = district_of(xs[placed], ys[placed])
        inside[placed] = zones[placed] > 0
    out: list[Mapped | IngestError] = []
    for i, event in enumerate(events):
        try:
            out.append(_mapped(event, catalogue, current, xs[i], ys[i], bool(inside[i]), int(zones[i])))
        except IngestError as error:
            out.append(error)
    return out


def _mapped(
    event: LiveEvent, catalogue: Any, current: dt.datetime, x: float, y: float, inside: bool, district: int
) -> Mapped:
    type_code = catalogue.resolve(event.source, event.local_code)
    if type_code is None:
        raise IngestError("$.local_code", f"unmapped local code {event.local_code!r} of source {event.source!r}")
    local = event.occurred_at.astimezone(CITY_TIME).replace(tzinfo=None)
    if local < dt.datetime(2000, 1, 1):
        raise IngestError("$.occurred_at", f"{event.occurred_at.isoformat()} is before 2000")
    if local > current + dt.timedelta(minutes=5):
        raise IngestError("$.occurred_at", f"{event.occurred_at.isoformat()} is in the future")
    zone = event.zone
    if not np.isnan(x):
        if not inside:
            where = "$.lat" if event.lon is not None else "$.x_l93"
            raise IngestError(where, "coordinates outside the city outline (impossible coordinates)")
        found = f"D{district:02d}"
        if zone is not None and zone != found:
            raise IngestError("$.zone", f"{zone} but the point lies in {found}")
        zone = found
    if zone is None:  # unreachable: the model requires a place
        raise IngestError("$", "a place is required: lon/lat, x_l93/y_l93 or zone")
    return Mapped(
        event, type_code, catalogue.types[type_code].family, local, None if np.isnan(x) else float(x),
        None if np.isnan(y) else float(y), zone,
    )  # fmt: skip


@dataclass
class Outcome:
    """What one event became: ``new_incident``, a dedup rule (joined an incident), ``new_version``, or ``duplicate``."""

    source: str
    message_id: str
    outcome: str
    report_id: int | None
    incident_id: int | None
    incident: dict[str, Any] | None = None
    narrative: str | None = None
    x_l93: float | None = None
    y_l93: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The outcome as returned to a feed (no personal data)."""
        return {
            "source": self.source,
            "message_id": self.message_id,
            "outcome": self.outcome,
            "report_id": self.report_id,
            "incident_id": self.incident_id,
        }


_WRITE = threading.RLock()
"""One writer of the live log per process (report and incident ids are allocated under it, held to the commit)."""
_READY: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()
"""Connections whose live tables (and session staging tables) were made: checked once, not on every batch."""
KEYS_STAGE = "_massalia_live_keys"
REPORTS_STAGE = "_massalia_live_reports"
KEY_COLUMNS = (Column("source", "VARCHAR", False), Column("message_id", "VARCHAR", False),
               Column("source_id", "VARCHAR", False))  # fmt: skip
STAGED_REPORT_COLUMNS = tuple(
    c for c in REPORT_COLUMNS
    if c.name in ("report_id", "source", "source_id", "version", "occurred_at", "zone", "x_l93", "y_l93", "address",
                  "type_code")
)  # fmt: skip
"""What the cross-source matching reads of a batch's new reports (:func:`massalia.safety.log.dedup.assign`)."""


def ensure_live_tables(engine: Engine) -> None:
    """The log's tables and the message table (idempotency and lineage of live events).

    One listing of the tables when they are all there (the case of every batch but the first).
    """
    existing = set(engine.list_tables())
    if not {REPORTS, INCIDENTS, LINKS, STREETS, ZONES} <= existing:
        ensure_tables(engine)
    if MESSAGES not in existing:
        engine.create_empty_table(MESSAGES, MESSAGE_COLUMNS)


def _staged_columns(columns: Sequence[Column]) -> str:
    return ", ".join(f"{c.name} {c.type}" for c in columns)


def _prepare(engine: Engine) -> bool:
    """Make the live tables once per connection; whether the batch stages in session-temporary tables.

    Session-temporary staging tables (DuckDB, PostgreSQL) are made once and emptied inside each batch's
    transaction: a batch pays two inserts and two deletes, where a new table per batch cost a listing of the
    catalogue, a create and a drop each (about 5 ms a listing on DuckDB).
    """
    temporary = engine.capabilities.temporary_tables
    if engine not in _READY:
        ensure_live_tables(engine)
        if temporary:
            for name, columns in ((KEYS_STAGE, KEY_COLUMNS), (REPORTS_STAGE, STAGED_REPORT_COLUMNS)):
                engine.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({_staged_columns(columns)})")
        _READY[engine] = True
    return temporary


@contextmanager
def live_write(engine: Engine) -> Iterator[None]:
    """The live log's writer: this process's write lock and one transaction, held to the commit.

    The ingest of a batch (:func:`append`) and the save of the alarms it changed share it: one commit per batch
    (group commit), and no other writer of this process allocates report or incident ids before it.
    """
    with _WRITE:
        try:
            with engine.transaction():
                yield
        except BaseException:
            # A lost connection takes its temporary tables with it: check them again on the next batch.
            _READY.pop(engine, None)
            raise


def append(
    engine: Engine, events: Sequence[Mapped], *, channel: str, actor: str, now: dt.datetime | None = None
) -> list[Outcome]:
    """Append mapped events to the incident log in one transaction; repeats (same source and message id) add nothing.

    Returns one :class:`Outcome` per event, in order. Inside :func:`live_write`, it joins that transaction.
    """
    if len(events) > MAX_BATCH:
        raise InvalidRequest(f"{len(events)} events in one batch, over {MAX_BATCH}")
    received = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    run_id = f"live-{received:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    with _WRITE:
        temporary = _prepare(engine)
        with live_write(engine):
            outcomes = _append(engine, events, channel=channel, actor=actor, received=received, run_id=run_id,
                               temporary=temporary)  # fmt: skip
    # A repeat inside the batch itself points at the first copy's outcome.
    first: dict[tuple[str, str], Outcome] = {}
    for outcome in outcomes:
        first.setdefault((outcome.source, outcome.message_id), outcome)
    for outcome in outcomes:
        if outcome.outcome == "duplicate" and outcome.incident_id is None:
            twin = first[(outcome.source, outcome.message_id)]
            if twin is not outcome:
                outcome.report_id, outcome.incident_id = twin.report_id, twin.incident_id
    return outcomes


def _append(
    engine: Engine,
    events: Sequence[Mapped],
    *,
    channel: str,
    actor: str,
    received: dt.datetime,
    run_id: str,
    temporary: bool,
) -> list[Outcome]:
    known: dict[tuple[str, str], dict[str, Any]] = {}
    hashes: dict[tuple[str, str, str], tuple[int, int]] = {}
    versions: dict[tuple[str, str], int] = {}
    next_report, next_incident = 1, 1
    if events:
        known_rows, record_rows, next_report, next_incident = _lookup(engine, events, temporary)
        for row in known_rows:
            known[(row["source"], row["message_id"])] = row
        for row in record_rows:
            key = (row["source"], row["source_id"])
            hashes[(*key, row["content_hash"])] = (int(row["report_id"]), int(row["incident_id"]))
            versions[key] = max(versions.get(key, 0), int(row["version"]))
    outcomes: list[Outcome] = []
    fresh: list[tuple[Mapped, Outcome, int, str]] = []
    for mapped in events:
        e = mapped.event
        key = (e.source, e.message_id)
        if key in known:
            row = known[key]
            outcomes.append(Outcome(e.source, e.message_id, "duplicate", row["report_id"], row["incident_id"]))
            continue
        digest = e.content_hash()
        if (e.source, e.source_id, digest) in hashes:  # the same record under another message id
            report, incident = hashes[(e.source, e.source_id, digest)]
            outcome = Outcome(e.source, e.message_id, "duplicate_row", report, incident)
        else:
            version = versions.get((e.source, e.source_id), 0) + 1
            versions[(e.source, e.source_id)] = version
            outcome = Outcome(e.source, e.message_id, "pending", next_report, None, narrative=e.narrative)
            outcome.extra["version"] = version
            hashes[(e.source, e.source_id, digest)] = (next_report, -1)
            fresh.append((mapped, outcome, version, digest))
            next_report += 1
        known[key] = {"report_id": outcome.report_id, "incident_id": None, "pending": outcome}
        outcomes.append(outcome)
    if fresh:
        _write_reports(engine, fresh, run_id, channel, next_incident, temporary)
    # Outcomes that pointed at a report of this batch learn its incident now.
    by_report = {o.report_id: o.incident_id for _, o, _, _ in fresh}
    for outcome in outcomes:
        if outcome.incident_id in (None, -1) and outcome.report_id in by_report:
            outcome.incident_id = by_report[outcome.report_id]
    new_messages = [o for o in outcomes if o.outcome != "duplicate"]
    if new_messages:
        count = len(new_messages)
        engine.insert(
            MESSAGES,
            pa.table(
                {
                    "source": [o.source for o in new_messages],
                    "message_id": [o.message_id for o in new_messages],
                    "report_id": pa.array([o.report_id for o in new_messages], pa.int64()),
                    "incident_id": pa.array([o.incident_id for o in new_messages], pa.int64()),
                    "outcome": [o.outcome for o in new_messages],
                    "channel": pa.repeat(pa.scalar(channel), count),
                    "actor": pa.repeat(pa.scalar(actor), count),
                    "received_at": pa.repeat(pa.scalar(received, pa.timestamp("us")), count),
                    "run_id": pa.repeat(pa.scalar(run_id), count),
                }
            ),
        )
    return outcomes


def _lookup(
    engine: Engine, events: Sequence[Mapped], temporary: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
    """The batch's known messages, the logged versions of its records and the next report and incident ids.

    One query: the batch's keys are staged once as a table (values travel as data, never spliced into SQL) and
    joined with the message table and the log, and the two ids ride along; the same work once took five round
    trips (a listing, a create, two joins and a drop) and two ``max`` queries.
    """
    keys = pa.table(
        {
            "source": [m.event.source for m in events],
            "message_id": [m.event.message_id for m in events],
            "source_id": [m.event.source_id for m in events],
        }
    )
    staged = _stage(engine, KEYS_STAGE, keys, temporary)
    try:
        rows = engine.query(
            f"SELECT 'm' AS kind, m.source, m.message_id AS key, CAST(NULL AS VARCHAR) AS content_hash, "
            f"CAST(NULL AS INTEGER) AS version, m.report_id, m.incident_id FROM {MESSAGES} AS m "
            f"JOIN (SELECT DISTINCT source, message_id FROM {staged}) AS k "
            "ON m.source = k.source AND m.message_id = k.message_id "
            f"UNION ALL SELECT 'r' AS kind, r.source, r.source_id AS key, r.content_hash, r.version, r.report_id, "
            f"r.incident_id FROM {REPORTS} AS r JOIN (SELECT DISTINCT source, source_id FROM {staged}) AS k "
            "ON r.source = k.source AND r.source_id = k.source_id "
            "UNION ALL SELECT 'n' AS kind, CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS key, "
            "CAST(NULL AS VARCHAR) AS content_hash, CAST(NULL AS INTEGER) AS version, "
            f"(SELECT coalesce(max(report_id), 0) FROM {REPORTS}) AS report_id, "
            f"(SELECT coalesce(max(incident_id), 0) FROM {INCIDENTS}) AS incident_id"
        ).to_pylist()
    finally:
        _unstage(engine, staged, temporary)
    known = [{"source": r["source"], "message_id": r["key"], "report_id": r["report_id"],
              "incident_id": r["incident_id"]} for r in rows if r["kind"] == "m"]  # fmt: skip
    records = [{"source": r["source"], "source_id": r["key"], "content_hash": r["content_hash"],
                "version": r["version"], "report_id": r["report_id"], "incident_id": r["incident_id"]}
               for r in rows if r["kind"] == "r"]  # fmt: skip
    ids = next(r for r in rows if r["kind"] == "n")
    return known, records, int(ids["report_id"] or 0) + 1, int(ids["incident_id"] or 0) + 1


def _stage(engine: Engine, name: str, rows: pa.Table, temporary: bool) -> str:
    """Put a batch's rows where SQL can join them; the table's name (emptied by :func:`_unstage`)."""
    if temporary:
        engine.insert(name, rows)
        return name
    staged = f"_live_{uuid.uuid4().hex[:12]}"  # engines without session tables: a table of the batch's own
    engine.write_new_table(staged, rows)
    return staged


def _unstage(engine: Engine, staged: str, temporary: bool) -> None:
    if temporary:
        engine.execute(f"DELETE FROM {staged}")
    else:
        engine.drop_table(staged)


def _write_reports(
    engine: Engine,
    fresh: list[tuple[Mapped, Outcome, int, str]],
    run_id: str,
    channel: str,
    next_incident: int,
    temporary: bool,
) -> None:
    catalogue = load_catalogue()
    count = len(fresh)
    rows = {
        "report_id": pa.array([o.report_id for _, o, _, _ in fresh], pa.int64()),
        "source": [m.event.source for m, _, _, _ in fresh],
        "source_id": [m.event.source_id for m, _, _, _ in fresh],
        "version": pa.array([v for _, _, v, _ in fresh], pa.int32()),
        "occurred_at": pa.array([m.occurred_at for m, _, _, _ in fresh], pa.timestamp("us")),
        "zone": [m.zone for m, _, _, _ in fresh],
        "x_l93": pa.array([m.x_l93 for m, _, _, _ in fresh], pa.float64()),
        "y_l93": pa.array([m.y_l93 for m, _, _, _ in fresh], pa.float64()),
        "address": pa.array([m.event.address for m, _, _, _ in fresh], pa.string()),
        "local_code": [m.event.local_code.upper() for m, _, _, _ in fresh],
        "type_code": [m.type_code for m, _, _, _ in fresh],
        "narrative": pa.array([m.event.narrative for m, _, _, _ in fresh], pa.string()),
        "parties": pa.array([m.event.parties for m, _, _, _ in fresh], pa.string()),
        "status": pa.array([m.event.status for m, _, _, _ in fresh], pa.string()),
        "attachments": pa.nulls(count, pa.string()),
        "content_hash": [d for _, _, _, d in fresh],
        "source_file": [f"live:{channel}:{m.event.message_id}" for m, _, _, _ in fresh],
        "source_line": pa.repeat(pa.scalar(0, pa.int64()), count),
        "run_id": pa.repeat(pa.scalar(run_id), count),
        "catalogue_version": pa.repeat(pa.scalar(catalogue.version), count),
    }
    table = pa.table(rows)
    # The matching reads the batch's reports in time order: handed over, not read back from the staged table.
    reports = sorted(
        (
            {"report_id": o.report_id, "source": m.event.source, "source_id": m.event.source_id, "version": v,
             "occurred_at": m.occurred_at}
            for m, o, v, _ in fresh
        ),
        key=lambda r: (r["occurred_at"], r["report_id"]),
    )  # fmt: skip
    staged = _stage(engine, REPORTS_STAGE, table.select([c.name for c in STAGED_REPORT_COLUMNS]), temporary)
    try:
        assignments = assign(engine, staged, {}, run_id, reports=reports, next_incident=next_incident)
    finally:
        _unstage(engine, staged, temporary)
    incident_ids = assignments.column("incident_id").to_pylist()
    rules = assignments.column("rule").to_pylist()
    decided = {
        int(r): (int(i), str(rule))
        for r, i, rule in zip(assignments.column("report_id").to_pylist(), incident_ids, rules, strict=True)
    }
    incidents: list[dict[str, Any]] = []
    for mapped, outcome, _, _ in fresh:
        incident_id, rule = decided[int(outcome.report_id or 0)]
        outcome.incident_id = incident_id
        outcome.outcome = rule
        outcome.x_l93, outcome.y_l93 = mapped.x_l93, mapped.y_l93
        if rule == "new_incident":
            outcome.incident = {
                "incident_id": incident_id,
                "occurred_at": mapped.occurred_at,
                "zone": mapped.zone,
                "x_l93": mapped.x_l93,
                "y_l93": mapped.y_l93,
                "type_code": mapped.type_code,
                "family": mapped.family,
                "first_source": mapped.event.source,
                "run_id": run_id,
            }
            incidents.append(outcome.incident)
    report_table = table.append_column("incident_id", pa.array([o.incident_id for _, o, _, _ in fresh], pa.int64()))
    # The columns by name (the insert names them): no catalogue lookup per batch.
    engine.insert(REPORTS, report_table.select([c.name for c in REPORT_COLUMNS]))
    if incidents:
        engine.insert(INCIDENTS, pa.Table.from_pylist(incidents).select([c.name for c in INCIDENT_COLUMNS]))
    links = assignments.append_column("run_id", pa.repeat(pa.scalar(run_id), assignments.num_rows))
    engine.insert(LINKS, links.select([c.name for c in LINK_COLUMNS]))
