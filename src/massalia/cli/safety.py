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
from massalia.governance import InvalidRequest
from massalia.pipelines import LineageStore
from massalia.safety import notify, services, views
from massalia.safety import search as safety_search
from massalia.safety.query import IncidentFilter
from massalia.safety.synth.generator import GeneratorConfig, generate
from massalia.warehouse import open_warehouse

safety_app = typer.Typer(
    help="Public safety: the unified incident log (generate, load, incidents, stats, search, views)."
)
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
    """Load a delivery into the incident log (atomic; files already loaded are skipped), then index its reports."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        result = services.load(caller, warehouse, folder, LineageStore(data.metadata_url), index_root=data.indexes)
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


@safety_app.command("index")
def index_command(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the whole index (else: new reports).")] = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Index narratives and attachments for search (the reports loaded since the last run); bad files named.

    The saved searches are then run over the new reports for their owners (notifications of new matches).
    """
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        _print(notify.index_and_notify(caller, warehouse, data.indexes, rebuild=rebuild))


@safety_app.command("search")
def search_command(
    query: Annotated[str | None, typer.Argument(help='Words, "phrases", AND/OR/NOT, parentheses.')] = None,
    start: StartOption = None,
    end: EndOption = None,
    zone: ZoneOption = None,
    family: FamilyOption = None,
    type_: TypeOption = None,
    source: SourceOption = None,
    page: Annotated[int, typer.Option(min=1, max=1000, help="Page of hits.")] = 1,
    page_size: Annotated[int, typer.Option(min=1, max=100, help="Hits per page.")] = 10,
    save: Annotated[str | None, typer.Option("--save", help="Keep the query as a saved search of this name.")] = None,
    saved: Annotated[bool, typer.Option("--saved", help="List your saved searches.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Check your saved searches for new matches.")] = False,
    delete: Annotated[int | None, typer.Option("--delete-saved", min=1, help="Delete a saved search.")] = None,
    notifications: Annotated[
        bool, typer.Option("--notifications", help="List your notifications of new matches.")
    ] = False,
    read: Annotated[
        list[int] | None, typer.Option("--read-notification", min=1, help="Mark a notification read (repeatable).")
    ] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Search narratives and attachments (JSON), or keep, list, check and delete saved searches."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        if notifications:
            _print(notify.list_notifications(caller, warehouse))
        elif read:
            _print(notify.mark_read(caller, warehouse, read))
        elif saved:
            _print(views.list_searches(caller, warehouse))
        elif check:
            _print(views.check_searches(caller, warehouse, data.indexes))
        elif delete is not None:
            _print(views.delete_search(caller, warehouse, delete))
        elif query is None:
            raise InvalidRequest("give a QUERY (or --saved, --check, --delete-saved, --notifications)")
        elif save is not None:
            where = _filter(start, end, zone, family, type_, source)
            _print(views.save_search(caller, warehouse, data.indexes, save, query, where))
        else:
            where = _filter(start, end, zone, family, type_, source)
            found = safety_search.search_reports(caller, warehouse, data.indexes, query, where=where, page=page,
                                                 page_size=page_size)  # fmt: skip
            _print(found.as_dict())


@safety_app.command("views")
def views_command(
    save: Annotated[
        str | None, typer.Option("--save", help="Keep the filter and layout as a view of this name.")
    ] = None,
    layout: Annotated[
        str, typer.Option("--layout", help="The view's layout as JSON (by, bucket, cell, panels).")
    ] = "{}",
    share: Annotated[str | None, typer.Option("--share", help="Share with one of your safety roles.")] = None,
    show: Annotated[int | None, typer.Option("--show", min=1, help="One view.")] = None,
    delete: Annotated[int | None, typer.Option("--delete", min=1, help="Delete one of your views.")] = None,
    start: StartOption = None,
    end: EndOption = None,
    zone: ZoneOption = None,
    family: FamilyOption = None,
    type_: TypeOption = None,
    source: SourceOption = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """List your views and those shared with your role (JSON), or keep, show and delete one."""
    data = existing_home(home_dir)
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        if show is not None:
            _print(views.get_view(caller, warehouse, show))
        elif delete is not None:
            _print(views.delete_view(caller, warehouse, delete))
        elif save is not None:
            try:
                chosen = json.loads(layout)
            except json.JSONDecodeError as error:
                raise InvalidRequest(f"--layout: not JSON ({error})") from None
            if not isinstance(chosen, dict):
                raise InvalidRequest("--layout: a JSON object is expected")
            where = _filter(start, end, zone, family, type_, source)
            _print(views.save_view(caller, warehouse, save, where, chosen, share=share))
        else:
            _print(views.list_views(caller, warehouse))
