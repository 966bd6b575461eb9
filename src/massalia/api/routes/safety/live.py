"""Live ingest and the live situation over HTTP: POST one event, follow open alarms and incidents (SSE).

Thin: the body is read bounded and handed as bytes to :func:`massalia.safety.alarms.service.ingest` (rights,
validation with JSON paths, idempotency, alarms, audit happen there); the stream opens the situation through
:func:`~massalia.safety.alarms.service.live_snapshot` (``safety.live.read``: a partner gets 403, nothing live).

The router also carries the server's **alarm timer** (:class:`~massalia.safety.alarms.timer.AlarmTimer`): its
lifespan starts it with the app and stops it at shutdown (FastAPI merges a router's lifespan into the app's, the
app's own closing last, so the warehouse keeper is still there when the timer's last tick lets go). The timer
opens the warehouse through the app's keeper, as a request does, every ``MASSALIA_SAFETY_ALARM_TICK_S`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import StreamingResponse

from massalia.api.deps import ApiContext, Caller, Context, Warehouse, action
from massalia.governance import InvalidRequest
from massalia.safety import notify
from massalia.safety.alarms import service
from massalia.safety.alarms.timer import AlarmTimer, tick_interval
from massalia.safety.ingest import MAX_EVENT_BYTES


@asynccontextmanager
async def alarm_timer(app: FastAPI) -> AsyncIterator[None]:
    """Run the alarm timer (silence, escalation, end of snoozes) for the app's lifetime; none when set to 0."""
    context: ApiContext = app.state.massalia
    interval = tick_interval()
    keeper = context.warehouses
    if not interval or keeper is None:
        yield
        return
    indexes = context.home.indexes
    timer = AlarmTimer(
        context.governance,
        keeper.connect,
        keeper.release,
        interval_s=interval,
        after_tick=lambda engine: notify.index_new_reports(context.governance, engine, indexes),
    ).start()
    app.state.safety_alarm_timer = timer
    try:
        yield
    finally:
        # A tick under way finishes and releases its connection before the keeper closes the warehouse.
        await asyncio.to_thread(timer.stop)


router = APIRouter(prefix="/safety/live", tags=["safety"], lifespan=alarm_timer)
POLL_S = 0.2


async def _bounded_body(request: Request) -> bytes:
    """The body, refused past the event bound without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_EVENT_BYTES:
        raise InvalidRequest(f"$: {declared} bytes, over the {MAX_EVENT_BYTES} bytes an event may have")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_EVENT_BYTES:
            raise InvalidRequest(f"$: over the {MAX_EVENT_BYTES} bytes an event may have")
    return body


@router.post("/{source}/events", **action("safety.live.ingest"))
async def ingest(
    request: Request,
    source: Annotated[str, Path(pattern=r"^(mc|csu|dtp)$", description="The feed's source (binds the event's)")],
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
) -> dict[str, Any]:
    """Append one event of ``source``'s feed (JSON); a repeated message id answers with its first outcome."""
    body = await _bounded_body(request)
    return await asyncio.to_thread(service.ingest, caller, warehouse, [body], channel="http", channel_source=source)


@router.get("/stream", **action("safety.live.read"))
def stream(
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    narratives: Annotated[bool, Query(description="Include narratives (needs safety.incident.narrative)")] = False,
    max_seconds: Annotated[int, Query(ge=1, le=3600, description="Close the stream after this long")] = 600,
) -> StreamingResponse:
    """Server-sent events: a ``situation`` event (open alarms, recent incidents) now and on every change."""
    alarms, with_narratives = service.live_snapshot(caller, warehouse, narratives=narratives)

    async def events() -> AsyncIterator[str]:
        deadline = time.monotonic() + max_seconds
        sent = -1
        yield "retry: 2000\n\n"
        while time.monotonic() < deadline:
            if alarms.sequence != sent:
                snap = service.snapshot(alarms, narratives=with_narratives)
                sent = snap["sequence"]
                yield f"id: {sent}\nevent: situation\ndata: {json.dumps(snap, default=str)}\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
