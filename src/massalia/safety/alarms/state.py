"""The alarms' durable state: ``safety_alarm`` (one row per alarm) and ``safety_alarm_history`` (every change).

At most one alarm per (rule, key) is not closed at any time (deduplication): a new match of an open,
acknowledged or snoozed alarm *groups* into it (its count and incidents grow) instead of opening another. The
states: ``open`` -> ``acknowledged`` -> ``closed``; ``snoozed`` (until a time, then ``open`` again); an open
alarm left unacknowledged past its rule's delay is escalated (``level`` + 1). Every state change is a row of
the history and an entry of the core audit (by the service that made it).
"""

from __future__ import annotations

import datetime as dt
import json
import weakref
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from massalia.engine import Column, Engine

ALARMS = "safety_alarm"
HISTORY = "safety_alarm_history"
RULESETS = "safety_alarm_ruleset"
STATUSES = ("open", "acknowledged", "snoozed", "closed")
MAX_GROUPED = 200
"""Incident ids kept per alarm (the count keeps growing past it)."""

ALARM_COLUMNS = (
    Column("alarm_id", "BIGINT", False),
    Column("rule_id", "VARCHAR", False),
    Column("rule_version", "INTEGER", False),
    Column("kind", "VARCHAR", False),
    Column("key", "VARCHAR", False),
    Column("title", "VARCHAR", False),
    Column("severity", "VARCHAR", False),
    Column("status", "VARCHAR", False),
    Column("level", "INTEGER", False),
    Column("opened_at", "TIMESTAMP", False),
    Column("updated_at", "TIMESTAMP", False),
    Column("last_event_at", "TIMESTAMP"),
    Column("event_count", "BIGINT", False),
    Column("incidents", "VARCHAR", False),
    Column("zone", "VARCHAR"),
    Column("type_code", "VARCHAR"),
    Column("x_l93", "DOUBLE"),
    Column("y_l93", "DOUBLE"),
    Column("detail", "VARCHAR", False),
    Column("snoozed_until", "TIMESTAMP"),
    Column("reason", "VARCHAR"),
)
HISTORY_COLUMNS = (
    Column("history_id", "BIGINT", False),
    Column("alarm_id", "BIGINT", False),
    Column("changed_at", "TIMESTAMP", False),
    Column("change", "VARCHAR", False),
    Column("status", "VARCHAR", False),
    Column("actor", "VARCHAR", False),
    Column("reason", "VARCHAR"),
)
RULESET_COLUMNS = (
    Column("version", "INTEGER", False),
    Column("digest", "VARCHAR", False),
    Column("declared_at", "TIMESTAMP", False),
    Column("actor", "VARCHAR", False),
    Column("rules", "VARCHAR", False),
)


@dataclass
class Alarm:
    """One alarm (a row of ``safety_alarm``)."""

    alarm_id: int
    rule_id: str
    rule_version: int
    kind: str
    key: str
    title: str
    severity: str
    status: str
    level: int
    opened_at: dt.datetime
    updated_at: dt.datetime
    last_event_at: dt.datetime | None
    event_count: int
    incidents: list[int] = field(default_factory=list)
    zone: str | None = None
    type_code: str | None = None
    x_l93: float | None = None
    y_l93: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    snoozed_until: dt.datetime | None = None
    reason: str | None = None

    def row(self) -> dict[str, Any]:
        """The alarm as a table row (lists and details as JSON)."""
        out = dict(self.__dict__)
        out["incidents"] = json.dumps(self.incidents[-MAX_GROUPED:])
        out["detail"] = json.dumps(self.detail, sort_keys=True, default=str)
        return out

    def view(self) -> dict[str, Any]:
        """The alarm as an API answer (times in ISO form; no personal data is ever held by an alarm)."""
        out = dict(self.__dict__)
        for name in ("opened_at", "updated_at", "last_event_at", "snoozed_until"):
            value = out[name]
            out[name] = value.isoformat() if value is not None else None
        out["incidents"] = self.incidents[-MAX_GROUPED:]
        return out

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alarm:
        """An alarm from its table row."""
        values = dict(row)
        values["incidents"] = json.loads(values["incidents"])
        values["detail"] = json.loads(values["detail"])
        return cls(**values)


