"""``massalia etl …``: ETL runs (history, lineage) and rejected rows, through the ETL's guarded services."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from massalia.cli.common import (
    EngineOption,
    HomeOption,
    console,
    existing_home,
    governed,
    initialized_warehouse,
    literal,
    record_text,
)
from massalia.health.etl import format_reject
from massalia.health.etl import service as etl_service

etl_app = typer.Typer(help="ETL runs: history, lineage and rejected rows.")


@etl_app.command("runs")
def etl_runs(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    home_dir: HomeOption = None,
) -> None:
    """List recent ETL runs with their status, inputs, rows added and rejects."""
    data = existing_home(home_dir)
    with governed(data) as caller:
        runs = etl_service.etl_runs(caller, data.metadata_url, limit=limit)
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
    data = existing_home(home_dir)
    with governed(data) as caller:
        run = etl_service.etl_run(caller, data.metadata_url, run_id)
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
        console.print(literal(f"rejected: {record_text(reject)}"), highlight=False)


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

    Needs the etl.rejects right (admin, data_engineer); every call is written to the audit trail.
    """
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        rows = etl_service.rejected_rows(caller, warehouse, run_id=run_id, site=site, reason=reason, limit=limit)
    for row in rows:
        console.print(literal(f"{row['site']}: {format_reject(row)}"), highlight=False)
    console.print(f"{len(rows)} row(s) shown")
