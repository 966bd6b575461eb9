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
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from massalia.engine import Column, Engine
from massalia.governance import InvalidRequest
from massalia.safety.catalogue import load_catalogue
from massalia.safety.geo import district_of, in_city, to_lambert93
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
        """MD5 of the record's content (not its message id): a repeat of the same record hashes the same."""
        body = self.model_dump(mode="json", exclude={"message_id"})
        return hashlib.md5(json.dumps(body, sort_keys=True).encode()).hexdigest()  # noqa: S324 - a content key


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
        inside[placed] = in_city(xs[placed], ys[placed])
        zones[placed] = district_of(xs[placed], ys[placed])
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


_WRITE = threading.Lock()
"""One writer of the live log per process (report and incident ids are allocated under it)."""


def ensure_live_tables(engine: Engine) -> None:
    """The log's tables and the message table (idempotency and lineage of live events).

    One listing of the tables when they are all there (the case of every batch but the first).
    """
    existing = set(engine.list_tables())
    if not {REPORTS, INCIDENTS, LINKS, STREETS, ZONES} <= existing:
        ensure_tables(engine)
    if MESSAGES not in existing:
        engine.create_empty_table(MESSAGES, MESSAGE_COLUMNS)


def append(
    engine: Engine, events: Sequence[Mapped], *, channel: str, actor: str, now: dt.datetime | None = None
) -> list[Outcome]:
    """Append mapped events to the incident log in one transaction; repeats (same source and message id) add nothing.

    Returns one :class:`Outcome` per event, in order.
    """
    if len(events) > MAX_BATCH:
        raise InvalidRequest(f"{len(events)} events in one batch, over {MAX_BATCH}")
    received = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    run_id = f"live-{received:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    with _WRITE:
        ensure_live_tables(engine)
        known: dict[tuple[str, str], dict[str, Any]] = {}
        hashes: dict[tuple[str, str, str], tuple[int, int]] = {}
        versions: dict[tuple[str, str], int] = {}
        if events:
            known_rows, record_rows = _lookup(engine, events)
            for row in known_rows:
                known[(row["source"], row["message_id"])] = row
            for row in record_rows:
                key = (row["source"], row["source_id"])
                hashes[(*key, row["content_hash"])] = (int(row["report_id"]), int(row["incident_id"]))
                versions[key] = max(versions.get(key, 0), int(row["version"]))
        outcomes: list[Outcome] = []
        fresh: list[tuple[Mapped, Outcome, int, str]] = []
        next_report = engine.scalar_int(f"SELECT coalesce(max(report_id), 0) FROM {REPORTS}") + 1
        for mapped in events:
            e = mapped.event
            key = (e.source, e.message_id)
            digest = e.content_hash()
            if key in known:
                row = known[key]
                outcomes.append(Outcome(e.source, e.message_id, "duplicate", row["report_id"], row["incident_id"]))
                continue
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
        with engine.transaction():
            if fresh:
                _write_reports(engine, fresh, run_id, channel)
            # Outcomes that pointed at a report of this batch learn its incident now.
            by_report = {o.report_id: o.incident_id for _, o, _, _ in fresh}
            for outcome in outcomes:
                if outcome.incident_id in (None, -1) and outcome.report_id in by_report:
                    outcome.incident_id = by_report[outcome.report_id]
            new_messages = [o for o in outcomes if o.outcome != "duplicate"]
            if new_messages:
                engine.insert(
                    MESSAGES,
                    pa.table(
                        {
                            "source": [o.source for o in new_messages],
                            "message_id": [o.message_id for o in new_messages],
                            "report_id": pa.array([o.report_id for o in new_messages], pa.int64()),
                            "incident_id": pa.array([o.incident_id for o in new_messages], pa.int64()),
                            "outcome": [o.outcome for o in new_messages],
                            "channel": [channel] * len(new_messages),
                            "actor": [actor] * len(new_messages),
                            "received_at": pa.array([received] * len(new_messages), pa.timestamp("us")),
                            "run_id": [run_id] * len(new_messages),
                        }
                    ),
                )
    # A repeat inside the batch itself points at the first copy's outcome.
    for outcome in outcomes:
        if outcome.outcome == "duplicate" and outcome.incident_id is None:
            twin = next((o for o in outcomes if o.message_id == outcome.message_id and o is not outcome), None)
            if twin is not None:
                outcome.report_id, outcome.incident_id = twin.report_id, twin.incident_id
    return outcomes