def ensure_alarm_tables(engine: Engine) -> None:
    """Create the alarm tables when absent."""
    existing = set(engine.list_tables())
    for name, columns in ((ALARMS, ALARM_COLUMNS), (HISTORY, HISTORY_COLUMNS), (RULESETS, RULESET_COLUMNS)):
        if name not in existing:
            engine.create_empty_table(name, columns)


_READY: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def _ensure_once(engine: Engine) -> None:
    """Run :func:`ensure_alarm_tables` once per connection on the write path.

    A listing of the catalogue costs about 5 ms on DuckDB; it was paid on every saved batch.
    """
    if engine not in _READY:
        ensure_alarm_tables(engine)
        _READY[engine] = True


def forget_tables(engine: Engine) -> None:
    """Check the alarm tables again on the next save (after a rolled-back transaction that may have made them)."""
    _READY.pop(engine, None)


def _schema(columns: tuple[Column, ...]) -> pa.Schema:
    kinds = {
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "VARCHAR": pa.string(),
        "TIMESTAMP": pa.timestamp("us"),
        "DOUBLE": pa.float64(),
    }
    return pa.schema([(c.name, kinds[c.type]) for c in columns])


ALARM_SCHEMA = _schema(ALARM_COLUMNS)
HISTORY_SCHEMA = _schema(HISTORY_COLUMNS)


def load_unclosed(engine: Engine) -> list[Alarm]:
    """Every alarm not closed (the engine's state after a restart)."""
    ensure_alarm_tables(engine)
    rows = engine.query(f"SELECT * FROM {ALARMS} WHERE status <> 'closed' ORDER BY alarm_id").to_pylist()
    return [Alarm.from_row(r) for r in rows]


def next_alarm_id(engine: Engine) -> int:
    """The next free alarm id."""
    ensure_alarm_tables(engine)
    return engine.scalar_int(f"SELECT coalesce(max(alarm_id), 0) FROM {ALARMS}") + 1


def save(engine: Engine, alarms: list[Alarm], history: list[dict[str, Any]]) -> None:
    """Write changed alarms (replacing their rows) and history rows in one transaction."""
    if not alarms and not history:
        return
    _ensure_once(engine)
    with engine.transaction():
        if alarms:
            ids = ", ".join(str(int(a.alarm_id)) for a in alarms)
            engine.execute(f"DELETE FROM {ALARMS} WHERE alarm_id IN ({ids})")
            engine.insert(ALARMS, pa.Table.from_pylist([a.row() for a in alarms], schema=ALARM_SCHEMA))
        if history:
            first = engine.scalar_int(f"SELECT coalesce(max(history_id), 0) FROM {HISTORY}") + 1
            history = [{**row, "history_id": first + i} for i, row in enumerate(history)]
            engine.insert(HISTORY, pa.Table.from_pylist(history, schema=HISTORY_SCHEMA))


def list_alarms(engine: Engine, *, status: str | None = None, limit: int = 200) -> list[Alarm]:
    """Alarms, newest first (``status`` one of :data:`STATUSES`, or every one)."""
    ensure_alarm_tables(engine)
    where = f"WHERE status = '{status}'" if status in STATUSES else ""
    rows = engine.query(
        f"SELECT * FROM {ALARMS} {where} ORDER BY updated_at DESC, alarm_id DESC LIMIT {int(limit)}"
    ).to_pylist()
    return [Alarm.from_row(r) for r in rows]


def get_alarm(engine: Engine, alarm_id: int) -> Alarm | None:
    """One alarm by id."""
    ensure_alarm_tables(engine)
    rows = engine.query(f"SELECT * FROM {ALARMS} WHERE alarm_id = {int(alarm_id)}").to_pylist()
    return Alarm.from_row(rows[0]) if rows else None


def history_of(engine: Engine, alarm_id: int) -> list[dict[str, Any]]:
    """The changes of one alarm, oldest first."""
    ensure_alarm_tables(engine)
    rows = engine.query(f"SELECT * FROM {HISTORY} WHERE alarm_id = {int(alarm_id)} ORDER BY history_id").to_pylist()
    for row in rows:
        row["changed_at"] = row["changed_at"].isoformat()
    return rows
