"""``massalia nlp …``: French clinical NLP into OMOP NOTE_NLP, and its evaluation against the ground truth.

Both commands go through the guarded services of :mod:`massalia.health.nlp.service` as the caller
(``MASSALIA_TOKEN`` holder, else the home's local operator): ``run`` needs ``health.nlp.run`` (admin, data
engineer; audited), ``evaluate`` needs ``health.nlp.evaluate`` and prints aggregate scores only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from massalia.cli.common import (
    EngineOption,
    HomeOption,
    JsonOption,
    console,
    existing_home,
    fail,
    governed,
    initialized_warehouse,
    progress_bar,
)
from massalia.engine.base import UnsupportedOperation
from massalia.health.nlp import service as nlp_service

nlp_app = typer.Typer(help="Clinical NLP: findings of the notes into NOTE_NLP, and their evaluation.")


@nlp_app.command("run")
def nlp_run(
    workers: Annotated[
        int, typer.Option(min=1, max=nlp_service.MAX_WORKERS, help="Worker processes (one pipeline each).")
    ] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N notes (by note_id).")] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Run the pipeline over the notes; its findings replace its earlier NOTE_NLP rows in one transaction."""
    data = existing_home(home_dir)
    try:
        with governed(data) as caller, initialized_warehouse(data, engine) as warehouse, progress_bar() as bar:
            task = bar.add_task("notes", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = nlp_service.run(caller, warehouse, workers=workers, limit=limit, progress=advance)
    except UnsupportedOperation as error:
        fail(str(error))
    console.print(
        f"[green]done[/]: {report.notes:,} notes, {report.findings:,} findings written to note_nlp "
        f"({report.replaced:,} earlier rows replaced) in {report.seconds:.1f} s "
        f"({report.notes_per_second:.0f} notes/s), {report.nlp_system}"
    )
    console.print(", ".join(f"{label} {n:,}" for label, n in sorted(report.by_label.items())))


@nlp_app.command("evaluate")
def nlp_evaluate(
    truth: Annotated[
        Path | None,
        typer.Option(help="Generated sources folder (with truth/annotations_part*.jsonl); default: the home's."),
    ] = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Precision, recall and F1 of the NOTE_NLP findings per entity type and qualifier, against the ground truth."""
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        evaluation = nlp_service.evaluate_warehouse(caller, warehouse, truth or data.sources)
    rows = evaluation.rows()
    if as_json:
        console.print_json(json.dumps({"notes": evaluation.notes, "scores": rows}))
        return
    table = Table(title=f"NLP evaluation over {evaluation.notes:,} notes")
    for column in ("kind", "name", "support", "precision", "recall", "f1"):
        table.add_column(column, justify="right" if column not in ("kind", "name") else "left")
    for row in rows:
        table.add_row(
            row["kind"], row["name"], f"{row['support']:,}", f"{row['precision']:.3f}", f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
        )  # fmt: skip
    console.print(table)
