"""``massalia patient view``: one patient's records from the command line (``research.patient_view``).

The caller is the holder of ``MASSALIA_TOKEN``, else the home's local operator (who is no clinician and
no project member, so is refused). The decision, with the purpose, is written to the audit log before
any record is read; a refusal exits with status 3, a bad reference with status 1.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from massalia.cli.common import (
    EngineOption,
    HomeOption,
    JsonOption,
    console,
    existing_home,
    governed,
    initialized_warehouse,
    literal,
)
from massalia.health import research
from massalia.health.records import json_table

patient_app = typer.Typer(
    help="One patient's records (audited): identified for a clinician's own site, pseudonymized under a project."
)

SHOWN_ROWS = 50
"""Rows printed per table in the Rich view (``--json`` prints them all)."""


def person_reference(value: str) -> int | str:
    """A person id when ``value`` is an integer, else a project pseudonym.

    Examples
    --------
    >>> person_reference("42"), person_reference(" p3-0123456789ABCDEF ")
    (42, 'p3-0123456789ABCDEF')
    """
    text = value.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _cell(value: Any) -> Text:
    # A value from the warehouse is never read as Rich markup, nor its control characters sent raw.
    return literal("" if value is None else value)


@patient_app.command("view")
def patient_view(
    person: Annotated[str, typer.Argument(help="person_id (clinicians), or the project pseudonym under --project.")],
    purpose: Annotated[str, typer.Option(help="Why the records are looked at (written to the audit log).")],
    project: Annotated[
        int | None, typer.Option("--project", min=1, help="Act under this approved pseudonymized project.")
    ] = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Show one patient's OMOP records, table by table (audited with the purpose before anything is read)."""
    reference = person_reference(person)
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        view = research.patient_view(caller, warehouse, reference, purpose=purpose, project_id=project)
    tables = {name: json_table(table) for name, table in view.tables.items()}
    if as_json:
        out = {"person": view.person, "pseudonymized": view.grant.pseudonymized,
               "audit_index": view.grant.audit_index, "tables": tables}  # fmt: skip
        typer.echo(json.dumps(out, indent=1))
        return
    how = "pseudonymized (dates shifted, no record ids)" if view.grant.pseudonymized else "identified"
    console.print(f"person {view.person}: {how}; audit entry {view.grant.audit_index}", highlight=False, markup=False)
    for name, table in tables.items():
        rows = table["rows"]
        # Columns empty for every row are left out of the terminal view (not of --json).
        columns = [c for c in table["columns"] if any(row[c] is not None for row in rows)] or table["columns"]
        title = f"{name}: {len(rows)} row(s)" + (f", first {SHOWN_ROWS} shown" if len(rows) > SHOWN_ROWS else "")
        shown = Table(title=title, title_justify="left")
        for column in columns:
            shown.add_column(column, overflow="fold")
        for row in rows[:SHOWN_ROWS]:
            shown.add_row(*(_cell(row[column]) for column in columns))
        console.print(shown)
