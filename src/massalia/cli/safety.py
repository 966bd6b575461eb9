"""``massalia safety``: generate demo logs, load them into the unified incident log, list incidents, statistics.

Every command but ``generate`` (which writes synthetic files and reads nothing) goes through the guarded
services of :mod:`massalia.safety.services` with the caller of :func:`governed` (the ``MASSALIA_TOKEN``
holder, else the home's local operator): a refusal exits with status 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from massalia.cli.common import EngineOption, HomeOption, console, existing_home, governed, literal
from massalia.cli.safety_alarms import alarms_app
from massalia.pipelines import LineageStore
from massalia.safety import services
from massalia.safety.query import IncidentFilter
from massalia.safety.synth.generator import GeneratorConfig, generate
from massalia.warehouse import open_warehouse

safety_app = typer.Typer(help="Public safety: the unified incident log (generate, load, incidents, stats).")
safety_app.add_typer(alarms_app, name="alarms")

StartOption = Annotated[str | None, typer.Option("--start", help="From this ISO date or date-time (included).")]
EndOption = Annotated[str | None, typer.Option("--end", help="Until this ISO date or date-time (excluded).")]
ZoneOption = Annotated[list[str] | None, typer.Option("--zone", help="A zone (D01..D16); repeat for several.")]
FamilyOption = Annotated[list[str] | None, typer.Option("--family", help="A type family (VOL, BRU...); repeatable.")]
TypeOption = Annotated[
    list[str] | None, typer.Option("--type", help="An incident type (VOL.ARRACHAGE...); repeatable.")
]
SourceOption = Annotated[list[str] | None, typer.Option("--source", help="A source (mc, csu, dtp); repeatable.")]


def _filter(
    start: str | None,
    end: str | None,
    zone: list[str] | None,
    family: list[str] | None,
    type_: list[str] | None,
    source: list[str] | None,
) -> IncidentFilter:
    return IncidentFilter(
        services.parse_day(start, "--start"),
        services.parse_day(end, "--end"),
        tuple(zone or ()),
        tuple(family or ()),
        tuple(type_ or ()),
        tuple(source or ()),
    )


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=1, ensure_ascii=False, default=str))


@safety_app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Argument(help="Folder to write the logs into (mc/, csu/, dtp/, reference/, truth/).")],
    events: Annotated[int, typer.Option(min=1, max=5_000_000, help="True events in the year.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 16,
    year: Annotated[int, typer.Option(min=2000, max=2100, help="The year generated.")] = 2025,
) -> None:
    """Write a seeded year of synthetic municipal logs (three layouts) with their ground truth."""
    logs = generate(out, GeneratorConfig(events=events, seed=seed, year=year))
    console.print(
        literal(f"{logs.events} events -> rows {logs.rows} (dirty on purpose: {logs.dirty}) under {logs.root}")
    )


@safety_app.command("load")
def load_command(
    folder: Annotated[Path, typer.Argument(help="A delivery folder (as written by `massalia safety generate`).")],
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Load a delivery into the incident log (atomic; files already loaded are skipped)."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        result = services.load(caller, warehouse, folder, LineageStore(data.metadata_url))
    _print(result)


@safety_app.command("incidents")
def incidents_command(
    start: StartOption = None,
    end: EndOption = None,
    zone: ZoneOption = None,
    family: FamilyOption = None,
    type_: TypeOption = None,
    source: SourceOption = None,
    include: Annotated[list[str] | None, typer.Option("--include", help="narrative and/or parties (audited).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=services.MAX_ROWS, help="Incidents per page.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Incidents skipped (paging).")] = 0,
    incident: Annotated[int | None, typer.Option("--id", min=1, help="One incident with its history.")] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """List incidents (JSON), or one incident with every version of its reports and its dedup links."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        if incident is not None:
            _print(services.incident_detail(caller, warehouse, incident, include=tuple(include or ())))
            return
        where = _filter(start, end, zone, family, type_, source)
        _print(
            services.list_incidents(caller, warehouse, where, include=tuple(include or ()), limit=limit, offset=offset)
        )


@safety_app.command("stats")
def stats_command(
    by: Annotated[str, typer.Option(help="zone, family, type, month, weekday or hour.")] = "zone",
    start: StartOption = None,
    end: EndOption = None,
    zone: ZoneOption = None,
    family: FamilyOption = None,
    type_: TypeOption = None,
    source: SourceOption = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Counts, previous period, rates per 10,000 inhabitants and reporting-bias notes (JSON)."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        _print(services.statistics(caller, warehouse, _filter(start, end, zone, family, type_, source), by))


@safety_app.command("quality")
def quality_command(home_dir: HomeOption = None, engine: EngineOption = None) -> None:
    """Rejected rows, unmapped local codes and dedup decisions of the loads (JSON)."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        _print(services.quality(caller, warehouse))


@safety_app.command("catalogue")
def catalogue_command(home_dir: HomeOption = None) -> None:
    """The incident-type catalogue with its crosswalks (JSON)."""
    with governed(existing_home(home_dir)) as caller:
        _print(services.catalogue_view(caller))
