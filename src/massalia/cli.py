"""The ``massalia`` command: a thin layer over the guarded service functions (same as the Python API).

Every command that reads or writes the home resolves its caller first (:func:`massalia.cli_governance.caller`:
the ``MASSALIA_TOKEN`` holder, else the local operator named by the process's OS account) and calls a
guarded service, which checks ``rights.yaml`` and audits; an invalid token stops the command (exit 4).
``version`` and ``omop ddl`` read nothing and need no identity; ``serve`` authenticates each request.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from massalia import __version__
from massalia.cli_domains import mount_domain_groups
from massalia.cli_governance import governed, literal
from massalia.cli_governance import register as register_governance
from massalia.cli_privacy import privacy_app
from massalia.cli_serve import serve_app
from massalia.config import Home, HomeNotInitializedError, home
from massalia.engine import Engine
from massalia.health.etl import service as etl_service
from massalia.health.quality.service import run_quality_checks
from massalia.plugins import configured_domains, load_domains
from massalia.quality.report import QualityReport
from massalia.warehouse import open_warehouse

console = Console()


class _Commands(TyperGroup):
    """The command group: a home that was never initialized ends any command with one clear line.

    Caught here, once, so that every sub-command (marts, cohorts, patients…) refuses such a home
    the same way, with exit status 1 and no traceback or SQL text.
    """

    def invoke(self, ctx: Any) -> Any:  # typer's own Context base is private (typer._click)
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
app.add_typer(serve_app, name="serve")
app.add_typer(privacy_app, name="privacy")
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
    return data, open_warehouse(data, engine, create=create)


def _mark_initialized(data: Home, warehouse: Engine, *, again: bool = False) -> None:
    """Record the home as initialized on ``warehouse``'s engine, once its creating command succeeded."""
    if again or not data.marker.is_file():  # `init` records its engine again; `load`/`demo` only the first time
        data.mark_initialized(warehouse.name)


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
    data = home(home_dir).ensure()
    with governed(data) as (gov, principal):  # the caller first: a refused init creates no warehouse
        _, warehouse = _open(home_dir, engine, create=True)
        with warehouse:
            created, vocabulary, indexes = etl_service.create_warehouse(gov, principal, warehouse)
            _mark_initialized(data, warehouse, again=True)
    console.print(
        f"[green]initialised[/] {data.root}: {created} CDM tables created, "
        f"{vocabulary:,} vocabulary rows, {indexes} indexes"
    )