def _lookup(engine: Engine, events: Sequence[Mapped]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The batch's known messages and the logged versions of its records, by two joins on a staged key table.

    Set-based: the batch's keys are written once as a table (values travel as data, never spliced into SQL) and
    joined with the message table and the log, instead of two ``IN`` lists of a thousand literals each, whose
    parsing alone cost more than the rest of the batch.
    """
    staged = f"_live_keys_{uuid.uuid4().hex[:12]}"
    engine.write_new_table(
        staged,
        pa.table(
            {
                "source": [m.event.source for m in events],
                "message_id": [m.event.message_id for m in events],
                "source_id": [m.event.source_id for m in events],
            }
        ),
    )
    try:
        known = engine.query(
            f"SELECT m.source, m.message_id, m.report_id, m.incident_id FROM {MESSAGES} AS m "
            f"JOIN (SELECT DISTINCT source, message_id FROM {staged}) AS k "
            "ON m.source = k.source AND m.message_id = k.message_id"
        ).to_pylist()
        records = engine.query(
            f"SELECT r.source, r.source_id, r.content_hash, r.version, r.report_id, r.incident_id FROM {REPORTS} AS r "
            f"JOIN (SELECT DISTINCT source, source_id FROM {staged}) AS k "
            "ON r.source = k.source AND r.source_id = k.source_id"
        ).to_pylist()
    finally:
        engine.drop_table(staged)
    return known, records


def _write_reports(engine: Engine, fresh: list[tuple[Mapped, Outcome, int, str]], run_id: str, channel: str) -> None:
    catalogue = load_catalogue()
    staged = f"_live_{uuid.uuid4().hex[:12]}"
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
        "attachments": pa.array([None] * len(fresh), pa.string()),
        "content_hash": [d for _, _, _, d in fresh],
        "source_file": [f"live:{channel}:{m.event.message_id}" for m, _, _, _ in fresh],
        "source_line": pa.array([0] * len(fresh), pa.int64()),
        "run_id": [run_id] * len(fresh),
        "catalogue_version": [catalogue.version] * len(fresh),
    }
    engine.write_new_table(staged, pa.table(rows))
    try:
        assignments = assign(engine, staged, {}, run_id).to_pylist()
        decided = {int(a["report_id"]): a for a in assignments}
        incidents: list[dict[str, Any]] = []
        for mapped, outcome, _, _ in fresh:
            a = decided[int(outcome.report_id or 0)]
            outcome.incident_id = int(a["incident_id"])
            outcome.outcome = str(a["rule"])
            outcome.x_l93, outcome.y_l93 = mapped.x_l93, mapped.y_l93
            if a["rule"] == "new_incident":
                outcome.incident = {
                    "incident_id": outcome.incident_id,
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
        report_table = pa.table(rows).append_column(
            "incident_id", pa.array([o.incident_id for _, o, _, _ in fresh], pa.int64())
        )
        # The columns by name (the insert names them): no catalogue lookup per batch.
        engine.insert(REPORTS, report_table.select([c.name for c in REPORT_COLUMNS]))
        if incidents:
            table = pa.Table.from_pylist(incidents)
            engine.insert(INCIDENTS, table.select([c.name for c in INCIDENT_COLUMNS]))
        links = pa.Table.from_pylist(assignments).append_column("run_id", pa.array([run_id] * len(assignments)))
        engine.insert(LINKS, links.select([c.name for c in LINK_COLUMNS]))
    finally:
        engine.drop_table(staged)
