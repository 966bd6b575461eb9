"""The alarm timer of a long-running process (the API server): silence of feeds, escalation, end of snoozes.

The rules evaluated on ingest need no clock; three things do (:meth:`AlarmEngine.tick`): a feed that has
said nothing for its rule's minutes, an alarm left unacknowledged past its escalation delay, a snooze that
ends. ``massalia safety alarms listen`` ticks once a second on the connection it holds; the API server may
not hold one (a standing connection would keep the embedded warehouse's write lock, and an ETL run from the
command line could never take it). :class:`AlarmTimer` therefore wakes every ``interval_s`` seconds, opens
the warehouse exactly as a request does (the ``connect``/``release`` pair it is given: the API's
:class:`~massalia.api.warehouse.WarehouseKeeper`), ticks, and lets go. Between ticks the warehouse is closed
as soon as the keeper's idle delay has passed, so an interval longer than that delay leaves the file's lock
free most of the time.

A tick is skipped, never fatal:

- the warehouse is busy (another process writes to it) or not initialized yet;
- the warehouse has no live feed and no alarm table yet: a timer creates no table in a warehouse the
  safety domain has not been used on (a health-only deployment's warehouse stays as it is).

Any other error is logged and the next tick runs as planned: a timer thread that died would silence every
later silence alarm without a word.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from massalia.config import HomeNotInitializedError
from massalia.engine import Engine, WarehouseBusyError
from massalia.governance.service import Governance
from massalia.safety.alarms import service, state
from massalia.safety.ingest import MESSAGES

TICK_SETTING = "MASSALIA_SAFETY_ALARM_TICK_S"
"""Seconds between two ticks of the API server's alarm timer (``0``: no timer in the server)."""
DEFAULT_TICK_S = 15.0
"""Longer than the API keeper's idle delay (3 s): the warehouse's lock is free most of the time between ticks."""
MAX_TICK_S = 3600.0

log = logging.getLogger(__name__)


def tick_interval(environ: dict[str, str] | None = None) -> float:
    """The timer's interval from ``MASSALIA_SAFETY_ALARM_TICK_S`` (``0`` turns the timer off).

    Raises
    ------
    ValueError
        Not a number, negative, under 0.05 s (other than 0) or over an hour: the setting is named.

    Examples
    --------
    >>> tick_interval({})
    15.0
    >>> tick_interval({"MASSALIA_SAFETY_ALARM_TICK_S": "0"})
    0.0
    """
    raw = (os.environ if environ is None else environ).get(TICK_SETTING, "").strip()
    if not raw:
        return DEFAULT_TICK_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{TICK_SETTING}={raw!r}: expected seconds (a number, 0 to turn the timer off)") from None
    if value != 0 and not 0.05 <= value <= MAX_TICK_S:
        raise ValueError(f"{TICK_SETTING}={raw!r}: 0 (off) or 0.05 to {MAX_TICK_S:g} seconds")
    return value


def safety_in_use(engine: Engine) -> bool:
    """Whether the warehouse has a live feed or alarms (the timer creates nothing in another warehouse)."""
    return engine.table_exists(MESSAGES) or engine.table_exists(state.ALARMS)


class AlarmTimer:
    """A background thread that ticks the alarm engine of a warehouse every ``interval_s`` seconds.

    Parameters
    ----------
    governance
        The process's governance: the timer's changes are audited as the local operator, channel ``timer``.
    connect, release
        Open one connection to the warehouse and close it (the API's per-request mechanism).
    interval_s
        Seconds between two ticks (the first tick comes one interval after :meth:`start`).
    after_tick
        Called with the tick's connection after the alarm engine's tick (the API server indexes the live
        reports and pushes the saved searches: :func:`massalia.safety.notify.index_new_reports`).

    Examples
    --------
    >>> timer = AlarmTimer(governance, keeper.connect, keeper.release, interval_s=15).start()  # doctest: +SKIP
    >>> timer.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        governance: Governance,
        connect: Callable[[], Engine],
        release: Callable[[Engine], None],
        *,
        interval_s: float = DEFAULT_TICK_S,
        after_tick: Callable[[Engine], object] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s: {interval_s!r}, expected seconds > 0")
        self.governance = governance
        self._connect = connect
        self._release = release
        self.interval_s = interval_s
        self._after_tick = after_tick  # e.g. index live reports and push saved searches (safety.notify)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        """Ticks that reached the alarm engine."""
        self.skipped = 0
        """Ticks skipped (warehouse busy, not initialized, or safety not in use)."""
        self.failures = 0
        self.changes: deque[dict[str, Any]] = deque(maxlen=1000)
        """The changes the ticks made, oldest first (the last 1,000; for the logs and the tests)."""

    @property
    def running(self) -> bool:
        """Whether the timer's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> AlarmTimer:
        """Start the thread (once)."""
        if self._thread is not None:
            raise RuntimeError("the alarm timer is already started")
        self._thread = threading.Thread(target=self._run, name="massalia-safety-alarm-timer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait for a tick under way to finish (its connection released)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> list[dict[str, Any]] | None:
        """One tick: open the warehouse, evaluate the timers, let go; ``None`` when skipped."""
        try:
            engine = self._connect()
        except (WarehouseBusyError, HomeNotInitializedError) as error:
            self.skipped += 1
            log.debug("alarm timer: tick skipped (%s)", error)
            return None
        try:
            if not safety_in_use(engine):
                self.skipped += 1
                return None
            changes = service.tick(self.governance, engine)
            if self._after_tick is not None:
                self._after_tick(engine)
        finally:
            self._release(engine)
        self.ticks += 1
        self.changes.extend(changes)
        if changes:
            log.info(
                "alarm timer: %s", ", ".join(f"{c['change']} alarm {c['alarm_id']} ({c['rule']})" for c in changes)
            )
        return changes

    def _run(self) -> None:
        deadline = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            deadline += self.interval_s
            try:
                self.run_once()
            except Exception:  # logged; the next tick must still come
                self.failures += 1
                log.exception("alarm timer: tick failed (the next one runs in %g s)", self.interval_s)
            # A tick longer than the interval does not queue ticks up: the next one waits a full interval.
            deadline = max(deadline, time.monotonic())
