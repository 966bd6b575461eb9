"""The ``massalia`` command: a thin layer over the service functions (same as the Python API)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from massalia import __version__
from massalia.cli_cohorts import cohort_app
from massalia.cli_governance import register as register_governance
from massalia.cli_marts import mart_app
from massalia.cli_patients import patient_app
from massalia.cli_serve import serve_app
from massalia.config import Home, HomeNotInitializedError, home
from massalia.engine import Engine
from massalia.warehouse import open_warehouse

console = Console()


class _Commands(TyperGroup):
    """The command group: a home that was never initialized ends any command with one clear line.

    Caught here, once, so that every sub-command (marts, cohorts, patients…) refuses such a home
    the same way, with exit status 1 and no traceback or SQL text.
    """

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except HomeNotInitializedError as error:
            console.print(f"[bold red]error:[/] {escape(str(error))}")
            raise typer.Exit(code=1) from None


app = typer.Typer(
    cls=_Commands,
    name="massalia",
    help=(
        "Massalia: a self-hostable, secure data platform. The oncology warehouse runs on OMOP CDM v5.4, "
        "on DuckDB by default (no server), PostgreSQL or Spark. Data lives under MASSALIA_HOME "
        "(default ./massalia-data)."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
omop_app = typer.Typer(help="OMOP CDM schema and vocabularies: DDL, Athena vocabulary, OMOP CSV exports.")
etl_app = typer.Typer(help="ETL runs: history, lineage and rejected rows.")
audit_app = typer.Typer(help="The tamper-evident audit log (an RFC 9162-style Merkle transparency log).")
app.add_typer(omop_app, name="omop")
app.add_typer(etl_app, name="etl")
app.add_typer(audit_app, name="audit")
app.add_typer(cohort_app, name="cohort")
app.add_typer(serve_app, name="serve")
app.add_typer(mart_app, name="mart")
app.add_typer(patient_app, name="patient")
register_governance(app)  # user, token, project, request

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="MASSALIA_HOME", help="Data folder (warehouse, metadata, indexes, reports)."),
]
EngineOption = Annotated[
    str | None,
    typer.Option("--engine", envvar="MASSALIA_ENGINE", help="Warehouse engine: duckdb (default), postgres, spark."),
]


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _open(home_dir: Path | None, engine: str | None, *, create: bool = False) -> tuple[Home, Engine]:
    """The home and its warehouse; only commands that make a home (``create``) accept a new folder."""
    data = home(home_dir)
    if not create:
        data.require_initialized()  # before anything is created under a mistyped --home
    data.ensure()
    warehouse = open_warehouse(data, engine, create=create)
    if create and not data.marker.is_file():
        data.mark_initialized(warehouse.name)  # `init` records its engine again; `load`/`demo` only the first time
    return data, warehouse


def _initialized_home(home_dir: Path | None) -> Home:
    """The home at ``home_dir`` for a command that only reads it (refused if never initialized)."""
    return home(home_dir).require_initialized()


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print Massalia's version."""
    console.print(f"massalia {__version__}")


@app.command()
def init(home_dir: HomeOption = None, engine: EngineOption = None) -> None:
    """Create MASSALIA_HOME, the empty OMOP CDM v5.4 tables and the demo vocabulary."""
    from massalia.governance import Governance
    from massalia.health.omop.schema import create_cdm_indexes, create_cdm_schema
    from massalia.health.omop.vocabulary import load_demo_vocabulary

    data, warehouse = _open(home_dir, engine, create=True)
    data.mark_initialized(warehouse.name)
    Governance.from_home(data).close()  # the governance tables (users, tokens, projects, requests)
    with warehouse:
        created = create_cdm_schema(warehouse)
        vocabulary = load_demo_vocabulary(warehouse)
        indexes = create_cdm_indexes(warehouse)
    console.print(
        f"[green]initialised[/] {data.root}: {len(created)} CDM tables created, "
        f"{sum(vocabulary.values()):,} vocabulary rows, {indexes} indexes"
    )


