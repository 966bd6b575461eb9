"""The alarm evaluator: rules run on each ingested incident (no polling), state kept in ``safety_alarm``.

:meth:`AlarmEngine.observe` is called by the live ingest with what a batch of events became; it updates each
rule's window (in memory, rebuilt from the incident log on start, so a restart loses nothing), opens an alarm
or groups into the unclosed one of the same (rule, key), and writes the changed alarms in one transaction.
:meth:`AlarmEngine.tick` is the timer (silence of a feed, escalation, end of a snooze): the one place a wall
clock is read. :meth:`AlarmEngine.act` applies an operator's acknowledge / snooze / close / reopen.

Every method returns the state changes it made (:class:`Change`); the guarded services audit them.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from massalia.engine import Engine
from massalia.governance import InvalidRequest, NotFound
from massalia.safety.alarms import state
from massalia.safety.alarms.rules import (
    FrequencyRule,
    GeofenceRule,
    NewTermRule,
    Rule,
    RuleSet,
    SilenceRule,
    SpikeRule,
    ThresholdRule,
)
from massalia.safety.alarms.state import Alarm
from massalia.safety.geo import contains, to_lambert93
from massalia.safety.ingest import MESSAGES, Outcome
from massalia.safety.log import INCIDENTS, REPORTS

WORD = re.compile(r"[a-zàâäçéèêëîïôöùûüÿœæ]+")
VOCABULARY_REPORTS = 200_000
"""Narratives read to build the baseline vocabulary on start (the most recent)."""
RECENT = 200
"""Recent incidents kept for the situation view."""
MAX_LEVEL = 3


def utcnow() -> dt.datetime:
    """The wall clock (UTC, naive as the tables keep it)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Change:
    """One state change of an alarm: ``raised``, ``grouped`` (not audited), ``escalated``, ``acknowledged``..."""

    alarm: Alarm
    change: str
    actor: str
    reason: str | None = None


def words(text: str | None) -> set[str]:
    """The lowercase words of a narrative."""
    return set(WORD.findall(text.lower())) if text else set()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _members(window: deque[tuple[dt.datetime, int]] | None, incident_id: Any) -> list[int]:
    """The incidents an opening alarm lists: its rule's window, or the one incident."""
    if window:
        return [i for _, i in window]
    return [int(incident_id)] if incident_id is not None else []


