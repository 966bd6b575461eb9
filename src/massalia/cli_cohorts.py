"""``massalia cohort …``: cohort definitions from the command line (a thin layer over ``massalia.health.research``).

Every command resolves the caller first (the holder of ``MASSALIA_TOKEN``, else the home's local
operator with the roles ``admin`` + ``data_engineer``) and goes through the guarded services, which
check ``rights.yaml``, write decisions on personal data to the audit log (``MASSALIA_HOME/ledger``)
before any record is read, and suppress small counts unless the caller's project allows raw counts.
The local operator never gets raw counts nor patient records without an approved project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from massalia.cli_governance import governed, literal
from massalia.config import home
from massalia.governance.disclosure import release_note, show_count
from massalia.health import research, services
from massalia.health.cohorts import CohortDefinition, import_circe
from massalia.warehouse import open_warehouse

cohort_app = typer.Typer(
    help="Cohort definitions (Massalia JSON or OHDSI ATLAS/Circe JSON): import, lint, SQL, counts, attrition, "
    "what-if, explain, generate."
)
console = Console()

DefinitionArgument = Annotated[
    Path, typer.Argument(help="Cohort definition: Massalia JSON or an ATLAS/Circe export (JSON).")
]
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="MASSALIA_HOME", help="Data folder (warehouse, metadata, indexes, reports)."),
]
EngineOption = Annotated[
    str | None,
    typer.Option("--engine", envvar="MASSALIA_ENGINE", help="Warehouse engine: duckdb (default), postgres, spark."),
]
ProjectOption = Annotated[
    int | None,
    typer.Option("--project", help="Act under this approved project (raw counts, records as its access level allows)."),
]


def load_definition(path: Path) -> CohortDefinition:
    """Read a definition file, in Massalia's JSON or in Circe's (recognised by its ``PrimaryCriteria``)."""
    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from None
    if isinstance(data, dict) and "PrimaryCriteria" in data:
        return import_circe(data)
    return CohortDefinition.from_json(text)


def _show(value: int | None, release: dict[str, Any] | None, name: str = "") -> str:
    return show_count(value, release, withheld=name in ((release or {}).get("withheld") or ()))


@cohort_app.command("import")
def cohort_import(
    definition: DefinitionArgument,
    out: Annotated[Path | None, typer.Option(help="Write the Massalia JSON here (default: print it).")] = None,
    home_dir: HomeOption = None,
) -> None:
    """Import an ATLAS/Circe cohort definition and print (or write) it as Massalia JSON."""
    with governed(home(home_dir).ensure()) as (gov, principal):
        checked = services.checked_definition(gov, principal, load_definition(definition), channel="cli")
    text = checked.to_json(indent=1)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"written {out}")
    else:
        typer.echo(text)


@cohort_app.command("validate")
def cohort_validate(definition: DefinitionArgument, home_dir: HomeOption = None) -> None:
    """Lint a definition: actionable findings with their JSON path; exit 1 when any is an error."""
    with governed(home(home_dir).ensure()) as (gov, principal):
        findings = services.lint_definition(gov, principal, load_definition(definition), channel="cli")
    for finding in findings:
        colour = "red" if finding.severity == "error" else "yellow"
        where = literal(f"{finding.code} at {finding.path}: {finding.message}")
        console.print(f"[{colour}]{finding.severity}[/] ", where, sep="")
    console.print(f"{len(findings)} finding(s)")
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(code=1)


@cohort_app.command("sql")
def cohort_sql(
    definition: DefinitionArgument,
    dialect: Annotated[str, typer.Option(help="SQL dialect: duckdb, postgres, spark.")] = "duckdb",
    materialize: Annotated[
        bool | None, typer.Option(help="Steps as temporary tables + ANALYZE (default: as the engine needs).")
    ] = None,
    home_dir: HomeOption = None,
) -> None:
    """Print the SQL the compiler generates for a definition."""
    with governed(home(home_dir).ensure()) as (gov, principal):
        text = services.definition_sql(
            gov, principal, load_definition(definition), dialect, materialize=materialize, channel="cli"
        )
    typer.echo(text)


@cohort_app.command("count")
def cohort_count(
    definition: DefinitionArgument,
    without: Annotated[
        list[int] | None, typer.Option("--without", help="Leave out inclusion rule N (1-based, repeatable): what-if.")
    ] = None,
    project: ProjectOption = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Count persons and events of a cohort, optionally with some inclusion rules switched off."""
    parsed = load_definition(definition)
    enabled = [i + 1 not in (without or []) for i in range(len(parsed.inclusion_rules))]
    data = home(home_dir).ensure()
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse:
        counts = research.count(gov, warehouse, principal, parsed, project_id=project, enabled=enabled, channel="cli")
    release = counts.release
    console.print(f"persons {_show(counts.persons, release)}, events {_show(counts.events, release, 'events')}")
    console.print(release_note(release), markup=False)


