"""``massalia cohort …``: cohort definitions from the command line (a thin layer over ``massalia.health.research``).

Every command resolves the caller first (the holder of ``MASSALIA_TOKEN``, else the home's local
operator with the roles ``admin`` + ``data_engineer``) and goes through the guarded services, which
check ``rights.yaml``, write decisions on personal data to the audit log (``MASSALIA_HOME/ledger``)
before any record is read, and suppress small counts unless the caller's project allows raw counts.
The local operator never gets raw counts nor patient records without an approved project.
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from massalia.cli.common import (
    EXIT_INVALID,
    EngineOption,
    HomeOption,
    ProjectOption,
    console,
    error_console,
    existing_home,
    fail,
    governed,
    initialized_warehouse,
    literal,
    record_text,
)
from massalia.config import home
from massalia.governance.disclosure import release_note, show_count
from massalia.health import research, services
from massalia.health.cohorts import CohortDefinition, import_circe
from massalia.health.cohorts.circe import CirceImportError
from massalia.health.cohorts.lint import Finding

cohort_app = typer.Typer(
    help="Cohort definitions (Massalia JSON or OHDSI ATLAS/Circe JSON): import, lint, SQL, counts, attrition, "
    "what-if, explain, generate."
)

DefinitionArgument = Annotated[
    Path, typer.Argument(help="Cohort definition: Massalia JSON or an ATLAS/Circe export (JSON).")
]


MAX_DEFINITION_BYTES = 5 * 1024 * 1024
"""A definition file is read whole: larger ones are refused (the API's body bound)."""


class DefinitionError(ValueError):
    """A definition file that cannot be read as a cohort; ``findings`` say where (JSON path) and what is wrong."""

    def __init__(self, path: Path, findings: list[Finding]) -> None:
        self.path = path
        self.findings = findings
        super().__init__(f"{path}: " + "; ".join(f"{f.path}: {f.message}" for f in findings))


def _json_path(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as a JSON path (``$.primary_criteria.criteria_list[0]``)."""
    path = "$"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _invalid(path: Path, problems: list[tuple[str, str]]) -> DefinitionError:
    return DefinitionError(path, [Finding("invalid-definition", "error", where, what) for where, what in problems])


def read_definition(path: Path) -> CohortDefinition:
    """Read a definition file, in Massalia's JSON or in Circe's (recognised by its ``PrimaryCriteria``).

    Raises
    ------
    DefinitionError
        The file is missing, not JSON, or not a cohort definition (an unknown or mistyped key, a wrong
        type): its findings are the documented ``invalid-definition`` lint findings, each with its JSON path.
    """
    if not path.is_file():
        raise _invalid(path, [("$", "no such file")])
    if path.stat().st_size > MAX_DEFINITION_BYTES:
        raise _invalid(path, [("$", f"larger than {MAX_DEFINITION_BYTES:,} bytes: not a cohort definition")])
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except UnicodeDecodeError as error:
        raise _invalid(path, [("$", f"not UTF-8 text ({error.reason} at byte {error.start})")]) from None
    except json.JSONDecodeError as error:
        raise _invalid(
            path, [("$", f"not valid JSON, line {error.lineno} column {error.colno}: {error.msg}")]
        ) from None
    if not isinstance(data, dict):
        raise _invalid(path, [("$", f"a cohort definition is a JSON object, not {type(data).__name__}")])
    try:
        if "PrimaryCriteria" in data:
            return import_circe(data)
        return CohortDefinition.from_json(text)
    except CirceImportError as error:
        raise _invalid(path, error.problems) from None
    except ValidationError as error:
        problems = [(_json_path(item["loc"]), _pydantic_message(item)) for item in error.errors()]
        raise _invalid(path, problems[:20]) from None


@functools.cache
def _definition_keys() -> frozenset[str]:
    """Every key a Massalia cohort definition may use, at any depth (from its JSON schema)."""
    schema = CohortDefinition.model_json_schema(by_alias=False)
    keys = set(schema.get("properties", {}))
    for definition in schema.get("$defs", {}).values():
        keys |= set(definition.get("properties", {}))
    return frozenset(keys)


def _pydantic_message(item: Any) -> str:
    # "Extra inputs are not permitted" does not tell a newcomer that a key is unknown (often mistyped).
    if item.get("type") == "extra_forbidden":
        key = str(item["loc"][-1]) if item.get("loc") else ""
        near = difflib.get_close_matches(key, sorted(_definition_keys()), n=1)
        hint = f"did you mean {near[0]!r}?" if near else "see docs/cohorts.md for the definition's keys"
        return f"unknown key {key[:80]!r} ({hint})"
    return str(item.get("msg", "invalid value"))


def print_findings(findings: list[Finding], source: Path | None = None) -> None:
    """Print lint findings, one line each: severity, code, JSON path, message (all literal text)."""
    prefix = f"{source}: " if source is not None else ""
    for finding in findings:
        colour = "red" if finding.severity == "error" else "yellow"
        where = literal(f"{prefix}{finding.code} at {finding.path}: {finding.message}")
        console.print(f"[{colour}]{finding.severity}[/] ", where, sep="")


def load_definition(path: Path) -> CohortDefinition:
    """:func:`read_definition` for a command: a file that is not a cohort prints its findings and exits 1."""
    try:
        return read_definition(path)
    except DefinitionError as error:
        for finding in error.findings:
            error_console.print("[red]error[/]: ", literal(f"{path}: {finding.code} at {finding.path}: "
                                                          f"{finding.message}"), sep="")  # fmt: skip
        raise typer.Exit(code=EXIT_INVALID) from None


def enabled_rules(definition: CohortDefinition, without: list[int] | None) -> list[bool]:
    """Which inclusion rules stay on when rules ``without`` (1-based) are left out; a wrong number is refused.

    Examples
    --------
    >>> enabled_rules(CohortDefinition(), None)
    []
    """
    count = len(definition.inclusion_rules)
    wrong = sorted({n for n in without or [] if not 1 <= n <= count})
    if wrong:
        valid = f"1 to {count}" if count > 1 else ("1" if count == 1 else "none: the definition has no inclusion rule")
        fail(f"--without {', '.join(map(str, wrong))}: no such inclusion rule (valid rule numbers: {valid})")
    return [i + 1 not in (without or []) for i in range(count)]


def _show(value: int | None, release: dict[str, Any] | None, name: str = "") -> str:
    return show_count(value, release, withheld=name in ((release or {}).get("withheld") or ()))


@cohort_app.command("import")
def cohort_import(
    definition: DefinitionArgument,
    out: Annotated[Path | None, typer.Option(help="Write the Massalia JSON here (default: print it).")] = None,
    home_dir: HomeOption = None,
) -> None:
    """Import an ATLAS/Circe cohort definition and print (or write) it as Massalia JSON."""
    with governed(home(home_dir).ensure()) as caller:
        checked = services.checked_definition(caller, load_definition(definition))
    text = checked.to_json(indent=1)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"written {out}")
    else:
        typer.echo(text)


@cohort_app.command("validate")
def cohort_validate(definition: DefinitionArgument, home_dir: HomeOption = None) -> None:
    """Lint a definition: actionable findings with their JSON path; exit 1 when any is an error."""
    with governed(home(home_dir).ensure()) as caller:  # the caller first (a bad token: exit 4)
        try:
            findings = services.lint_definition(caller, read_definition(definition))
        except DefinitionError as error:  # not a cohort: the findings are about the file given, no data read
            findings = error.findings
    print_findings(findings)
    console.print(f"{len(findings)} finding(s)")
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(code=EXIT_INVALID)


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
    with governed(home(home_dir).ensure()) as caller:
        text = services.definition_sql(caller, load_definition(definition), dialect, materialize=materialize)
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
    enabled = enabled_rules(parsed, without)
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        counts = research.count(caller, warehouse, parsed, project_id=project, enabled=enabled)
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
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        base, rows = research.attrition(caller, warehouse, parsed, project_id=project)
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
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        generation = research.generate(caller, warehouse, parsed, cohort_definition_id=cohort_id, project_id=project)
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
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        cells = research.breakdowns(caller, warehouse, parsed, cohort_definition_id=cohort_id, project_id=project)
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
    data = existing_home(home_dir)
    # The access is logged (by the governance layer) before any record is read.
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        result = research.explain(caller, warehouse, parsed, reference, purpose=purpose, project_id=project)
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
                    console.print(literal(f"          {record_text(record)}"), highlight=False)
    for period in explanation.cohort_periods:
        console.print(literal(f"  cohort period {record_text(period)}"), highlight=False)
