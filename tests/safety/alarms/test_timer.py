"""The alarm timer inside the API server: silence raised without any request, stopped at shutdown, lock let go.

Attacks / failure modes: a server whose timer never runs (a silent feed goes unnoticed), a timer that keeps the
warehouse's write lock between ticks (an ETL run from the command line could never write), a timer that creates
safety tables in a warehouse the safety domain is not used on, a timer thread left running after shutdown.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from massalia.api import ApiSettings, create_app
from massalia.api.warehouse import WarehouseKeeper
from massalia.config import Home
from massalia.governance import Caller, Role, operator_principal
from massalia.ledger import TransparencyLog
from massalia.safety.alarms import service, state
from massalia.safety.alarms.timer import TICK_SETTING, AlarmTimer, tick_interval
from massalia.safety.ingest import MESSAGE_COLUMNS, MESSAGES, ensure_live_tables
from massalia.warehouse import open_warehouse

RULES = """
version: 1
rules:
  - {id: mc-muet, kind: silence, title: Main courante muette, severity: high, source: mc, minutes: 5}
"""
TIMER_THREAD = "massalia-safety-alarm-timer"


def _home(root: Path, *, safety: bool) -> Home:
    home = Home(root).ensure()
    home.mark_initialized("duckdb")
    with open_warehouse(home) as engine:
        if safety:
            ensure_live_tables(engine)
            # The feed "mc" last spoke two hours ago: its 5-minute silence rule is due at the first tick.
            last = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
            row = {"source": "mc", "message_id": "m-old", "report_id": None, "incident_id": None,
                   "outcome": "new_incident", "channel": "mqtt", "actor": "feed", "received_at": last,
                   "run_id": "live-old"}  # fmt: skip
            schema = pa.schema(
                [(c.name, {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "TIMESTAMP": pa.timestamp("us")}[c.type])
                 for c in MESSAGE_COLUMNS]
            )  # fmt: skip
            engine.insert(MESSAGES, pa.Table.from_pylist([row], schema=schema))
    return home


def _timer_threads() -> int:
    import threading

    return sum(1 for t in threading.enumerate() if t.name == TIMER_THREAD and t.is_alive())


def test_server_timer_raises_a_silence_alarm_without_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(tmp_path / "home", safety=True)
    monkeypatch.setenv(TICK_SETTING, "0.2")
    app = create_app(home, settings=ApiSettings())
    gov = app.state.massalia.governance
    manager = gov.create_user("max.manager", None, [Role.SAFETY_MANAGER], actor=operator_principal())
    with open_warehouse(home) as engine:
        service.declare_rules(Caller(manager, gov, "test"), engine, RULES)
        service.forget(engine)  # the server starts its own alarm engine from the tables, as after a restart
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        since = log.size
    before = _timer_threads()
    with TestClient(app):  # the lifespan runs; no request is made
        timer: AlarmTimer = app.state.safety_alarm_timer
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(c["change"] == "raised" for c in timer.changes):
            time.sleep(0.05)
        assert timer.running and timer.ticks >= 1, (timer.ticks, timer.skipped, timer.failures, list(timer.changes))
        assert [(c["change"], c["rule"]) for c in timer.changes] == [("raised", "mc-muet")]
    # Shutdown: the thread is gone, the warehouse let go, the alarm durable and audited.
    assert not timer.running and _timer_threads() == before
    assert not app.state.massalia.warehouses.anchored
    with open_warehouse(home) as engine:
        alarms = state.list_alarms(engine)
        assert [(a.rule_id, a.key, a.status) for a in alarms] == [("mc-muet", "mc", "open")]
        history = state.history_of(engine, alarms[0].alarm_id)
        assert [(h["change"], h["actor"]) for h in history] == [("raised", "alarm timer")]
        service.forget(engine)
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        audited = [log.get(i).entry for i in range(since, log.size)]
    raised = [e for e in audited if e["action"] == "safety.alarm.raised"]
    assert len(raised) == 1 and raised[0]["channel"] == "timer", raised
    gov.close()


def test_attack_timer_does_not_hold_the_warehouse_lock_between_ticks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (an ETL run) takes the warehouse for writing while the server and its timer run."""
    home = _home(tmp_path / "home", safety=True)
    monkeypatch.setenv(TICK_SETTING, "1.0")
    app = create_app(home, settings=ApiSettings())
    app.state.massalia.warehouses = WarehouseKeeper(home, keep_open_s=0.2)
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from massalia.config import Home\n"
        "from massalia.engine import WarehouseBusyError\n"
        "from massalia.warehouse import open_warehouse\n"
        "deadline = time.monotonic() + 20\n"
        "while True:\n"
        "    try:\n"
        "        with open_warehouse(Home(Path(sys.argv[1]))) as e:\n"
        "            e.execute('CREATE TABLE etl_was_here AS SELECT 1 AS x')\n"
        "        break\n"
        "    except WarehouseBusyError as error:\n"
        "        if time.monotonic() > deadline: raise SystemExit(f'never got the warehouse: {error}')\n"
        "        time.sleep(0.1)\n"
    )
    with TestClient(app):
        timer: AlarmTimer = app.state.safety_alarm_timer
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and timer.ticks < 1:
            time.sleep(0.05)
        assert timer.ticks >= 1
        done = subprocess.run(
            [sys.executable, "-c", script, str(home.root)],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        ticks = timer.ticks
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and timer.ticks <= ticks:
            time.sleep(0.05)
        assert timer.ticks > ticks and timer.failures == 0  # the timer goes on after the other writer left
    with open_warehouse(home) as engine:
        assert engine.table_exists("etl_was_here")
        service.forget(engine)
    app.state.massalia.governance.close()


def test_timer_creates_nothing_in_a_warehouse_without_safety(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home(tmp_path / "home", safety=False)
    monkeypatch.setenv(TICK_SETTING, "0.1")
    app = create_app(home, settings=ApiSettings())
    with TestClient(app):
        timer: AlarmTimer = app.state.safety_alarm_timer
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and timer.skipped < 2:
            time.sleep(0.05)
        assert timer.skipped >= 2 and timer.ticks == 0 and timer.failures == 0
    with open_warehouse(home) as engine:
        assert not engine.table_exists(state.ALARMS) and not engine.table_exists(MESSAGES)
    app.state.massalia.governance.close()


def test_timer_setting_is_bounded_and_zero_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("soon", "-1", "0.001", "86400"):
        with pytest.raises(ValueError, match=TICK_SETTING):
            tick_interval({TICK_SETTING: bad})
    assert tick_interval({TICK_SETTING: " 2.5 "}) == 2.5
    home = _home(tmp_path / "home", safety=True)
    monkeypatch.setenv(TICK_SETTING, "0")
    app = create_app(home, settings=ApiSettings())
    with TestClient(app):
        assert getattr(app.state, "safety_alarm_timer", None) is None
    app.state.massalia.governance.close()
