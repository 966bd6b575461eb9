"""``massalia opendata …``: the open-data catalog and datastore from the command line.

A thin layer over the guarded services of :mod:`massalia.opendata` (the same rights and audit as the API):
the caller is the ``MASSALIA_TOKEN`` holder, else the home's local operator (a platform admin).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import TaskID

from massalia.cli.common import EngineOption, HomeOption, console, existing_home, fail, governed, progress_bar
from massalia.opendata import datastore, harvest, schemas
from massalia.opendata.catalog import Catalog
from massalia.opendata.certify import Certifier, checkpoint_text
from massalia.opendata.demo import build_demo
from massalia.opendata.models import ValidationFailed
from massalia.opendata.search import search_documents
from massalia.warehouse import open_warehouse

opendata_app = typer.Typer(help="Open data: organizations, datasets, resources, versions, datastore, CKAN API.")

JsonFile = Annotated[Path, typer.Argument(help="A JSON file (CKAN's dict shape), or - for standard input.")]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as error:
        fail(f"{path}: {error}")
    if not isinstance(data, dict):
        fail(f"{path}: a JSON object is expected")
    return data


def _print(value: Any) -> None:
    console.print_json(json.dumps(value, ensure_ascii=False, default=str))


def _run(home_dir: Path | None, work: Any) -> Any:
    data = existing_home(home_dir)  # a mistyped --home is refused, not created
    try:
        with governed(data) as caller:
            return work(caller, Catalog.for_home(data))
    except ValidationFailed as error:
        fail(str(error))


@opendata_app.command("org-create")
def org_create(
    name: str, title: Annotated[str, typer.Option(help="Display title.")] = "", home_dir: HomeOption = None
) -> None:
    """Create an organization (a producer); platform admins only."""
    _print(_run(home_dir, lambda caller, cat: cat.organization_create(caller, {"name": name, "title": title})))


@opendata_app.command("member-add")
def member_add(
    organization: str,
    username: str,
    capacity: Annotated[str, typer.Option(help="admin, editor or member.")] = "editor",
    home_dir: HomeOption = None,
) -> None:
    """Make a user an editor (or admin, member) of an organization."""
    _print(_run(home_dir, lambda caller, cat: cat.organization_member_create(caller, organization, username, capacity)))


@opendata_app.command("group-create")
def group_create(
    name: str, title: Annotated[str, typer.Option(help="Display title.")] = "", home_dir: HomeOption = None
) -> None:
    """Create a group (a theme); platform admins only."""
    _print(_run(home_dir, lambda caller, cat: cat.group_create(caller, {"name": name, "title": title})))


@opendata_app.command("dataset-create")
def dataset_create(document: JsonFile, home_dir: HomeOption = None) -> None:
    """Create a dataset from a JSON document (name, owner_org, title, notes, tags, resources...)."""
    # The file is read once the caller is known: a bad token is refused before anything else.
    result = _run(home_dir, lambda caller, cat: cat.package_create(caller, _read_json(document)))
    console.print(
        f"[green]published[/] {result['name']} version {result['massalia_version']} "
        f"(sha256 {result['massalia_version_sha256']})"
    )


@opendata_app.command("dataset-update")
def dataset_update(
    document: JsonFile,
    patch: Annotated[bool, typer.Option(help="Change only the given fields.")] = False,
    home_dir: HomeOption = None,
) -> None:
    """Update a dataset from a JSON document (``id`` or ``name`` names it); a new version is published."""
    result = _run(home_dir, lambda caller, cat: cat.package_update(caller, _read_json(document), patch=patch))
    console.print(f"[green]published[/] {result['name']} version {result['massalia_version']}")


@opendata_app.command("show")
def show(
    dataset: str,
    version: Annotated[int | None, typer.Option(help="An earlier version.")] = None,
    home_dir: HomeOption = None,
) -> None:
    """Print a dataset as JSON (as it stands, or as published in ``--version``)."""
    _print(_run(home_dir, lambda caller, cat: cat.package_show(caller, dataset, version=version)))


@opendata_app.command("versions")
def versions(dataset: str, home_dir: HomeOption = None) -> None:
    """List a dataset's versions: number, SHA-256, producer, time, operation."""
    for item in _run(home_dir, lambda caller, cat: cat.package_versions(caller, dataset)):
        console.print(
            f"{item['version']:>4}  {item['sha256']}  {item['published_at']}  {item['published_by']}  "
            f"{item['operation']}"
        )


@opendata_app.command("search")
def search(
    q: Annotated[str, typer.Argument(help="Solr-like query (terms, field:value).")] = "",
    fq: Annotated[str, typer.Option(help="Filter query.")] = "",
    rows: Annotated[int, typer.Option(help="How many results.")] = 20,
    home_dir: HomeOption = None,
) -> None:
    """Search the catalog like package_search; prints name and title of each match."""
    documents = _run(home_dir, lambda caller, cat: cat.active_documents(caller))
    try:
        found = search_documents(documents, q=q, fq=fq, rows=rows)
    except ValidationFailed as error:
        fail(str(error))
    console.print(f"{found['count']} dataset(s)")
    for doc in found["results"]:
        console.print(f"{doc['name']}  {doc.get('title', '')}")


