"""``massalia deid``: de-identification of clinical documents, measured and applied.

- ``massalia deid evaluate`` generates documents in memory (nothing is read from the warehouse, nothing
  written) and prints recall and precision per identifier type against the planted ground truth;
- ``massalia deid notes`` prints a person's notes de-identified, for a member of an approved
  pseudonymized project (``health.document.deidentified``, audited with the purpose before anything is read).
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

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
from massalia.health.documents.corpus import MAX_PATIENTS, generated_notes
from massalia.health.documents.deid_evaluation import evaluate_deidentification
from massalia.health.documents.notes import deidentified_notes
from massalia.health.records import json_value

deid_app = typer.Typer(help="De-identification of clinical documents: its measured recall and precision, its use.")


@deid_app.command("evaluate")
def evaluate(
    patients: Annotated[
        int, typer.Option(min=1, max=MAX_PATIENTS, help="Patients whose generated documents are scored.")
    ] = 2000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the generator.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Score the de-identification on generated documents: recall and precision per identifier type."""
    started = time.perf_counter()
    result = evaluate_deidentification(generated_notes(patients, seed=seed))
    seconds = time.perf_counter() - started
    rows = {
        kind: {"planted": s.planted, "recall": round(s.recall, 4), "found": s.found, "precision": round(s.precision, 4)}
        for kind, s in result.scores.items()
    }
    summary = {
        "documents": result.documents,
        "seconds": round(seconds, 2),
        "types": rows,
        "leaks": result.leaks,
        "uncued_names": {"planted": result.uncued.planted, "recall": round(result.uncued.recall, 4),
                         "leaks": result.uncued_leaks},
    }  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    table = Table(title=f"de-identification of {result.documents} generated documents ({seconds:.1f} s)",
                  title_justify="left")  # fmt: skip
    for column in ("type", "planted", "recall", "found", "precision"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for kind, row in rows.items():
        table.add_row(kind, str(row["planted"]), f"{row['recall']:.4f}", str(row["found"]), f"{row['precision']:.4f}")
    console.print(table)
    console.print(
        f"identifiers still present as written: {result.leaks}; names planted with no cue: "
        f"{result.uncued.planted} (recall {result.uncued.recall:.4f}, {result.uncued_leaks} left)",
        highlight=False,
        markup=False,
    )


@deid_app.command("notes")
def notes(
    person: Annotated[str, typer.Argument(help="The person's project pseudonym.")],
    project: Annotated[int, typer.Option("--project", min=1, help="The approved pseudonymized project.")],
    purpose: Annotated[str, typer.Option(help="Why the documents are read (written to the audit log).")],
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Print a person's notes de-identified (names, numbers replaced; dates shifted), audited first."""
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        found = deidentified_notes(caller, warehouse, person.strip(), project_id=project, purpose=purpose)
    items = [
        {"record": n.record, "note_date": json_value(n.note_date), "title": n.title, "text": n.text,
         "withheld": n.withheld, "identifiers": n.identifiers, **n.concepts}
        for n in found.notes
    ]  # fmt: skip
    if as_json:
        out = {"person": found.person, "audit_index": found.grant.audit_index, "notes": items}
        typer.echo(json.dumps(out, indent=1, ensure_ascii=False))
        return
    console.print(f"person {found.person}: {len(items)} note(s) de-identified; audit entry "
                  f"{found.grant.audit_index}", highlight=False, markup=False)  # fmt: skip
    for item in items:
        console.rule(literal(f"{item['record']}. {item['note_date']} {item['title'] or ''}"))
        console.print(literal("(withheld: too long)" if item["withheld"] else item["text"] or ""))
