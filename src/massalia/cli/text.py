"""``massalia text index|search``: the clinical documents' full-text index from the command line.

Both commands go through the guarded service :mod:`massalia.health.documents.search` (``health.document.index``
for operators, ``health.document.search`` for everyone, with what each may see decided there). The caller is
the holder of ``MASSALIA_TOKEN``, else the home's local operator.
"""

from __future__ import annotations

import datetime as dt
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
    progress_bar,
)
from massalia.health.documents.search import DocumentSearch, NoteFilters, index_notes, search_notes
from massalia.text import MAX_PAGE_SIZE, MAX_QUERY_CHARS

text_app = typer.Typer(help="Full-text search of the clinical documents (French analysis, rights applied).")


@text_app.command("index")
def index(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Rebuild the whole index (swapped in atomically).")
    ] = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Build the notes index, or add the notes loaded since the last run (admins, data engineers; audited)."""
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse, progress_bar() as bar:
        task = bar.add_task("indexing notes", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = index_notes(caller, warehouse, data.indexes, rebuild=rebuild, progress=advance)
    how = "rebuilt" if summary.rebuilt else "updated"
    console.print(f"notes index {how}: {summary.added} note(s) added, {summary.documents} searchable", markup=False)


def _highlighted(snippet: dict[str, Any]) -> Text:
    # Note text is data, never markup: highlights are styled spans over the literal fragment.
    text = literal(snippet["fragment"].replace("\n", " "))
    for start, end in snippet["highlights"]:
        text.stylize("bold yellow", start, end)
    return text


def _show(found: DocumentSearch) -> None:
    if found.mode == "count":
        shown = "fewer than the release threshold" if found.persons is None else str(found.persons)
        console.print(f"persons with a matching note: {shown} ({found.release.get('mode', '')}; notes, ids and "
                      "text withheld)", markup=False)  # fmt: skip
        return
    console.print(f"{found.total} note(s); page {found.page} ({found.mode}; audit entry "
                  f"{found.audit_index})", markup=False)  # fmt: skip
    for name, counts in found.facets.items():
        console.print(literal(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())))
    if not found.hits:
        return
    table = Table(show_lines=True)
    columns = [c for c in found.hits[0] if c not in ("snippets", "score")]
    with_snippets = found.mode in ("identified", "pseudonymized")  # a project's snippets are de-identified
    for column in [*columns, "snippet"] if with_snippets else columns:
        table.add_column(column, overflow="fold")
    for hit in found.hits:
        cells: list[Text] = [literal("" if hit[c] is None else hit[c]) for c in columns]
        if with_snippets:
            snippets = hit.get("snippets", {})
            cells.append(_highlighted(snippets["note_text"]) if "note_text" in snippets else Text(""))
        table.add_row(*cells)
    console.print(table)
    if found.withheld:
        console.print(f"withheld: {', '.join(found.withheld)}", markup=False)


@text_app.command("search")
def search(
    query: Annotated[
        str,
        typer.Argument(help=f'Words, "phrases", "phrase"~N, AND OR NOT, ( ). At most {MAX_QUERY_CHARS} characters.'),
    ],
    site: Annotated[str | None, typer.Option("--site", help="Only notes of this care site (code).")] = None,
    note_type: Annotated[str | None, typer.Option("--type", help="Only notes of this kind (e.g. CR_ANAPATH).")] = None,
    date_from: Annotated[
        dt.datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="From this date.")
    ] = None,
    date_to: Annotated[dt.datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="To this date.")] = None,
    project: Annotated[int | None, typer.Option("--project", min=1, help="Search under this project.")] = None,
    page: Annotated[int, typer.Option("--page", min=1, max=1000, help="Page of hits.")] = 1,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=MAX_PAGE_SIZE, help="Hits per page.")] = 10,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Search the notes (audited): your site's notes as a clinician, a project's scope, else a noisy count."""
    filters = NoteFilters(site=site, note_type=note_type, date_from=date_from.date() if date_from else None,
                          date_to=date_to.date() if date_to else None)  # fmt: skip
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        found = search_notes(caller, warehouse, data.indexes, query, filters=filters, project_id=project, page=page,
                             page_size=page_size)  # fmt: skip
    if as_json:
        out = {"mode": found.mode, "total": found.total, "persons": found.persons, "hits": found.hits,
               "facets": found.facets, "page": found.page, "page_size": found.page_size,
               "audit_index": found.audit_index, "release": found.release,
               "withheld": list(found.withheld)}  # fmt: skip
        typer.echo(json.dumps(out, indent=1, default=str))
        return
    _show(found)