@cohort_app.command("attrition")
def cohort_attrition(
    definition: DefinitionArgument,
    project: ProjectOption = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Attrition: persons and events after each inclusion rule in order, and with each rule alone."""
    parsed = load_definition(definition)
    data = home(home_dir).ensure()
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse:
        base, rows = research.attrition(gov, warehouse, principal, parsed, project_id=project, channel="cli")
    release = base.release
    persons, events = _show(base.persons, release), _show(base.events, release, "events")
    table = Table(title=f"Attrition — qualified: {persons} persons, {events} events")
    for column in ("#", "rule", "persons (cumulative)", "events (cumulative)", "persons (alone)", "events (alone)"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for row in rows:
        table.add_row(
            str(row.rule_index + 1), row.name, _show(row.persons_cumulative, release),
            _show(row.events_cumulative, release, "events"), _show(row.persons_alone, release),
            _show(row.events_alone, release, "events"),
        )  # fmt: skip
    console.print(table)
    console.print(release_note(release), markup=False)


@cohort_app.command("generate")
def cohort_generate(
    definition: DefinitionArgument,
    cohort_id: Annotated[int, typer.Option("--id", min=1, help="cohort_definition_id of the rows written.")] = 1,
    project: ProjectOption = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Generate the cohort into the warehouse's COHORT table (recording definition hash and data version)."""
    parsed = load_definition(definition)
    data = home(home_dir).ensure()
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse:
        generation = research.generate(
            gov, warehouse, principal, parsed, cohort_definition_id=cohort_id, project_id=project, channel="cli"
        )
    console.print(
        f"cohort {cohort_id}: {_show(generation.persons, generation.release)} persons, "
        f"{_show(generation.rows, generation.release, 'rows')} periods; definition {generation.definition_hash[:12]}, "
        f"data {generation.data_version[:12]}, vocabulary {generation.vocabulary_version}"
    )
    console.print(release_note(generation.release), markup=False)


@cohort_app.command("breakdowns")
def cohort_breakdowns(
    definition: DefinitionArgument,
    cohort_id: Annotated[int, typer.Option("--id", min=1, help="cohort_definition_id of the generated cohort.")] = 1,
    project: ProjectOption = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Persons of a generated cohort by sex, age band and site (exact for an approved project, else noisy)."""
    parsed = load_definition(definition)
    data = home(home_dir).ensure()
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse:
        cells = research.breakdowns(
            gov, warehouse, principal, parsed, cohort_definition_id=cohort_id, project_id=project, channel="cli"
        )
    release = cells.pop("release", None)
    for name, counts in cells.items():
        table = Table(title=f"persons by {name}")
        table.add_column(name)
        table.add_column("persons", justify="right")
        for key, value in counts.items():
            table.add_row(str(key), _show(value, release))
        console.print(table)
    console.print(release_note(release), markup=False)


@cohort_app.command("explain")
def cohort_explain(
    definition: DefinitionArgument,
    person: Annotated[
        str,
        typer.Option("--person", help="person_id to explain (under a pseudonymized project: its pseudonym)."),
    ],
    purpose: Annotated[str, typer.Option(help="Why this person's records are looked at (written to the audit log).")],
    project: ProjectOption = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Why one person is in or out: which records satisfied or failed each inclusion rule (audited)."""
    parsed = load_definition(definition)
    reference: int | str = int(person) if person.strip().lstrip("-").isdigit() else person.strip()
    data = home(home_dir).ensure()
    # The access is logged (by the governance layer) before any record is read.
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse:
        result = research.explain(
            gov, warehouse, principal, parsed, reference, purpose=purpose, project_id=project, channel="cli"
        )
    explanation = result.explanation
    verdict = "[green]in the cohort[/]" if explanation.in_cohort else "[red]not in the cohort[/]"
    console.print(f"person {escape(person)}: {verdict}; {len(explanation.primary_events)} entry event(s)")
    if not result.grant.row_level:
        console.print("records hidden: patient-level data needs an approved project (see docs/governance.md)")
    for event in explanation.events:
        state = "included" if event.included else "excluded"
        console.print(f"  event {event.event_id} from {event.start_date or '(hidden)'}: {state}")
        for rule in event.rules:
            mark = "[green]✓[/]" if rule.satisfied else "[red]✗[/]"
            # Rule names, descriptions and records come from the definition and the warehouse: literal text.
            console.print(f"    {mark} ", literal(f"rule {rule.rule_index + 1} {rule.name}"), sep="")
            for evidence in rule.evidence:
                if not result.grant.row_level:
                    console.print(literal(f"        {evidence.description} ({evidence.path})"))
                    continue
                console.print(
                    literal(f"        {evidence.description} ({evidence.path}): {len(evidence.records)} record(s)")
                )
                for record in evidence.records[:10]:
                    console.print(literal(f"          {record}"), highlight=False)
    for period in explanation.cohort_periods:
        console.print(literal(f"  cohort period {period}"), highlight=False)
