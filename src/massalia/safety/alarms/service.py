"""The guarded services of live ingest and alarms: the only way the API and the CLI reach them.

Each takes the :class:`~massalia.governance.Caller` first and asks governance before anything else:

- ``safety.live.ingest`` -- append events (a refusal reads and writes nothing);
- ``safety.alarm.read`` / ``safety.live.read`` -- alarms, and the live situation (open alarms, recent
  incidents); a partner holds neither: nothing live reaches a partner;
- ``safety.alarm.acknowledge`` -- acknowledge, snooze, close or reopen;
- ``safety.alarm.rules`` -- declare a new version of the rule set;
- narratives (and the terms a ``new_term`` alarm found in them, which may be a name) only with
  ``safety.incident.narrative``, asked for explicitly and audited.

Every state change of an alarm (raised, escalated, acknowledged, snoozed, closed, reopened, end of a snooze) is
an entry of the core audit trail; a new match grouped into an open alarm is not a state change.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest, NotFound, operator_principal
from massalia.governance.service import Governance
from massalia.safety.alarms import state
from massalia.safety.alarms.engine import AlarmEngine, Change, utcnow
from massalia.safety.alarms.rules import RuleSet, canonical, load_rules, parse_rules
from massalia.safety.ingest import IngestError, LiveEvent, Mapped, append, live_write, map_events, parse_event

RULES_SETTING = "MASSALIA_SAFETY_ALARM_RULES"
"""Path of the rule set a warehouse starts with when none was declared in it (default: the package's demo rules)."""
PERSONAL = "safety.incident.narrative"

_ENGINES: dict[str, AlarmEngine] = {}
_REGISTRY = threading.Lock()


def _location(engine: Engine) -> str:
    where = engine.location
    return where if where not in ("", ":memory:", "memory") else f"memory:{id(engine)}"


def declared_rules(engine: Engine) -> RuleSet | None:
    """The latest rule set declared in the warehouse, if any."""
    state.ensure_alarm_tables(engine)
    rows = engine.query(f"SELECT rules FROM {state.RULESETS} ORDER BY version DESC LIMIT 1").to_pylist()
    return parse_rules(rows[0]["rules"], name="declared rule set") if rows else None


def situation(engine: Engine) -> AlarmEngine:
    """The alarm engine of this warehouse in this process (started from the tables on first use)."""
    key = _location(engine)
    with _REGISTRY:
        current = _ENGINES.get(key)
        if current is None:
            rules = declared_rules(engine)
            if rules is None:
                setting = os.environ.get(RULES_SETTING)
                rules = load_rules(Path(setting) if setting else None)
            current = AlarmEngine(rules)
            current.start(engine)
            _ENGINES[key] = current
        return current


def forget(engine: Engine) -> None:
    """Drop this warehouse's engine from the process (the next use restarts it from the tables, as a restart would)."""
    with _REGISTRY:
        _ENGINES.pop(_location(engine), None)


def _audit(governance: Governance, caller: Caller | None, changes: Sequence[Change]) -> None:
    principal = caller.principal if caller is not None else operator_principal()
    for change in changes:
        if change.change == "grouped":
            continue
        a = change.alarm
        governance.audit(
            principal,
            f"safety.alarm.{change.change}",
            alarm=a.alarm_id,
            rule=a.rule_id,
            rule_version=a.rule_version,
            status=a.status,
            level=a.level,
            by=change.actor,
            reason=change.reason,
            channel=caller.channel if caller is not None else "timer",
        )


def ingest(
    caller: Caller,
    engine: Engine,
    payloads: Sequence[bytes | str | dict[str, Any]],
    *,
    channel: str,
    channel_source: str | None = None,
) -> dict[str, Any]:
    """Validate, map, append and evaluate events (``safety.live.ingest``); one audit entry for the batch.

    A single event that is refused raises :class:`IngestError` naming its JSON path; in a batch of several,
    each refused event is reported by its position and the others go on. The batch's audit entries (the
    ingest's, each alarm raised) are each durable when written and share one signed tree head, signed before
    this returns (one signature and fsync per batch, not one per alarm).
    """
    with caller.governance.one_tree_head():
        return _ingest(caller, engine, payloads, channel=channel, channel_source=channel_source)


def _ingest(
    caller: Caller,
    engine: Engine,
    payloads: Sequence[bytes | str | dict[str, Any]],
    *,
    channel: str,
    channel_source: str | None,
) -> dict[str, Any]:
    caller.authorize(
        "safety.live.ingest", detail={"channel": channel, "source": channel_source, "events": len(payloads)}
    )
    parsed: list[tuple[int, LiveEvent]] = []
    errors: list[dict[str, Any]] = []
    for i, payload in enumerate(payloads):
        try:
            parsed.append((i, parse_event(payload, channel_source=channel_source)))
        except IngestError as error:
            if len(payloads) == 1:
                raise
            errors.append({"index": i, "path": error.path, "error": str(error)})
    mapped: list[Mapped] = []
    for (i, _), result in zip(parsed, map_events([e for _, e in parsed]), strict=True):
        if isinstance(result, IngestError):
            if len(payloads) == 1:
                raise result
            errors.append({"index": i, "path": result.path, "error": str(result)})
        else:
            mapped.append(result)
    alarms = situation(engine)
    # The batch's reports and the alarms they change are written in one transaction: one commit per batch.
    try:
        with live_write(engine):
            outcomes = append(engine, mapped, channel=channel, actor=caller.principal.subject) if mapped else []
            changes = alarms.observe(engine, outcomes, actor=caller.principal.subject)
    except BaseException:
        # Rolled back: nothing of the batch is in the tables, but the alarm engine counted it in memory. It is
        # dropped and restarts from the tables on next use (windows refilled from the log), as after a restart.
        state.forget_tables(engine)
        forget(engine)
        raise
    _audit(caller.governance, caller, changes)
    return {
        "accepted": [o.public() for o in outcomes],
        "rejected": errors,
        "alarms": [{"alarm_id": c.alarm.alarm_id, "change": c.change, "rule": c.alarm.rule_id} for c in changes],
    }


def tick(governance: Governance, engine: Engine, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Run the alarm timer once (silence, escalation, end of snoozes); changes audited as the local operator."""
    changes = situation(engine).tick(engine, now)
    with governance.one_tree_head():
        _audit(governance, None, changes)
    return [{"alarm_id": c.alarm.alarm_id, "change": c.change, "rule": c.alarm.rule_id} for c in changes]


def _view(alarm: state.Alarm, *, terms: bool) -> dict[str, Any]:
    out = alarm.view()
    if alarm.kind == "new_term" and not terms:  # a new word of a narrative may be a person's name
        out["key"] = "(term withheld)"
        out["detail"] = {k: v for k, v in out["detail"].items() if k != "term"}
    return out


def list_alarms(
    caller: Caller, engine: Engine, *, status: str | None = None, include_terms: bool = False, limit: int = 200
) -> dict[str, Any]:
    """Alarms, newest first (``safety.alarm.read``); new terms only with the narrative right, asked for."""
    if status is not None and status not in state.STATUSES:
        raise InvalidRequest(f"status: unknown {status!r} ({', '.join(state.STATUSES)})")
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be 1 to 1000")
    caller.authorize("safety.alarm.read", detail={"status": status})
    if include_terms:
        caller.authorize(PERSONAL, detail={"alarms": "new_term", "status": status})
    situation(engine)
    alarms = state.list_alarms(engine, status=status, limit=limit)
    return {"alarms": [_view(a, terms=include_terms) for a in alarms]}


def alarm_detail(caller: Caller, engine: Engine, alarm_id: int, *, include_terms: bool = False) -> dict[str, Any]:
    """One alarm and its history (``safety.alarm.read``)."""
    caller.authorize("safety.alarm.read", detail={"alarm": alarm_id})
    if include_terms:
        caller.authorize(PERSONAL, detail={"alarm": alarm_id})
    alarm = state.get_alarm(engine, alarm_id)
    if alarm is None:
        raise NotFound(f"no alarm {alarm_id}")
    return {"alarm": _view(alarm, terms=include_terms), "history": state.history_of(engine, alarm_id)}


def act_on(
    caller: Caller,
    engine: Engine,
    alarm_id: int,
    decision: str,
    *,
    reason: str | None = None,
    until: dt.datetime | None = None,
) -> dict[str, Any]:
    """Acknowledge, snooze, close or reopen an alarm (``safety.alarm.acknowledge``), audited."""
    caller.authorize("safety.alarm.acknowledge", detail={"alarm": alarm_id, "step": decision})
    if until is not None and until.tzinfo is not None:
        until = until.astimezone(dt.UTC).replace(tzinfo=None)
    change = situation(engine).act(
        engine, alarm_id, decision, actor=caller.principal.subject, reason=reason, until=until
    )
    _audit(caller.governance, caller, [change])
    return {"alarm": _view(change.alarm, terms=False), "change": change.change}


def declare_rules(caller: Caller, engine: Engine, text: str | bytes) -> dict[str, Any]:
    """Declare a new version of the rule set (``safety.alarm.rules``): validated, stored, the engine restarted on it.

    A version number may not be declared twice with different content (versions are immutable).
    """
    caller.authorize("safety.alarm.rules", detail={"bytes": len(text)})
    rules = parse_rules(text)
    state.ensure_alarm_tables(engine)
    rows = engine.query(f"SELECT version, digest FROM {state.RULESETS} ORDER BY version").to_pylist()
    for row in rows:
        if row["version"] == rules.version:
            if row["digest"] == rules.digest():
                return {"version": rules.version, "digest": rules.digest(), "changed": False}
            raise InvalidRequest(f"version: {rules.version} is already declared with other rules; use a new version")
    if rows and rules.version < max(r["version"] for r in rows):
        raise InvalidRequest(f"version: {rules.version} is older than the declared {max(r['version'] for r in rows)}")
    engine.insert(
        state.RULESETS,
        pa.table(
            {
                "version": pa.array([rules.version], pa.int32()),
                "digest": [rules.digest()],
                "declared_at": pa.array([utcnow()], pa.timestamp("us")),
                "actor": [caller.principal.subject],
                "rules": [canonical(rules)],
            }
        ),
    )
    forget(engine)
    situation(engine)
    return {"version": rules.version, "digest": rules.digest(), "rules": len(rules.rules), "changed": True}


def live_snapshot(caller: Caller, engine: Engine, *, narratives: bool = False) -> tuple[AlarmEngine, bool]:
    """Open the live situation for a caller (``safety.live.read``; narratives asked for and audited apart)."""
    caller.authorize("safety.live.read", detail={"narratives": narratives, "channel": caller.channel})
    if narratives:
        caller.authorize(PERSONAL, detail={"stream": "live situation"})
    return situation(engine), narratives


def snapshot(alarms: AlarmEngine, *, narratives: bool) -> dict[str, Any]:
    """What the situation view shows now: open alarms and recent incidents (narratives only when granted)."""
    with alarms.changed:
        unclosed = [_view(a, terms=narratives) for a in alarms.unclosed()]
        recent = [dict(r) for r in reversed(alarms.recent)]
        sequence = alarms.sequence
    if not narratives:
        for row in recent:
            row.pop("narrative", None)
    return {"sequence": sequence, "alarms": unclosed, "incidents": recent}


__all__ = ["IngestError", "act_on", "declare_rules", "ingest", "list_alarms", "live_snapshot", "situation", "tick"]


def export(caller: Caller, engine: Engine, alarm_ids: Sequence[int], fmt: str) -> list[Any]:
    """Alarms as CAP 1.2 XML strings or NGSI-LD ``Alert`` entities (``safety.alarm.export``; no personal data)."""
    from massalia.safety.export import cap_xml, ngsi_alert

    if fmt not in ("cap", "ngsi-ld"):
        raise InvalidRequest(f"format: unknown {fmt!r} (cap, ngsi-ld)")
    if not 1 <= len(alarm_ids) <= 500:
        raise InvalidRequest("alarms: 1 to 500 ids")
    caller.authorize("safety.alarm.export", detail={"alarms": list(alarm_ids), "format": fmt})
    out: list[Any] = []
    for alarm_id in alarm_ids:
        alarm = state.get_alarm(engine, alarm_id)
        if alarm is None:
            raise NotFound(f"no alarm {alarm_id}")
        out.append(cap_xml(alarm) if fmt == "cap" else ngsi_alert(alarm))
    return out


def open_feed(caller: Caller, engine: Engine, *, channel: str = "mqtt") -> AlarmEngine:
    """Check, before a feed subscriber connects, that its caller may ingest (``safety.live.ingest``, audited)."""
    caller.authorize("safety.live.ingest", detail={"channel": channel, "subscriber": True})
    return situation(engine)
