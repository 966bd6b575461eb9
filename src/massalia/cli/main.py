"""The ``massalia`` command: the root app, its command groups, and the warehouse's top-level commands.

Every command that reads or writes the home resolves its caller first (:func:`massalia.cli.common.governed`:
the ``MASSALIA_TOKEN`` holder, else the local operator named by the process's OS account) and calls a
guarded service, which checks ``rights.yaml`` and audits; an invalid token stops the command (exit 4).
``version`` and ``omop ddl`` read nothing and need no identity; ``serve`` authenticates each request.
Each command group lives in its own module of this package; :func:`create_app` assembles them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from massalia import __version__
from massalia.cli import demo_portal
from massalia.cli.audit import audit_app
from massalia.cli.common import (
    EXIT_INVALID,
    EngineOption,
    HomeOption,
    console,
    error_console,
    existing_home,
    governed,
    initialized_warehouse,
    literal,
    progress_bar,
)
from massalia.cli.domains import mount_domain_groups
from massalia.cli.privacy import privacy_app
from massalia.cli.projects import project_app
from massalia.cli.requests import request_app
from massalia.cli.serve import serve as serve_command
from massalia.cli.serve import serve_app
from massalia.cli.tokens import token_app
from massalia.cli.users import user_app
from massalia.cli.verify import verify
from massalia.config import Home, HomeNotInitializedError, home
from massalia.engine import Engine
from massalia.health.etl import service as etl_service
from massalia.health.quality.service import run_quality_checks
from massalia.opendata.catalog import Catalog
from massalia.opendata.demo import build_demo as build_opendata_demo
from massalia.plugins import configured_domains, load_domains
from massalia.quality.report import QualityReport
from massalia.warehouse import open_warehouse

HELP = (
    "Massalia: a self-hostable, secure data platform. The oncology warehouse runs on OMOP CDM v5.4, "
    "on DuckDB by default (no server), PostgreSQL or Spark. Data lives under MASSALIA_HOME "
    "(default ./massalia-data)."
)


class _Commands(TyperGroup):
    """The root group: a home that was never initialized ends any command with one clear line.

    Caught here, once, so that every sub-command (a domain's included) refuses such a home the same
    way, with exit status 1 and no traceback or SQL text.
    """

    def invoke(self, ctx: Any) -> Any:  # typer's own Context base is private (typer._click)
        try:
            return super().invoke(ctx)
        except HomeNotInitializedError as error:
            error_console.print("[bold red]error:[/] ", literal(str(error)), sep="")
            raise typer.Exit(code=EXIT_INVALID) from None


def _creating(home_dir: Path | None, engine: str | None) -> tuple[Home, Engine]:
    """The home and warehouse of a command that makes a home (``init``, ``load``, ``demo``).

    Called once the caller is resolved; the home is marked initialized by :func:`_initialized` only
    when the command succeeded, so a refused or failed command leaves no "initialized" home behind.
    """
    data = home(home_dir).ensure()
    return data, open_warehouse(data, engine, create=True)


def _initialized(data: Home, warehouse: Engine, *, again: bool = False) -> None:
    """Record ``data`` as an initialized home on ``warehouse``'s engine (``init`` records it again)."""
    if again or not data.marker.is_file():
        data.mark_initialized(warehouse.name)


def version() -> None:
    """Print Massalia's version."""
    console.print(f"massalia {__version__}")


def init(home_dir: HomeOption = None, engine: EngineOption = None) -> None:
    """Create MASSALIA_HOME, the empty OMOP CDM v5.4 tables and the demo vocabulary."""
    data = home(home_dir).ensure()
    with governed(data) as caller:  # the caller first: a refused init creates no warehouse
        _, warehouse = _creating(home_dir, engine)
        with warehouse:
            created, vocabulary, indexes = etl_service.create_warehouse(caller, warehouse)
            _initialized(data, warehouse, again=True)
    console.print(
        f"[green]initialised[/] {data.root}: {created} CDM tables created, "
        f"{vocabulary:,} vocabulary rows, {indexes} indexes"
    )


def info(home_dir: HomeOption = None, engine: EngineOption = None) -> None:
    """Show the data folder, the engine, and the rows of every warehouse table."""
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        tables = etl_service.warehouse_tables(caller, warehouse)
        table = Table(title=f"Massalia {__version__} — {data.root} ({warehouse.name})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in tables:
        table.add_row(name, f"{rows:,}")
    console.print(table)


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
    with governed(data) as caller, progress_bar() as progress:
        summary = etl_service.generate_sources(
            caller, target, patients, seed=seed, sites=sites, start_index=start_index,
            dirty_rate=dirty_rate, with_documents=documents, progress=progress,
        )  # fmt: skip
    console.print(summary)


def load(
    sources: Annotated[
        Path | None, typer.Argument(help="Folder of site extracts (default MASSALIA_HOME/sources).")
    ] = None,
    sites: Annotated[list[str] | None, typer.Option("--site", help="Only these sites (repeatable).")] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Run the ETL: site extracts → OMOP (atomic, incremental, with lineage and rejects)."""
    data = home(home_dir).ensure()
    folder = sources or data.sources
    with governed(data) as caller:  # the caller first; the service checks the folder next
        _, warehouse = _creating(home_dir, engine)
        with warehouse, progress_bar() as progress:
            report = etl_service.load_sources(
                caller, warehouse, folder, sites=sites, metadata_url=data.metadata_url, progress=progress
            )
            _initialized(data, warehouse)
    console.print(report)


def quality(
    out: Annotated[Path | None, typer.Option(help="Report folder (default MASSALIA_HOME/reports).")] = None,
    checks: Annotated[list[str] | None, typer.Option("--check", help="Only these check names (repeatable).")] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Run the data-quality checks (OHDSI DQD + oncology); write quality.json and quality.html."""
    data = existing_home(home_dir)
    target = out or data.reports
    with (
        governed(data) as caller,
        initialized_warehouse(data, engine) as warehouse,
        progress_bar() as progress,
    ):
        report = run_quality_checks(caller, warehouse, out_dir=target, checks=checks, progress=progress)
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


def demo(
    patients: Annotated[int, typer.Option("--patients", "-n", min=10, help="Number of patients.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    dirty_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of source rows with injected defects, to show the rejects.")
    ] = 0.001,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port the portal is served on (127.0.0.1).")] = 8000,
    serve: Annotated[bool, typer.Option(help="End by serving the portal (never under CI=true).")] = True,
) -> None:
    """The main job: generate a multi-site dataset, run the ETL into OMOP, check quality, summarise, serve the portal.

    The research mart is built and demo accounts made (printed, and in MASSALIA_HOME/demo-accounts.txt), then the
    portal is served on 127.0.0.1 until interrupted, unless --no-serve or CI=true.
    """
    data = home(home_dir).ensure()
    timings: dict[str, float] = {}
    with governed(data) as caller:  # the caller first: a refused demo creates no warehouse
        _, warehouse = _creating(home_dir, engine)
        with warehouse, progress_bar() as progress:
            start = time.perf_counter()
            etl_service.generate_sources(
                caller, data.sources, patients, seed=seed, dirty_rate=dirty_rate, progress=progress
            )
            timings["generate"] = time.perf_counter() - start
            start = time.perf_counter()
            etl = etl_service.load_sources(
                caller, warehouse, data.sources, metadata_url=data.metadata_url, progress=progress
            )
            timings["etl"] = time.perf_counter() - start
            start = time.perf_counter()
            report = run_quality_checks(caller, warehouse, out_dir=data.reports, progress=progress)
            timings["quality"] = time.perf_counter() - start
            counts = dict(etl_service.warehouse_tables(caller, warehouse))
            start = time.perf_counter()
            accounts = demo_portal.prepare_portal(caller, warehouse, data.root)
            timings["mart"] = time.perf_counter() - start
            start = time.perf_counter()
            # The regional open-data catalog too (certified files, the portal's catalog pages), scaled with the
            # demo so a small test demo stays quick: 200 datasets at the default 10,000 patients.
            opendata = build_opendata_demo(
                caller, Catalog.for_home(data), warehouse, datasets=min(200, max(5, patients // 50))
            )
            timings["opendata"] = time.perf_counter() - start
            _initialized(data, warehouse)
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
        f"open data: {opendata.datasets} dataset(s) published, {opendata.files} file(s) certified "
        "(massalia opendata --help, massalia verify)"
    )
    console.print("timings: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items()))
    for line in next_steps(data.root, data.reports / "quality.html"):
        console.print(literal(line), highlight=False, soft_wrap=True)  # commands stay whole, to copy
    demo_portal.print_sign_in(accounts, data.root, f"http://127.0.0.1:{port}/")
    if demo_portal.should_serve(serve):
        serve_command(port=port, home_dir=data.root)


def next_steps(root: Path, report: Path) -> list[str]:
    """What a new user can do once the demo has run: read the report, count a cohort, build the mart, serve.

    Examples
    --------
    >>> next_steps(Path("h"), Path("h/reports/quality.html"))[1]
    '  the quality report:  open h/reports/quality.html in a browser'
    """
    where = f" --home {root}"
    return [
        "next steps:",
        f"  the quality report:  open {report} in a browser",
        f"  a cohort count:      massalia cohort count benchmarks/cohorts/q1.json{where}  (docs/cohorts.md)",
        f"  the research mart:   massalia mart count --by stage_group{where}  (built by the demo)",
        f"  the HTTP API:        massalia serve{where}  (docs/api.md; accounts: massalia user add, docs/governance.md)",
        "  every command:       massalia --help and docs/cli.md",
    ]


GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("audit", audit_app),
    ("serve", serve_app),
    ("privacy", privacy_app),
    ("user", user_app),
    ("token", token_app),
    ("project", project_app),
    ("request", request_app),
)
"""The core's command groups under the root, by name (the domains' groups are mounted by :func:`create_app`)."""


def create_app() -> typer.Typer:
    """The ``massalia`` root command with its top-level commands and every command group.

    Examples
    --------
    >>> sorted(typer.main.get_command(create_app()).commands)[:3]
    ['audit', 'cohort', 'demo']
    """
    root = typer.Typer(
        cls=_Commands, name="massalia", help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode="rich"
    )
    for command in (version, init, info, generate, load, quality, demo, verify):
        root.command()(command)
    for name, group in GROUPS:
        root.add_typer(group, name=name)
    # Last, so that a domain's group clashing with any core command is refused (health: omop, etl, cohort...).
    mount_domain_groups(root, load_domains(configured_domains()))
    return root


app = create_app()
"""The console-script entry point (``massalia = "massalia.cli:app"``)."""