class AlarmEngine:
    """Evaluates a :class:`RuleSet` on ingest, with durable alarms (one engine per warehouse and process)."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._lock = threading.RLock()
        self._windows: dict[tuple[str, str], deque[tuple[dt.datetime, int]]] = {}
        self._unclosed: dict[tuple[str, str], Alarm] = {}
        self._vocabulary: set[str] = set()
        self._baselines: dict[tuple[str, str, dt.datetime], float] = {}
        self._last_seen: dict[str, dt.datetime] = {}
        self._fences = {
            r.id: np.array([[float(a), float(b)] for a, b in zip(*to_lambert93(*np.array(r.polygon).T), strict=True)])
            for r in rules.rules
            if isinstance(r, GeofenceRule)
        }
        for rule_id, ring in list(self._fences.items()):
            if not np.array_equal(ring[0], ring[-1]):
                self._fences[rule_id] = np.vstack([ring, ring[:1]])
        # The rules by kind, once: the per-event loop of a batch does not sort them again for every event.
        self._counted = [r for r in rules.rules if not isinstance(r, SilenceRule | NewTermRule)]
        self._term_rules = [r for r in rules.rules if isinstance(r, NewTermRule)]
        self._silence_by_source: dict[str, list[SilenceRule]] = {}
        for r in rules.rules:
            if isinstance(r, SilenceRule):
                self._silence_by_source.setdefault(r.source, []).append(r)
        self._next_id = 1
        self.started_at = utcnow()
        self.sequence = 0
        """Bumped on every change of an alarm or a new incident: the situation view waits on it."""
        self.changed = threading.Condition(self._lock)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)

    # -- start: rebuild the in-memory state from the tables ---------------------------------------------------
    def start(self, engine: Engine) -> None:
        """Load the unclosed alarms, refill the windows and the vocabulary from the log, the feeds' last messages."""
        with self._lock:
            state.ensure_alarm_tables(engine)
            for alarm in state.load_unclosed(engine):
                self._unclosed[(alarm.rule_id, alarm.key)] = alarm
            self._next_id = state.next_alarm_id(engine)
            if not engine.table_exists(INCIDENTS):
                return
            span = max(
                (
                    r.window_minutes
                    for r in self.rules.rules
                    if isinstance(r, ThresholdRule | FrequencyRule | SpikeRule)
                ),
                default=0,
            )
            if span:
                rows = engine.query(
                    f"SELECT i.incident_id, i.occurred_at, i.zone, i.type_code, i.family, i.first_source "
                    f"FROM {INCIDENTS} AS i WHERE i.occurred_at >= (SELECT max(occurred_at) FROM {INCIDENTS}) "
                    f"- INTERVAL {int(span)} MINUTE ORDER BY i.occurred_at"
                ).to_pylist()
                for row in rows:
                    self._count(row, raise_alarms=False)
            if any(isinstance(r, NewTermRule) for r in self.rules.rules):
                # Words found in Python with the very regex of ingest (:func:`words`): the same vocabulary on
                # every engine (PostgreSQL has no regexp_extract_all).
                narratives = engine.query(
                    f"SELECT narrative FROM {REPORTS} WHERE narrative IS NOT NULL "
                    f"ORDER BY report_id DESC LIMIT {VOCABULARY_REPORTS}"
                ).column("narrative")
                for text in narratives.to_pylist():
                    self._vocabulary |= words(text)
            if engine.table_exists(MESSAGES):
                for row in engine.query(f"SELECT source, max(received_at) AS t FROM {MESSAGES} GROUP BY 1").to_pylist():
                    self._last_seen[str(row["source"])] = row["t"]

    # -- on ingest ------------------------------------------------------------------------------------------------
    def observe(
        self, engine: Engine, outcomes: Sequence[Outcome], *, actor: str, now: dt.datetime | None = None
    ) -> list[Change]:
        """Evaluate the rules on what a batch of events became; save and return the alarms' changes."""
        moment = now or utcnow()
        fenced = self._fenced(outcomes)
        with self._lock:
            changes: list[Change] = []
            fresh: list[tuple[dict[str, Any], str | None]] = []
            for position, outcome in enumerate(outcomes):
                self._last_seen[outcome.source] = moment
                changes += self._resume(outcome.source, moment)
                if outcome.outcome in ("duplicate", "duplicate_row"):
                    continue
                if outcome.incident is not None:
                    incident = dict(outcome.incident)
                    incident["source"] = outcome.source
                    fresh.append((incident, outcome.narrative))
                    inside = {rule_id: bool(hits[position]) for rule_id, hits in fenced.items()}
                    changes += self._count(
                        incident, raise_alarms=True, engine=engine, now=moment, actor=actor, inside=inside
                    )
                changes += self._terms(outcome, moment, actor)
            for incident, narrative in fresh[-RECENT:]:  # only the last ones stay in the view
                shown = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in incident.items()}
                self.recent.append({**shown, "narrative": narrative})
            self._save(engine, changes)
            if outcomes:
                self.sequence += 1
                self.changed.notify_all()
            return changes

    def _fenced(self, outcomes: Sequence[Outcome]) -> dict[str, np.ndarray]:
        """For each geofence, which of the batch's new incidents lie inside it: one polygon test per batch."""
        if not self._fences:
            return {}
        xs = np.array([o.incident["x_l93"] if o.incident and o.incident["x_l93"] is not None else np.nan
                       for o in outcomes], dtype=np.float64)  # fmt: skip
        ys = np.array([o.incident["y_l93"] if o.incident and o.incident["y_l93"] is not None else np.nan
                       for o in outcomes], dtype=np.float64)  # fmt: skip
        placed = ~(np.isnan(xs) | np.isnan(ys))
        out: dict[str, np.ndarray] = {}
        for rule_id, ring in self._fences.items():
            hits = np.zeros(len(outcomes), dtype=bool)
            if placed.any():
                hits[placed] = contains(ring, xs[placed], ys[placed])
            out[rule_id] = hits
        return out

    def _count(
        self,
        incident: dict[str, Any],
        *,
        raise_alarms: bool,
        engine: Engine | None = None,
        now: dt.datetime | None = None,
        actor: str = "",
        inside: dict[str, bool] | None = None,
    ) -> list[Change]:
        changes: list[Change] = []
        at: dt.datetime = incident["occurred_at"]
        for rule in self._counted:
            if not rule.matches(incident["type_code"], incident["zone"]):
                continue
            if isinstance(rule, GeofenceRule):
                if not raise_alarms:  # a fence has no window to refill
                    continue
                if inside is not None:
                    within = inside.get(rule.id, False)
                else:
                    x, y = incident.get("x_l93"), incident.get("y_l93")
                    within = (
                        x is not None
                        and y is not None
                        and bool(contains(self._fences[rule.id], np.array([x]), np.array([y]))[0])
                    )
                if within:
                    changes += self._hit(rule, "fence", incident, 1, {"fence": rule.id}, now, actor)
                continue
            key = self._key(rule, incident)
            window = self._windows.setdefault((rule.id, key), deque())
            window.append((at, int(incident["incident_id"])))
            newest = max(at, window[-1][0])
            while window and window[0][0] < newest - dt.timedelta(minutes=rule.window_minutes):
                window.popleft()
            if not raise_alarms:
                continue
            count = len(window)
            # The window itself (no copy per event): only an alarm that opens lists its members.
            incident = {**incident, "members": window}
            if isinstance(rule, ThresholdRule | FrequencyRule):
                if count >= rule.count:
                    detail: dict[str, Any] = {
                        "window_minutes": rule.window_minutes,
                        "count": count,
                        "threshold": rule.count,
                    }
                    changes += self._hit(rule, key, incident, count, detail, now, actor)
            elif isinstance(rule, SpikeRule) and engine is not None and count >= rule.minimum:
                baseline = self._baseline(engine, rule, key, at)
                if count > rule.factor * baseline:
                    detail = {
                        "count": count,
                        "baseline_mean": round(baseline, 2),
                        "factor": rule.factor,
                        "weeks": rule.weeks,
                    }
                    changes += self._hit(rule, key, incident, count, detail, now, actor)
        return changes

    @staticmethod
    def _key(rule: Rule, incident: dict[str, Any]) -> str:
        if isinstance(rule, FrequencyRule):
            return str(incident.get(rule.group_by) or incident.get("first_source") or "")
        if isinstance(rule, SpikeRule) and rule.group_by == "zone":
            return str(incident["zone"])
        return "all"

    def _baseline(self, engine: Engine, rule: SpikeRule, key: str, at: dt.datetime) -> float:
        """The mean count of the same window in each of the past ``weeks`` weeks (cached per hour)."""
        hour = at.replace(minute=0, second=0, microsecond=0)
        cached = self._baselines.get((rule.id, key, hour))
        if cached is not None:
            return cached
        parts = []
        if rule.types or rule.families:
            listed = " OR ".join(
                [f"type_code IN ({', '.join(_quote(t) for t in rule.types)})"] * bool(rule.types)
                + [f"family IN ({', '.join(_quote(f) for f in rule.families)})"] * bool(rule.families)
            )
            parts.append(f"({listed})")
        zones = (key,) if rule.group_by == "zone" else rule.zones
        if zones:
            parts.append(f"zone IN ({', '.join(_quote(z) for z in zones)})")
        periods = " OR ".join(
            f"(occurred_at > TIMESTAMP '{at - dt.timedelta(weeks=w, minutes=rule.window_minutes):%Y-%m-%d %H:%M:%S}' "
            f"AND occurred_at <= TIMESTAMP '{at - dt.timedelta(weeks=w):%Y-%m-%d %H:%M:%S}')"
            for w in range(1, rule.weeks + 1)
        )
        parts.append(f"({periods})")
        total = engine.scalar_int(f"SELECT count(*) FROM {INCIDENTS} WHERE {' AND '.join(parts)}")
        mean = total / rule.weeks
        self._baselines[(rule.id, key, hour)] = mean
        return mean

    def _terms(self, outcome: Outcome, now: dt.datetime, actor: str) -> list[Change]:
        rules = self._term_rules
        if not rules or not outcome.narrative:
            return []
        seen = words(outcome.narrative)
        if not seen:
            return []
        changes: list[Change] = []
        fresh = seen - self._vocabulary
        if self._vocabulary:  # without a baseline every word would be new: learn first
            for rule in rules:
                for term in sorted(t for t in fresh if len(t) >= rule.min_length):
                    incident = {"incident_id": outcome.incident_id, "zone": None, "type_code": None}
                    changes += self._hit(rule, term, incident, 1, {"term": term}, now, actor)
        self._vocabulary |= fresh
        return changes

    def _hit(
        self,
        rule: Rule,
        key: str,
        incident: dict[str, Any],
        count: int,
        detail: dict[str, Any],
        now: dt.datetime | None,
        actor: str,
    ) -> list[Change]:
        moment = now or utcnow()
        incident_id = incident.get("incident_id")
        alarm = self._unclosed.get((rule.id, key))
        if alarm is not None:  # one unclosed alarm per rule and key: group into it
            alarm.event_count += 1
            if incident_id is not None and incident_id not in alarm.incidents:
                alarm.incidents.append(int(incident_id))
                if len(alarm.incidents) > state.MAX_GROUPED:  # trimmed in place (a copy per event cost more)
                    del alarm.incidents[: len(alarm.incidents) - state.MAX_GROUPED]
            alarm.last_event_at = incident.get("occurred_at") or moment
            alarm.updated_at = moment
            alarm.detail = {**alarm.detail, **detail}
            return [Change(alarm, "grouped", actor)]
        alarm = Alarm(
            alarm_id=self._next_id,
            rule_id=rule.id,
            rule_version=self.rules.version,
            kind=rule.kind,
            key=key,
            title=rule.title,
            severity=rule.severity,
            status="open",
            level=0,
            opened_at=moment,
            updated_at=moment,
            last_event_at=incident.get("occurred_at") or moment,
            event_count=count,
            incidents=_members(incident.get("members"), incident_id),
            zone=incident.get("zone"),
            type_code=incident.get("type_code"),
            x_l93=incident.get("x_l93"),
            y_l93=incident.get("y_l93"),
            detail={**detail, "crossing_incident": incident_id},  # the incident that opened it
        )
        self._next_id += 1
        self._unclosed[(rule.id, key)] = alarm
        return [Change(alarm, "raised", actor)]

    def _resume(self, source: str, now: dt.datetime) -> list[Change]:
        """A feed that speaks again closes its silence alarm."""
        changes = []
        for rule in self._silence_by_source.get(source, ()):
            alarm = self._unclosed.pop((rule.id, source), None)
            if alarm is not None:
                alarm.status, alarm.updated_at, alarm.reason = "closed", now, "the feed sent a message again"
                changes.append(Change(alarm, "closed", "alarm timer", alarm.reason))
        return changes

    # -- the timer ------------------------------------------------------------------------------------------------
    def tick(self, engine: Engine, now: dt.datetime | None = None) -> list[Change]:
        """Silence of feeds, escalation of unacknowledged alarms, end of snoozes (on the wall clock ``now``)."""
        moment = now or utcnow()
        with self._lock:
            changes: list[Change] = []
            for rule in self.rules.rules:
                if isinstance(rule, SilenceRule):
                    last = self._last_seen.get(rule.source, self.started_at)
                    if (
                        moment - last >= dt.timedelta(minutes=rule.minutes)
                        and (rule.id, rule.source) not in self._unclosed
                    ):
                        detail = {"source": rule.source, "last_message_at": last.isoformat(), "minutes": rule.minutes}
                        changes += self._hit(rule, rule.source, {}, 1, detail, moment, "alarm timer")
            for alarm in self._unclosed.values():
                if alarm.status == "snoozed" and alarm.snoozed_until is not None and moment >= alarm.snoozed_until:
                    alarm.status, alarm.snoozed_until, alarm.updated_at = "open", None, moment
                    changes.append(Change(alarm, "snooze_ended", "alarm timer"))
                try:
                    rule = self.rules.rule(alarm.rule_id)
                except KeyError:
                    continue
                delay = rule.escalate_after_minutes
                due = delay is not None and moment - alarm.opened_at >= dt.timedelta(minutes=delay * (alarm.level + 1))
                if alarm.status == "open" and delay and alarm.level < MAX_LEVEL and due:
                    alarm.level += 1
                    alarm.updated_at = moment
                    changes.append(
                        Change(alarm, "escalated", "alarm timer", f"unacknowledged after {delay * alarm.level} min")
                    )
            self._save(engine, changes)
            return changes

    # -- an operator's decision -----------------------------------------------------------------------------------
    def act(
        self,
        engine: Engine,
        alarm_id: int,
        decision: str,
        *,
        actor: str,
        reason: str | None = None,
        until: dt.datetime | None = None,
        now: dt.datetime | None = None,
    ) -> Change:
        """Acknowledge, snooze (until a time), close (with a reason) or reopen an alarm."""
        moment = now or utcnow()
        if reason is not None and not 1 <= len(reason) <= 500:
            raise InvalidRequest("reason: 1 to 500 characters")
        with self._lock:
            alarm = next((a for a in self._unclosed.values() if a.alarm_id == alarm_id), None)
            if alarm is None:
                stored = state.get_alarm(engine, alarm_id)
                if stored is None:
                    raise NotFound(f"no alarm {alarm_id}")
                if decision != "reopen":
                    raise InvalidRequest(f"alarm {alarm_id} is {stored.status}: only 'reopen' applies")
                if (stored.rule_id, stored.key) in self._unclosed:
                    raise InvalidRequest(f"alarm {alarm_id}: another alarm of the same rule and key is open")
                alarm = stored
            if decision == "acknowledge":
                if alarm.status not in ("open", "snoozed"):
                    raise InvalidRequest(f"alarm {alarm_id} is {alarm.status}, not open")
                alarm.status = "acknowledged"
            elif decision == "snooze":
                if until is None or until <= moment:
                    raise InvalidRequest("until: a snooze needs an end in the future")
                if until > moment + dt.timedelta(days=7):
                    raise InvalidRequest("until: a snooze lasts 7 days at most")
                alarm.status, alarm.snoozed_until = "snoozed", until
            elif decision == "close":
                if not reason:
                    raise InvalidRequest("reason: closing an alarm needs a reason")
                alarm.status = "closed"
                self._unclosed.pop((alarm.rule_id, alarm.key), None)
            elif decision == "reopen":
                alarm.status = "open"
                self._unclosed[(alarm.rule_id, alarm.key)] = alarm
            else:
                raise InvalidRequest(f"decision: unknown {decision!r} (acknowledge, snooze, close, reopen)")
            alarm.updated_at, alarm.reason = moment, reason
            change = Change(
                alarm,
                {"acknowledge": "acknowledged", "snooze": "snoozed", "close": "closed", "reopen": "reopened"}[decision],
                actor,
                reason,
            )
            self._save(engine, [change])
            return change

    def _save(self, engine: Engine, changes: Iterable[Change]) -> None:
        changes = list(changes)
        if not changes:
            return
        alarms = {c.alarm.alarm_id: c.alarm for c in changes}
        history = [
            {"alarm_id": c.alarm.alarm_id, "changed_at": c.alarm.updated_at, "change": c.change,
             "status": c.alarm.status, "actor": c.actor, "reason": c.reason}
            for c in changes
            if c.change != "grouped"
        ]  # fmt: skip
        state.save(engine, list(alarms.values()), history)
        self.sequence += 1
        self.changed.notify_all()

    def unclosed(self) -> list[Alarm]:
        """The alarms not closed, newest first."""
        with self._lock:
            return sorted(self._unclosed.values(), key=lambda a: a.alarm_id, reverse=True)
