"""Helpers of the command-line tests: run a command as a caller and get its exit status and output."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from massalia.cli import app
from massalia.engine.duckdb import DuckDBEngine

runner = CliRunner()


def run(home: Path, *args: str, token: str | None = None, stdin: str | None = None) -> tuple[int, str]:
    env = {"MASSALIA_TOKEN": token or "", "COLUMNS": "200", "MASSALIA_HOME": str(home)}
    result = runner.invoke(app, list(args), env=env, input=stdin)
    return result.exit_code, result.output


def site_person(home: Path, site: str) -> int:
    with DuckDBEngine(home / "warehouse.duckdb", read_only=True) as engine:
        rows = engine.query(
            "SELECT MIN(p.person_id) AS person_id FROM person p JOIN care_site cs ON cs.care_site_id = p.care_site_id"
            f" WHERE cs.care_site_source_value = '{site}'"
        ).to_pylist()
    return int(rows[0]["person_id"])