@app.command()
def info(home_dir: HomeOption = None, engine: EngineOption = None) -> None:
    """Show the data folder, the engine, and the rows of every warehouse table."""
    data = _initialized_home(home_dir).ensure()
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse:
        tables = etl_service.warehouse_tables(gov, principal, warehouse)
        table = Table(title=f"Massalia {__version__} — {data.root} ({warehouse.name})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in tables:
        table.add_row(name, f"{rows:,}")
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
    data = home(home_dir).ensure()
    target = out or data.sources
    with governed(data) as (gov, principal), _progress() as progress:
        summary = etl_service.generate_sources(
            gov, principal, target, patients, seed=seed, sites=sites, start_index=start_index,
            dirty_rate=dirty_rate, with_documents=documents, progress=progress,
        )  # fmt: skip
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
    data = home(home_dir)
    folder = sources or data.sources
    with governed(data.ensure()) as (gov, principal):  # the caller first; the service checks the folder next
        _, warehouse = _open(home_dir, engine, create=True)
        with warehouse, _progress() as progress:
            report = etl_service.load_sources(
                gov, principal, warehouse, folder, sites=sites, metadata_url=data.metadata_url, progress=progress
            )
            _mark_initialized(data, warehouse)
    console.print(report)


@app.command()
def quality(
    out: Annotated[Path | None, typer.Option(help="Report folder (default MASSALIA_HOME/reports).")] = None,
    checks: Annotated[list[str] | None, typer.Option("--check", help="Only these check names (repeatable).")] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Run the data-quality checks (OHDSI DQD + oncology); write quality.json and quality.html."""
    data = _initialized_home(home_dir).ensure()
    target = out or data.reports
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse, _progress() as progress:
        report = run_quality_checks(gov, principal, warehouse, out_dir=target, checks=checks, progress=progress)
    _print_quality(report)
    console.print(f"reports: {target / 'quality.json'}  {target / 'quality.html'}")


def _print_quality(report: QualityReport) -> None:
    """Print a quality report's summary: statuses per Kahn category, then the failed fatal checks."""
    summary = report.summary()
    statuses = ("passed", "failed", "not_applicable", "error")
    table = Table(title=f"Data quality: {summary['total']:,} checks, pass rate {summary['pass_rate']}%")
    table.add_column("category")
    for status in statuses:
        table.add_column(status.replace("_", " "), justify="right")
    for category, counts in summary["category"].items():
        table.add_row(category, *(f"{counts.get(s, 0):,}" for s in statuses))
    table.add_row("[bold]all[/]", *(f"[bold]{summary['status'].get(s, 0):,}[/]" for s in statuses))
    console.print(table)
    failed = [r for r in report.results if r.status in ("failed", "error") and r.severity == "fatal"]
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
    data = home(home_dir).ensure()
    timings: dict[str, float] = {}
    with governed(data) as (gov, principal):  # the caller first: a refused demo creates no warehouse
        _, warehouse = _open(home_dir, engine, create=True)
        with warehouse, _progress() as progress:
            start = time.perf_counter()
            etl_service.generate_sources(
                gov, principal, data.sources, patients, seed=seed, dirty_rate=dirty_rate, progress=progress
            )
            timings["generate"] = time.perf_counter() - start
            start = time.perf_counter()
            etl = etl_service.load_sources(
                gov, principal, warehouse, data.sources, metadata_url=data.metadata_url, progress=progress
            )
            timings["etl"] = time.perf_counter() - start
            start = time.perf_counter()
            report = run_quality_checks(gov, principal, warehouse, out_dir=data.reports, progress=progress)
            timings["quality"] = time.perf_counter() - start
            counts = dict(etl_service.warehouse_tables(gov, principal, warehouse))
            _mark_initialized(data, warehouse)
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
        "timings: "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
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
    data = _initialized_home(home_dir)
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse, _progress() as progress:
        counts = etl_service.load_athena_vocabulary(gov, principal, warehouse, folder, progress=progress)
    console.print(json.dumps(counts, indent=1))


@omop_app.command("load-csv")
def omop_load_csv(
    source: Annotated[Path, typer.Argument(help="OMOP CDM export: a folder or .zip of CSV files (e.g. Eunomia).")],
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Load a foreign OMOP CDM v5.4 CSV export into the warehouse (atomic)."""
    data = _initialized_home(home_dir).ensure()
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse:
        counts = etl_service.load_cdm_csv(gov, principal, warehouse, source)
    console.print(json.dumps(counts, indent=1))


@etl_app.command("runs")
def etl_runs(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    home_dir: HomeOption = None,
) -> None:
    """List recent ETL runs with their status, inputs, rows added and rejects."""
    data = _initialized_home(home_dir)
    with governed(data) as (gov, principal):
        runs = etl_service.etl_runs(gov, principal, data.metadata_url, limit=limit)
    table = Table(title=f"ETL runs — {data.root}")
    for column in ("run", "started", "status", "engine", "files", "rows added", "rejected"):
        table.add_column(
            column,
            justify="right" if column in ("files", "rows added", "rejected") else "left",
            no_wrap=column in ("run", "started"),
        )
    for run in runs:
        rejected = sum(int(r.get("rows", 0)) for r in run.rejects)
        table.add_row(
            run.run_id,
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
            run.status,
            run.engine,
            str(len(run.inputs)),
            f"{sum(run.outputs.values()):,}",
            f"{rejected:,}",
        )
    console.print(table)


@etl_app.command("show")
def etl_show(
    run_id: Annotated[str, typer.Argument(help="Run identifier (see `massalia etl runs`).")],
    home_dir: HomeOption = None,
) -> None:
    """Show one run's lineage: inputs with their SHA-256, rows read, outputs and rejects per reason."""
    data = _initialized_home(home_dir)
    with governed(data) as (gov, principal):
        run = etl_service.etl_run(gov, principal, data.metadata_url, run_id)
    console.print(
        literal(
            f"{run.run_id} {run.status} on {run.engine}, code {run.code_version}, "
            f"{run.started_at:%Y-%m-%d %H:%M:%S} → {run.ended_at or '…'}"
        )
    )
    if run.message:
        console.print(literal(run.message))
    inputs = Table(title="inputs")
    for column in ("file", "sha256", "rows"):
        inputs.add_column(column)
    for item in run.inputs:
        inputs.add_row(
            literal(str(item.get("path"))), literal(str(item.get("sha256", ""))[:16]), f"{item.get('rows_read', '')}"
        )
    console.print(inputs)
    outputs = Table(title="outputs")
    outputs.add_column("table")
    outputs.add_column("rows added", justify="right")
    for name, rows in sorted(run.outputs.items()):
        outputs.add_row(name, f"{rows:,}")
    console.print(outputs)
    for reject in run.rejects:
        console.print(literal(f"rejected: {reject}"))


@etl_app.command("rejects")
def etl_rejects(
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason (e.g. invalid_date).")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=etl_service.MAX_REJECTS, help="At most this many rows (1 to 1000).")
    ] = 50,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Show rejected rows (raw source values: personal data), each naming its file, line, field and reason.

    Needs the health.etl.rejects right (admin, data_engineer); every call is written to the audit trail.
    """
    from massalia.health.etl import format_reject

    data = _initialized_home(home_dir).ensure()
    with governed(data) as (gov, principal), open_warehouse(data, engine) as warehouse:
        rows = etl_service.rejected_rows(
            gov, principal, warehouse, run_id=run_id, site=site, reason=reason, limit=limit, channel="cli"
        )
    for row in rows:
        console.print(literal(f"{row['site']}: {format_reject(row)}"), highlight=False)
    console.print(f"{len(rows)} row(s) shown")


@audit_app.command("verify")
def audit_verify(home_dir: HomeOption = None) -> None:
    """Recompute the whole audit log and check every stored hash and signed tree head (exit 1 if not intact)."""
    with governed(_initialized_home(home_dir)) as (gov, principal):
        if not gov.ledger_path.is_dir():
            # No audited action yet: nothing to verify is a success (tree heads are public, no check needed).
            empty = f"the audit log is empty (no audited action yet): nothing to verify at {gov.ledger_path}"
            console.print(literal(empty))
            return
        report = gov.verify_audit_log(actor=principal)
    console.print(literal(report.summary()))
    if not report.ok:
        raise typer.Exit(code=1)


# Last, so that a domain's group clashing with any core command is refused (health: cohort, mart, patient).
mount_domain_groups(app, load_domains(configured_domains()))

if __name__ == "__main__":
    app()
