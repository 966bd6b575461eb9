"""``massalia omop …``: the OMOP CDM v5.4 schema and vocabularies (DDL, Athena vocabulary, OMOP CSV exports)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from massalia.cli.common import EngineOption, HomeOption, console, governed, progress_bar
from massalia.config import home
from massalia.health.etl import service as etl_service
from massalia.health.omop.schema import cdm_ddl
from massalia.warehouse import open_warehouse

omop_app = typer.Typer(help="OMOP CDM schema and vocabularies: DDL, Athena vocabulary, OMOP CSV exports.")


@omop_app.command("ddl")
def omop_ddl(
    dialect: Annotated[str, typer.Option(help="SQL dialect: duckdb, postgres, spark…")] = "duckdb",
    primary_keys: Annotated[bool, typer.Option(help="Include PRIMARY KEY constraints.")] = True,
) -> None:
    """Print the OMOP CDM v5.4 DDL, generated from the official specification."""
    typer.echo(cdm_ddl(dialect, primary_keys=primary_keys))


@omop_app.command("load-athena")
def omop_load_athena(
    folder: Annotated[Path, typer.Argument(help="Unzipped Athena download (CONCEPT.csv, …, tab-separated).")],
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Load a full Athena vocabulary download (replaces the vocabulary tables atomically)."""
    data = home(home_dir).ensure()
    with governed(data) as caller, open_warehouse(data, engine) as warehouse, progress_bar() as progress:
        counts = etl_service.load_athena_vocabulary(caller, warehouse, folder, progress=progress)
    console.print(json.dumps(counts, indent=1))


@omop_app.command("load-csv")
def omop_load_csv(
    source: Annotated[Path, typer.Argument(help="OMOP CDM export: a folder or .zip of CSV files (e.g. Eunomia).")],
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Load a foreign OMOP CDM v5.4 CSV export into the warehouse (atomic)."""
    data = home(home_dir).ensure()
    with governed(data) as caller, open_warehouse(data, engine) as warehouse:
        counts = etl_service.load_cdm_csv(caller, warehouse, source)
    console.print(json.dumps(counts, indent=1))