@app.command()
def info(home_dir: HomeOption = None, engine: EngineOption = None) -> None:
    """Show the data folder, the engine, and the rows of every warehouse table."""
    data, warehouse = _open(home_dir, engine)
    table = Table(title=f"Massalia {__version__} — {data.root} ({warehouse.name})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    with warehouse:
        for name in warehouse.list_tables():
            table.add_row(name, f"{warehouse.row_count(name):,}")
    console.print(table)


@app.command()
def generate(
    patients: Annotated[int, typer.Option("--patients", "-n", min=1, help="Number of patients.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output folder (default MASSALIA_HOME/sources).")] = None,
    sites: Annotated[list[str] | None, typer.Option("--site", help="Only these sites (repeatable).")] = None,
    start_index: Annotated[int, typer.Option(help="First patient index (to add a new batch).")] = 0,
    dirty_rate: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of rows with injected defects.")] = 0.0,
    documents: Annotated[bool, typer.Option(help="Also write French clinical documents.")] = True,
    home_dir: HomeOption = None,
) -> None:
    """Generate synthetic multi-site oncology extracts with their ground truth."""
    from massalia.health.synth import generate as generate_sites

    target = out or home(home_dir).ensure().sources
    with _progress() as progress:
        summary = generate_sites(
            target,
            patients,
            seed=seed,
            sites=sites,
            start_index=start_index,
            dirty_rate=dirty_rate,
            with_documents=documents,
            progress=progress,
        )
    console.print(summary)


@app.command()
def load(
    sources: Annotated[
        Path | None, typer.Argument(help="Folder of site extracts (default MASSALIA_HOME/sources).")
    ] = None,
    sites: Annotated[list[str] | None, typer.Option("--site", help="Only these sites (repeatable).")] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Run the ETL: site extracts → OMOP (atomic, incremental, with lineage and rejects)."""
    from massalia.health.etl import run_etl

    folder = sources or home(home_dir).sources
    if not folder.is_dir():
        raise _fail(f"no source folder at {folder}: run `massalia generate` or pass a folder")
    data, warehouse = _open(home_dir, engine, create=True)
    with warehouse, _progress() as progress:
        report = run_etl(warehouse, folder, sites=sites, metadata_url=data.metadata_url, progress=progress)
    console.print(report)


@app.command()
def quality(
    out: Annotated[Path | None, typer.Option(help="Report folder (default MASSALIA_HOME/reports).")] = None,
    checks: Annotated[list[str] | None, typer.Option("--check", help="Only these check names (repeatable).")] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Run the data-quality checks (OHDSI DQD + oncology); write quality.json and quality.html."""
    from massalia.health.quality import run_quality

    data, warehouse = _open(home_dir, engine)
    target = out or data.reports
    with warehouse, _progress() as progress:
        report = run_quality(warehouse, out_dir=target, checks=checks, progress=progress)
    _print_quality(report)
    console.print(f"reports: {target / 'quality.json'}  {target / 'quality.html'}")


def _print_quality(report: object) -> None:
    """Print a quality report's summary: statuses per Kahn category, then the failed fatal checks."""
    summary = report.summary()  # type: ignore[attr-defined]
    statuses = ("passed", "failed", "not_applicable", "error")
    table = Table(title=f"Data quality: {summary['total']:,} checks, pass rate {summary['pass_rate']}%")
    table.add_column("category")
    for status in statuses:
        table.add_column(status.replace("_", " "), justify="right")
    for category, counts in summary["category"].items():
        table.add_row(category, *(f"{counts.get(s, 0):,}" for s in statuses))
    table.add_row("[bold]all[/]", *(f"[bold]{summary['status'].get(s, 0):,}[/]" for s in statuses))
    console.print(table)
    failed = [r for r in report.results if r.status in ("failed", "error") and r.severity == "fatal"]  # type: ignore[attr-defined]
    for result in failed[:15]:
        where = ".".join(part for part in (result.table, result.field) if part)
        console.print(
            f"  [red]{result.status}[/] {result.check_name} {where}: "
            f"{result.num_violated_rows:,} of {result.num_denominator_rows:,} rows ({result.percent_violated}%)"
        )
    if len(failed) > 15:
        console.print(f"  … and {len(failed) - 15} more fatal checks failed (see the report)")


@app.command()
def demo(
    patients: Annotated[int, typer.Option("--patients", "-n", min=10, help="Number of patients.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    dirty_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of source rows with injected defects, to show the rejects.")
    ] = 0.001,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """The main job: generate a multi-site dataset, run the ETL into OMOP, check quality, summarise."""
    from massalia.health.etl import run_etl
    from massalia.health.quality import run_quality
    from massalia.health.synth import generate as generate_sites

    data, warehouse = _open(home_dir, engine, create=True)
    timings: dict[str, float] = {}
    with warehouse, _progress() as progress:
        start = time.perf_counter()
        generate_sites(data.sources, patients, seed=seed, dirty_rate=dirty_rate, progress=progress)
        timings["generate"] = time.perf_counter() - start
        start = time.perf_counter()
        etl = run_etl(warehouse, data.sources, metadata_url=data.metadata_url, progress=progress)
        timings["etl"] = time.perf_counter() - start
        start = time.perf_counter()
        report = run_quality(warehouse, out_dir=data.reports, progress=progress)
        timings["quality"] = time.perf_counter() - start
        counts = {name: warehouse.row_count(name) for name in warehouse.list_tables()}
    console.print(etl)
    _print_quality(report)
    table = Table(title=f"Warehouse {data.root} ({warehouse.name})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        if rows:
            table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(
        "timings: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
        + f"\nquality report: {data.reports / 'quality.html'}"
    )


@omop_app.command("ddl")
def omop_ddl(
    dialect: Annotated[str, typer.Option(help="SQL dialect: duckdb, postgres, spark…")] = "duckdb",
    primary_keys: Annotated[bool, typer.Option(help="Include PRIMARY KEY constraints.")] = True,
) -> None:
    """Print the OMOP CDM v5.4 DDL, generated from the official specification."""
    from massalia.health.omop.schema import cdm_ddl

    typer.echo(cdm_ddl(dialect, primary_keys=primary_keys))


@omop_app.command("load-athena")
def omop_load_athena(
    folder: Annotated[Path, typer.Argument(help="Unzipped Athena download (CONCEPT.csv, …, tab-separated).")],
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Load a full Athena vocabulary download (replaces the vocabulary tables atomically)."""
    from massalia.health.omop.athena import load_athena
    from massalia.health.omop.omop_csv import OmopCsvError

    if not folder.is_dir():
        raise _fail(f"{folder} is not a folder")
    _, warehouse = _open(home_dir, engine)
    with warehouse, _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def advance(table: str, rows: int) -> None:
            # load_athena reports (table, rows so far) per batch; the bar shows one task per table.
            if table not in tasks:
                tasks[table] = progress.add_task(f"loading {table}", total=None)
            progress.update(tasks[table], completed=rows)

        try:
            counts = load_athena(warehouse, folder, progress=advance)
        except OmopCsvError as error:
            raise _fail(escape(str(error))) from None
    console.print(json.dumps(counts, indent=1))


@omop_app.command("load-csv")
def omop_load_csv(
    source: Annotated[Path, typer.Argument(help="OMOP CDM export: a folder or .zip of CSV files (e.g. Eunomia).")],
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Load a foreign OMOP CDM v5.4 CSV export into the warehouse (atomic)."""
    from massalia.health.omop.omop_csv import load_omop_csv

    if not source.exists():
        raise _fail(f"{source} does not exist")
    _, warehouse = _open(home_dir, engine)
    with warehouse:
        counts = load_omop_csv(warehouse, source)
    console.print(json.dumps(counts, indent=1))


@etl_app.command("runs")
def etl_runs(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    home_dir: HomeOption = None,
) -> None:
    """List recent ETL runs with their status, inputs, rows added and rejects."""
    from massalia.health.etl import list_runs

    data = _initialized_home(home_dir)
    table = Table(title=f"ETL runs — {data.root}")
    for column in ("run", "started", "status", "engine", "files", "rows added", "rejected"):
        table.add_column(column, justify="right" if column in ("files", "rows added", "rejected") else "left",
                         no_wrap=column in ("run", "started"))
    for run in list_runs(data.metadata_url, limit=limit):
        rejected = sum(int(r.get("rows", 0)) for r in run.rejects)
        table.add_row(
            run.run_id, f"{run.started_at:%Y-%m-%d %H:%M:%S}", run.status, run.engine, str(len(run.inputs)),
            f"{sum(run.outputs.values()):,}", f"{rejected:,}",
        )
    console.print(table)


@etl_app.command("show")
def etl_show(
    run_id: Annotated[str, typer.Argument(help="Run identifier (see `massalia etl runs`).")],
    home_dir: HomeOption = None,
) -> None:
    """Show one run's lineage: inputs with their SHA-256, rows read, outputs and rejects per reason."""
    from massalia.health.etl import get_run

    data = _initialized_home(home_dir)
    try:
        run = get_run(run_id, data.metadata_url)
    except KeyError:
        raise _fail(f"no ETL run {run_id!r}") from None
    console.print(f"[bold]{run.run_id}[/] {run.status} on {run.engine}, code {run.code_version}, "
                  f"{run.started_at:%Y-%m-%d %H:%M:%S} → {run.ended_at or '…'}")
    if run.message:
        console.print(run.message)
    inputs = Table(title="inputs")
    for column in ("file", "sha256", "rows"):
        inputs.add_column(column)
    for item in run.inputs:
        inputs.add_row(str(item.get("path")), str(item.get("sha256", ""))[:16], f"{item.get('rows_read', '')}")
    console.print(inputs)
    outputs = Table(title="outputs")
    outputs.add_column("table")
    outputs.add_column("rows added", justify="right")
    for name, rows in sorted(run.outputs.items()):
        outputs.add_row(name, f"{rows:,}")
    console.print(outputs)
    for reject in run.rejects:
        console.print(f"rejected: {reject}")


@etl_app.command("rejects")
def etl_rejects(
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason (e.g. invalid_date).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Show rejected rows, each naming its file, line, field, value and reason."""
    from massalia.health.etl import format_reject, show_rejects

    _, warehouse = _open(home_dir, engine)
    with warehouse:
        if not warehouse.table_exists("etl_reject"):
            console.print("no rejected rows (no ETL run yet)")
            return
        rows = show_rejects(warehouse, run_id=run_id, site=site, reason=reason, limit=limit)
    for row in rows:
        console.print(f"{row['site']}: {format_reject(row)}", highlight=False, markup=False)
    console.print(f"{len(rows)} row(s) shown")


@audit_app.command("verify")
def audit_verify(home_dir: HomeOption = None) -> None:
    """Recompute the whole audit log and check every stored hash and signed tree head (exit 1 if not intact)."""
    from massalia.ledger import TransparencyLog

    folder = _initialized_home(home_dir).ledger
    if not folder.is_dir():
        # An initialized home writes its log on the first audited action: nothing to verify yet is a success.
        console.print(f"the audit log is empty (no audited action yet): nothing to verify at {folder}")
        return
    with TransparencyLog(folder, readonly=True) as log:
        report = log.verify()
    console.print(report.summary())
    if not report.ok:
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
