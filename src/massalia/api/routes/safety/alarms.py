"""Alarms over HTTP: list, detail with history, decisions (acknowledge/snooze/close/reopen), rule sets, exports.

Thin: each route validates its bounded input and calls one guarded service of
:mod:`massalia.safety.alarms.service` with the route's ``Caller``; rights and audit happen there.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.safety.alarms import service
from massalia.safety.alarms.rules import MAX_RULES_BYTES

router = APIRouter(prefix="/safety/alarms", tags=["safety"])
AlarmId = Annotated[int, Path(ge=1, le=2**62)]


class Decision(BaseModel):
    """An operator's decision on an alarm."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["acknowledge", "snooze", "close", "reopen"]
    reason: str | None = Field(default=None, min_length=1, max_length=500)
    until: dt.datetime | None = Field(default=None, description="End of a snooze (with its UTC offset)")


class RuleSetBody(BaseModel):
    """A rule set as YAML or JSON text."""

    model_config = ConfigDict(extra="forbid")

    rules: str = Field(min_length=1, max_length=MAX_RULES_BYTES)


@router.get("", **action("safety.alarm.read"))
def alarms(
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    status: Annotated[Literal["open", "acknowledged", "snoozed", "closed"] | None, Query()] = None,
    include_terms: Annotated[bool, Query(description="Show new terms (needs safety.incident.narrative)")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Alarms, newest first."""
    return service.list_alarms(caller, warehouse, status=status, include_terms=include_terms, limit=limit)


@router.post("/rules", **action("safety.alarm.rules"))
def declare_rules(body: RuleSetBody, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Declare a new version of the rule set (422 naming the field at fault)."""
    return service.declare_rules(caller, warehouse, body.rules)


@router.get("/{alarm_id}", **action("safety.alarm.read"))
def alarm(
    alarm_id: AlarmId,
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    include_terms: Annotated[bool, Query()] = False,
) -> dict[str, Any]:
    """One alarm and its history of state changes."""
    return service.alarm_detail(caller, warehouse, alarm_id, include_terms=include_terms)


@router.post("/{alarm_id}/decision", **action("safety.alarm.acknowledge"))
def decide(alarm_id: AlarmId, body: Decision, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Acknowledge, snooze (``until``), close (``reason``) or reopen an alarm."""
    return service.act_on(caller, warehouse, alarm_id, body.decision, reason=body.reason, until=body.until)


@router.get("/{alarm_id}/cap", **action("safety.alarm.export"))
def cap(alarm_id: AlarmId, context: Context, caller: Caller, warehouse: Warehouse) -> Response:
    """The alarm as a CAP 1.2 XML alert (no personal data)."""
    (xml,) = service.export(caller, warehouse, [alarm_id], "cap")
    return Response(content=xml, media_type="application/cap+xml")


@router.get("/{alarm_id}/ngsi-ld", **action("safety.alarm.export"))
def ngsi(alarm_id: AlarmId, context: Context, caller: Caller, warehouse: Warehouse) -> Response:
    """The alarm as an NGSI-LD ``Alert`` entity (no personal data)."""
    import json

    (entity,) = service.export(caller, warehouse, [alarm_id], "ngsi-ld")
    return Response(content=json.dumps(entity), media_type="application/ld+json")