@opendata_app.command("publish")
def publish(
    dataset: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    types: Annotated[str | None, typer.Option(help='Field types as JSON, e.g. {"code": "text"}.')] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Upload a file as a new resource of a dataset and load it into the datastore (CSV, JSON, Excel)."""
    data = existing_home(home_dir)
    try:
        overrides = json.loads(types) if types else None
    except json.JSONDecodeError as error:
        fail(f"--types is not JSON: {error}")
    try:
        with governed(data) as caller, open_warehouse(data, engine) as warehouse, progress_bar() as bar:
            tasks: dict[str, TaskID] = {}

            def shown(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    label = "reading the file (bytes)" if step == "reading" else "writing the table (rows)"
                    tasks[step] = bar.add_task(label, total=total)
                bar.update(tasks[step], completed=done, total=total)

            resource, report = datastore.store_and_load(
                caller, Catalog.for_home(data), warehouse, dataset, file, types=overrides, progress=shown
            )
    except ValidationFailed as error:
        fail(str(error))
    console.print(
        f"[green]resource[/] {resource['id']} ({resource['hash']}): {report.rows:,} rows into "
        f"{report.table} in {report.seconds:.1f} s"
    )


@opendata_app.command("schemas")
def schema_list(home_dir: HomeOption = None) -> None:
    """The Table Schemas shipped with Massalia, by id@version (what a resource's schema may name)."""
    for item in _run(home_dir, lambda caller, cat: schemas.schema_list(caller)):
        console.print(f"{item['schema']}  {item['title']}")


@opendata_app.command("validation")
def validation(
    resource: str,
    version: Annotated[int | None, typer.Option(min=1, help="The dataset version (default: as it stands).")] = None,
    rerun: Annotated[bool, typer.Option(help="Validate the file again (a new version records it).")] = False,
    home_dir: HomeOption = None,
) -> None:
    """A resource's schema validation report (row, field, error type, message); --rerun validates again."""

    def work(caller: Any, cat: Catalog) -> dict[str, Any]:
        if rerun:
            cat.resource_validate(caller, resource)
        return schemas.validation_show(caller, cat, resource, version=version)

    _print(_run(home_dir, work))


@opendata_app.command("harvest")
def harvest_command(
    source: Annotated[str, typer.Argument(help="A DCAT file (Turtle, RDF/XML, JSON-LD) or an http(s) URL.")],
    organization: Annotated[str, typer.Option("--org", help="The organization the records are harvested into.")],
    home_dir: HomeOption = None,
) -> None:
    """Harvest DCAT records as datasets of an organization; prints what was created, updated, skipped, removed."""
    report = _run(home_dir, lambda caller, cat: harvest.harvest(caller, cat, source, organization))
    _print(report.as_dict())


@opendata_app.command("sql")
def sql(query: str, home_dir: HomeOption = None, engine: EngineOption = None) -> None:
    """Run one read-only SELECT over datastore tables (named by resource id), like datastore_search_sql."""
    data = existing_home(home_dir)
    try:
        with governed(data) as caller, open_warehouse(data, engine) as warehouse:
            result = datastore.search_sql(caller, Catalog.for_home(data), warehouse, query)
    except ValidationFailed as error:
        fail(str(error))
    _print(result["records"])


@opendata_app.command("demo")
def demo(
    datasets: Annotated[int, typer.Option(min=0, max=1000, help="How many generated datasets.")] = 200,
    reference: Annotated[
        Path | None,
        typer.Option(help="The shared reference folder: its IRVE example and GTFS sample feed are published too."),
    ] = None,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Publish a generated regional catalog (organizations, themes, datasets, an IRVE sample in the datastore)."""
    data = existing_home(home_dir)
    try:
        with governed(data) as caller, open_warehouse(data, engine) as warehouse:
            report = build_demo(caller, Catalog.for_home(data), warehouse, datasets=datasets, reference=reference)
    except ValidationFailed as error:
        fail(str(error))
    console.print(
        f"[green]demo[/]: {report.organizations} organization(s), {report.groups} group(s), "
        f"{report.datasets} dataset(s) added; {report.datastore_rows} IRVE rows in the datastore; "
        f"{report.files} file(s) certified (massalia verify, docs/opendata-verify.md)"
    )


@opendata_app.command("certify")
def certify(home_dir: HomeOption = None) -> None:
    """Catch up on certification: append every public file not yet in the certification log (platform admins)."""
    data = existing_home(home_dir)
    with governed(data) as caller:
        certifier = Certifier.for_home(data)
        added = certifier.catch_up(caller)
        head = certifier.checkpoint(caller)
    console.print(f"[green]certified[/]: {added} new file version(s); the log has {head.tree_size} entries")


@opendata_app.command("proof")
def proof(
    resource_id: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the proof here (default: stdout).")
    ] = None,
    version: Annotated[int | None, typer.Option(min=1, help="Which file of the resource (default: latest).")] = None,
    since: Annotated[
        int | None, typer.Option(min=0, help="Size of a checkpoint you hold (adds a consistency proof).")
    ] = None,
    home_dir: HomeOption = None,
) -> None:
    """The proof bundle of a resource's file, for ``massalia verify`` (what the API's proof endpoint gives)."""
    bundle = _run(home_dir, lambda caller, cat: Certifier.for_home(existing_home(home_dir)).proof(
        caller, resource_id, version, since))  # fmt: skip
    text = json.dumps(bundle, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"[green]proof[/] written to {output}")


@opendata_app.command("checkpoint")
def checkpoint(home_dir: HomeOption = None) -> None:
    """The certification log's latest signed checkpoint, in its text format."""
    head = _run(home_dir, lambda caller, cat: Certifier.for_home(existing_home(home_dir)).checkpoint(caller))
    sys.stdout.write(checkpoint_text(head))
