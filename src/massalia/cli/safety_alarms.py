"""``massalia safety alarms``: rule sets, alarms and decisions, exports, and the MQTT feed subscriber.

Every command goes through the guarded services of :mod:`massalia.safety.alarms.service` with the caller of
:func:`governed` (a refusal exits with status 3). ``listen`` runs the MQTT subscriber (``MASSALIA_MQTT_URL``)
and the alarm timer (silence, escalation, end of snoozes) once a second until stopped or ``--seconds`` pass.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from massalia.cli.common import EngineOption, HomeOption, existing_home, governed
from massalia.governance import InvalidRequest
from massalia.safety.alarms import service
from massalia.warehouse import open_warehouse

alarms_app = typer.Typer(help="Alarms on the live incident feeds: rules, alarms, decisions, exports, MQTT listener.")


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=1, ensure_ascii=False, default=str))


@alarms_app.command("rules")
def rules_command(
    path: Annotated[Path, typer.Argument(help="A rule set (YAML or JSON) to declare as the next version.")],
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Declare a new version of the alarm rule set (validated; errors name the field)."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        if not path.is_file():
            raise InvalidRequest(f"{path}: no such rule file")
        _print(service.declare_rules(caller, warehouse, path.read_bytes()))


@alarms_app.command("list")
def list_command(
    status: Annotated[str | None, typer.Option(help="open, acknowledged, snoozed or closed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most alarms listed")] = 50,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Alarms, newest first."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        _print(service.list_alarms(caller, warehouse, status=status, limit=limit))


@alarms_app.command("act")
def act_command(
    alarm_id: Annotated[int, typer.Argument(min=1)],
    decision: Annotated[str, typer.Option(help="acknowledge, snooze, close or reopen")] = "acknowledge",
    reason: Annotated[str | None, typer.Option(help="Why (required to close; 500 characters at most)")] = None,
    minutes: Annotated[int, typer.Option(min=1, max=7 * 24 * 60, help="Snooze length")] = 30,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Acknowledge, snooze, close or reopen an alarm."""
    data = existing_home(home_dir)
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes) if decision == "snooze" else None
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        _print(service.act_on(caller, warehouse, alarm_id, decision, reason=reason, until=until))


@alarms_app.command("export")
def export_command(
    alarm_id: Annotated[list[int], typer.Argument(min=1, help="Alarm ids")],
    fmt: Annotated[str, typer.Option("--format", help="cap (CAP 1.2 XML) or ngsi-ld (Alert entities)")] = "cap",
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Export alarms as CAP 1.2 XML or NGSI-LD ``Alert`` entities (no personal data)."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        exported = service.export(caller, warehouse, alarm_id, fmt)
        if fmt == "cap":
            typer.echo("\n".join(str(x) for x in exported))
        else:
            _print(exported)


@alarms_app.command("listen")
def listen_command(
    seconds: Annotated[int, typer.Option(min=0, help="Stop after this long (0: until interrupted)")] = 0,
    client_id: Annotated[str, typer.Option(max=64, help="Persistent MQTT session id")] = "massalia-safety",
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Ingest the MQTT feeds (MASSALIA_MQTT_URL) and run the alarm timer until stopped."""
    from massalia.safety.mqtt import Subscriber

    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        service.open_feed(caller, warehouse)
        feed = type(caller)(caller.principal, caller.governance, "mqtt")
        subscriber = Subscriber(feed, warehouse, client_id=client_id).start()
        deadline = time.monotonic() + seconds if seconds else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(1.0)
                service.tick(caller.governance, warehouse)
        except KeyboardInterrupt:
            pass
        finally:
            subscriber.stop()
        _print({"received": subscriber.stats.received, "accepted": subscriber.stats.accepted,
                "duplicates": subscriber.stats.duplicates, "rejected": len(subscriber.stats.rejected)})  # fmt: skip
