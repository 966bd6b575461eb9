"""``massalia mart …``: the patient-level research mart (a thin layer over ``massalia.health.marts``).

Every command goes through the guarded services of ``massalia.health.research`` as the caller
(``MASSALIA_TOKEN`` holder, else the home's local operator): the rights check and the audit entry come
first; counts below 10 are masked (with complementary suppression in breakdowns) unless the caller's
grant allows raw counts (a member of an approved project, ``--project``).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from massalia.cli.common import EngineOption, HomeOption, console, existing_home, fail, governed, initialized_warehouse
from massalia.governance.disclosure import release_note, show_count
from massalia.health import research
from massalia.health.marts.builder import last_build
from massalia.health.marts.catalogue import CatalogueError, load_catalogue
from massalia.health.marts.filters import FilterError, FilterSpec, parse_clause

mart_app = typer.Typer(help="The patient-level research mart (mart_patient): build, variables, governed counts.")


@mart_app.command("build")
def mart_build(home_dir: HomeOption = None, engine: EngineOption = None) -> None:
    """Build (or rebuild) mart_patient from the warehouse; the old mart stays readable until the new one is done."""
    data = existing_home(home_dir)
    try:
        with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
            result = research.mart_build(caller, warehouse)
    except typer.Exit:  # a refusal or a bad token, already reported (click's Exit is a RuntimeError)
        raise
    except (CatalogueError, RuntimeError) as error:
        fail(str(error))
    console.print(
        f"[green]built[/] {result.table}: {result.rows:,} persons × {result.variables} variables "
        f"in {result.duration_s:.1f} s (build {result.build_id})"
    )
    console.print(f"vocabulary: {result.vocabulary_version or 'unknown'}; data: {result.data_version or 'unknown'}")


@mart_app.command("variables")
def mart_variables(
    lang: Annotated[str, typer.Option("--lang", help="Language of the labels: fr or en.")] = "en",
    group: Annotated[str | None, typer.Option("--group", help="Show only this group (e.g. stage).")] = None,
) -> None:
    """List the mart's variables: name, label, type (allowed values), unit, disclosure class."""
    if lang not in ("fr", "en"):
        raise typer.BadParameter(f"--lang must be fr or en, not {lang!r}")
    catalogue = load_catalogue()
    table = Table("group", "name", "label", "type", "unit", "disclosure")
    shown = 0
    for name, variables in catalogue.by_group().items():
        if group is not None and name.value != group:
            continue
        for variable in variables:
            kind = variable.type.value
            if variable.values:
                kind += f" ({', '.join(variable.values)})"
            table.add_row(
                name.value, variable.name, variable.label_in(lang), kind, variable.unit or "", variable.disclosure.value
            )
            shown += 1
    if group is not None and not shown:
        fail(f"no group {group!r}: one of {', '.join(g.value for g in catalogue.by_group())}")
    console.print(table)


@mart_app.command("count")
def mart_count(
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="A condition 'variable op value' (repeatable, all must hold): 'sex = female'."),
    ] = None,
    any_of: Annotated[
        list[str] | None,
        typer.Option("--any", help="A condition of one OR group (repeatable; at least one must hold)."),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Break the count down by a category or boolean variable.")
    ] = None,
    cohort: Annotated[
        int | None, typer.Option("--cohort", help="Only persons of this generated cohort (cohort_definition_id).")
    ] = None,
    project: Annotated[
        int | None,
        typer.Option("--project", help="Act under this approved project (raw counts if its access level allows)."),
    ] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Count persons of the mart matching the conditions (exact for an approved project, otherwise noisy)."""
    try:
        spec = FilterSpec(
            all=[parse_clause(text) for text in where or []],
            any_of=[[parse_clause(text) for text in any_of]] if any_of else [],
            cohort_definition_id=cohort,
        )
        data = existing_home(home_dir)
        with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
            if by is None:
                result = research.mart_count(caller, warehouse, spec, project_id=project)
                console.print(f"persons {show_count(result.count, result.release)}")
                console.print(release_note(result.release), markup=False)
                return
            split = research.mart_breakdown(caller, warehouse, spec, by, project_id=project)
            built = last_build(warehouse)
    except FilterError as error:
        fail(str(error))
    table = Table(by, "persons")
    for value, count in split.cells.items():
        table.add_row("(missing)" if value is None else str(value), show_count(count, split.release))
    table.add_row("[bold]total[/]", show_count(split.total, split.release))
    console.print(table)
    console.print(release_note(split.release), markup=False)
    if built is not None:
        console.print(f"mart built {built['built_at']:%Y-%m-%d %H:%M} UTC")
