"""``massalia cohort …``: cohort definitions from the command line (a thin layer over the cohort services).

Every aggregate this command prints goes through small-cell suppression (counts below 10 masked, with
complementary suppression in attrition tables). Raw counts need the governance layer's rights, which
the command line does not grant. ``cohort explain`` shows one person's records: each use is written
to the audit log (``MASSALIA_HOME/ledger``) before anything is shown.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from massalia.config import home
from massalia.health.cohorts import CohortDefinition, generated_sql, import_circe
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


def _show(value: int | None) -> str:
    return "<10 (masked)" if value is None else f"{value:,}"


@cohort_app.command("import")
def cohort_import(
    definition: DefinitionArgument,
    out: Annotated[Path | None, typer.Option(help="Write the Massalia JSON here (default: print it).")] = None,
) -> None:
    """Import an ATLAS/Circe cohort definition and print (or write) it as Massalia JSON."""
    text = load_definition(definition).to_json(indent=1)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"written {out}")
    else:
        typer.echo(text)


@cohort_app.command("validate")
def cohort_validate(definition: DefinitionArgument) -> None:
    """Lint a definition: actionable findings with their JSON path; exit 1 when any is an error."""
    from massalia.health.cohorts.lint import lint

    findings = lint(load_definition(definition))
    for finding in findings:
        colour = "red" if finding.severity == "error" else "yellow"
        console.print(f"[{colour}]{finding.severity}[/] {finding.code} at {finding.path}: {finding.message}")
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
) -> None:
    """Print the SQL the compiler generates for a definition."""
    typer.echo(generated_sql(load_definition(definition), dialect, materialize=materialize))


@cohort_app.command("count")
def cohort_count(
    definition: DefinitionArgument,
    without: Annotated[
        list[int] | None, typer.Option("--without", help="Leave out inclusion rule N (1-based, repeatable): what-if.")
    ] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Count persons and events of a cohort, optionally with some inclusion rules switched off."""
    from massalia.health.cohorts.service import analyze_cohort

    parsed = load_definition(definition)
    enabled = [i + 1 not in (without or []) for i in range(len(parsed.inclusion_rules))]
    with open_warehouse(home(home_dir).ensure(), engine) as warehouse:
        analysis = analyze_cohort(warehouse, parsed)
    counts = analysis.count(enabled)
    console.print(f"persons {_show(counts.persons)}, events {_show(counts.events)}")


@cohort_app.command("attrition")
def cohort_attrition(definition: DefinitionArgument, home_dir: HomeOption = None, engine: EngineOption = None) -> None:
    """Attrition: persons and events after each inclusion rule in order, and with each rule alone."""
    from massalia.health.cohorts.service import analyze_cohort

    parsed = load_definition(definition)
    with open_warehouse(home(home_dir).ensure(), engine) as warehouse:
        base, rows = analyze_cohort(warehouse, parsed).attrition()
    table = Table(title=f"Attrition — qualified: {_show(base.persons)} persons, {_show(base.events)} events")
    for column in ("#", "rule", "persons (cumulative)", "events (cumulative)", "persons (alone)", "events (alone)"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for row in rows:
        table.add_row(
            str(row.rule_index + 1), row.name, _show(row.persons_cumulative), _show(row.events_cumulative),
            _show(row.persons_alone), _show(row.events_alone),
        )
    console.print(table)


@cohort_app.command("generate")
def cohort_generate(
    definition: DefinitionArgument,
    cohort_id: Annotated[int, typer.Option("--id", min=1, help="cohort_definition_id of the rows written.")] = 1,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Generate the cohort into the warehouse's COHORT table (recording definition hash and data version)."""
    from massalia.health.cohorts.service import generate_cohort
    from massalia.health.cohorts.suppression import suppress_count

    parsed = load_definition(definition)
    with open_warehouse(home(home_dir).ensure(), engine) as warehouse:
        generation = generate_cohort(warehouse, parsed, cohort_id)
    console.print(
        f"cohort {cohort_id}: {_show(suppress_count(generation.persons))} persons, "
        f"{_show(suppress_count(generation.rows))} periods; definition {generation.definition_hash[:12]}, "
        f"data {generation.data_version[:12]}, vocabulary {generation.vocabulary_version}"
    )


@cohort_app.command("explain")
def cohort_explain(
    definition: DefinitionArgument,
    person: Annotated[int, typer.Option("--person", help="person_id to explain.")],
    purpose: Annotated[str, typer.Option(help="Why this person's records are looked at (written to the audit log).")],
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Why one person is in or out: which records satisfied or failed each inclusion rule (audited)."""
    from massalia.health.cohorts.explain import explain_person
    from massalia.ledger import TransparencyLog

    parsed = load_definition(definition)
    data = home(home_dir).ensure()
    # The access is logged before any record is read, so a failure later still leaves a trace.
    with TransparencyLog(data.ledger) as log:
        log.append({
            "actor": getpass.getuser(), "channel": "cli", "action": "cohort.explain",
            "resource": {"person_id": person, "definition_hash": parsed.definition_hash()},
            "purpose": purpose, "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        })  # fmt: skip
        log.tree_head()
    with open_warehouse(data, engine) as warehouse:
        explanation = explain_person(warehouse, parsed, person)
    verdict = "[green]in the cohort[/]" if explanation.in_cohort else "[red]not in the cohort[/]"
    console.print(f"person {person}: {verdict}; {len(explanation.primary_events)} entry event(s)")
    for event in explanation.events:
        state = "included" if event.included else "excluded"
        console.print(f"  event {event.event_id} from {event.start_date}: {state}")
        for rule in event.rules:
            mark = "[green]✓[/]" if rule.satisfied else "[red]✗[/]"
            console.print(f"    {mark} rule {rule.rule_index + 1} {rule.name}")
            for evidence in rule.evidence:
                console.print(f"        {evidence.description} ({evidence.path}): {len(evidence.records)} record(s)")
                for record in evidence.records[:10]:
                    console.print(f"          {record}", highlight=False, markup=False)
    for period in explanation.cohort_periods:
        console.print(f"  cohort period {period}")
