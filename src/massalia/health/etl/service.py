"""The guarded ETL services: load, vocabulary, runs, rejects and the warehouse's tables, rights first.

What ``massalia load``, ``massalia omop load-*``, ``massalia etl ...``, ``massalia init`` and
``massalia info`` call. Each function asks :meth:`massalia.governance.Governance.authorize` before it
reads or writes anything (``health.etl.run`` to write, ``health.etl.read`` for lineage and table sizes,
``health.etl.rejects`` for rejected source rows), so the command line and any other interface share the one
rights check of ``rights.yaml``. Rejected rows hold raw source values (patient keys, birth dates):
reading them is an audited action, and the filters asked for go into the audit entry.

Examples
--------
>>> from massalia.governance import operator_principal  # doctest: +SKIP
>>> runs = etl_runs(Caller(operator_principal(), gov), home.metadata_url, limit=5)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest, NotFound
from massalia.health.etl.api import EtlReport, count_runs, get_run, list_runs, run_etl, show_rejects
from massalia.health.omop.athena import load_athena
from massalia.health.omop.omop_csv import OmopCsvError, load_omop_csv
from massalia.health.omop.schema import create_cdm_indexes, create_cdm_schema
from massalia.health.omop.vocabulary import load_demo_vocabulary
from massalia.pipelines.lineage import RUN_SORTS, RunSummary

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

MAX_RUNS = 1000
MAX_REJECTS = 1000
"""Most rejected rows one call returns: each is personal data, shown to a person and audited."""
MAX_FILTER_LENGTH = 200
MAX_OFFSET = 1_000_000


def _bounded(value: str | None, name: str) -> str | None:
    if value is not None and (len(value) > MAX_FILTER_LENGTH or not value.isprintable()):
        raise InvalidRequest(f"{name} must be at most {MAX_FILTER_LENGTH} printable characters")
    return value


def _channel(channel: str | None) -> dict[str, Any]:
    return {"channel": channel} if channel else {}


def load_sources(
    caller: Caller,
    warehouse: Engine,
    folder: Path,
    *,
    sites: Sequence[str] | None = None,
    metadata_url: str | None = None,
    progress: Progress | None = None,
) -> EtlReport:
    """Run the ETL from ``folder`` into ``warehouse`` (``health.etl.run``, checked before the folder is looked at).

    Raises
    ------
    InvalidRequest
        ``folder`` is not a folder.
    """
    caller.authorize("health.etl.run", detail={"resource": {"folder": str(folder), "sites": list(sites or [])},
                                                **_channel(caller.channel)})  # fmt: skip
    if not folder.is_dir():
        raise InvalidRequest(f"no source folder at {folder}: run `massalia generate` or pass a folder")
    return run_etl(warehouse, folder, sites=sites, metadata_url=metadata_url, progress=progress)


def create_warehouse(caller: Caller, warehouse: Engine) -> tuple[int, int, int]:
    """Create the empty CDM tables, the demo vocabulary and the indexes (``health.etl.run``).

    Returns the number of tables created, vocabulary rows loaded and indexes created.
    """
    caller.authorize("health.etl.run", detail={"resource": {"step": "init"}})
    created = create_cdm_schema(warehouse)
    vocabulary = load_demo_vocabulary(warehouse)
    indexes = create_cdm_indexes(warehouse)
    return len(created), sum(vocabulary.values()), indexes


def generate_sources(caller: Caller, target: Path, patients: int, **options: Any) -> Any:
    """Write synthetic site extracts under ``target`` (``health.etl.run``: they are the ETL's input)."""
    # Imported here for CLI start-up only (the generator costs ~55 ms and most commands never generate).
    from massalia.health.synth import generate

    caller.authorize("health.etl.run", detail={"resource": {"step": "generate", "patients": int(patients),
                                                             "folder": str(target)}})  # fmt: skip
    return generate(target, patients, **options)


def load_athena_vocabulary(
    caller: Caller, warehouse: Engine, folder: Path, *, progress: Progress | None = None
) -> dict[str, int]:
    """Load an Athena vocabulary download (``health.etl.run``)."""
    caller.authorize("health.etl.run", detail={"resource": {"athena": str(folder)}})
    if not folder.is_dir():
        raise InvalidRequest(f"{folder} is not a folder")
    tasks: dict[str, TaskID] = {}
    try:
        counts = load_athena(
            warehouse, folder, progress=_rows_per_table(progress, tasks) if progress is not None else None
        )
    except OmopCsvError as error:  # a folder that is no Athena download: say what is missing, no traceback
        raise InvalidRequest(str(error)) from None
    if progress is not None:
        for table, task in tasks.items():
            progress.update(task, total=counts.get(table, 0), completed=counts.get(table, 0))
    return counts


def _rows_per_table(progress: Progress, tasks: dict[str, TaskID]) -> Callable[[str, int], None]:
    """The loader's ``progress(table, rows_so_far)`` callback, shown as one Rich task per table (kept in ``tasks``).

    The loaders take a plain callback; handing them the Rich display itself once crashed
    ``omop load-athena`` with "'Progress' object is not callable".
    """

    def update(table: str, rows: int) -> None:
        if table not in tasks:
            tasks[table] = progress.add_task(table, total=None)
        progress.update(tasks[table], completed=rows)

    return update


def load_cdm_csv(caller: Caller, warehouse: Engine, source: Path) -> dict[str, int]:
    """Load a foreign OMOP CDM CSV export (``health.etl.run``)."""
    caller.authorize("health.etl.run", detail={"resource": {"omop_csv": str(source)}})
    if not source.exists():
        raise InvalidRequest(f"{source} does not exist")
    return load_omop_csv(warehouse, source)


def etl_runs(caller: Caller, metadata_url: str, *, limit: int = 20) -> list[RunSummary]:
    """The most recent ETL runs, newest first (``health.etl.read``)."""
    if not 1 <= limit <= MAX_RUNS:
        raise InvalidRequest(f"limit must be 1 to {MAX_RUNS}, got {limit}")
    caller.authorize("health.etl.read")
    return list_runs(metadata_url, limit=limit)


def etl_run_page(
    caller: Caller,
    metadata_url: str,
    *,
    offset: int = 0,
    limit: int = 50,
    sort: str = "started_at",
    descending: bool = True,
    status: str | None = None,
) -> tuple[list[RunSummary], int]:
    """One page of ETL runs sorted by ``sort`` (``RUN_SORTS``), and how many there are (``health.etl.read``)."""
    if not 1 <= limit <= MAX_RUNS:
        raise InvalidRequest(f"limit must be 1 to {MAX_RUNS}, got {limit}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequest(f"offset must be 0 to {MAX_OFFSET}, got {offset}")
    if sort not in RUN_SORTS:
        raise InvalidRequest(f"sort must be one of {', '.join(RUN_SORTS)}, got {sort!r}")
    _bounded(status, "status")
    caller.authorize("health.etl.read")
    runs = list_runs(metadata_url, limit=limit, offset=offset, sort=sort, descending=descending, status=status)
    return runs, count_runs(metadata_url, status=status)


def etl_run(caller: Caller, metadata_url: str, run_id: str) -> RunSummary:
    """One run's lineage (``health.etl.read``, checked before the run is looked up).

    Raises
    ------
    NotFound
        No run ``run_id``.
    """
    _bounded(run_id, "run id")
    caller.authorize("health.etl.read")
    try:
        return get_run(run_id, metadata_url)
    except KeyError:
        raise NotFound(f"no ETL run {run_id!r}") from None


def warehouse_tables(caller: Caller, warehouse: Engine) -> list[tuple[str, int]]:
    """Every warehouse table with its row count (``health.etl.read``)."""
    caller.authorize("health.etl.read")
    return [(name, warehouse.row_count(name)) for name in warehouse.list_tables()]


def rejected_rows(
    caller: Caller,
    warehouse: Engine,
    *,
    run_id: str | None = None,
    site: str | None = None,
    reason: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Rejected source rows with their raw values (``health.etl.rejects``: restricted and audited).

    The audit entry names the filters, the offset and the limit, written before any row is read: each page
    of rows a person reads is in the trail.
    """
    if not 1 <= limit <= MAX_REJECTS:
        raise InvalidRequest(f"limit must be 1 to {MAX_REJECTS}, got {limit}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequest(f"offset must be 0 to {MAX_OFFSET}, got {offset}")
    filters = {"run_id": _bounded(run_id, "run id"), "site": _bounded(site, "site"),
               "reason": _bounded(reason, "reason"), "limit": limit, "offset": offset}  # fmt: skip
    caller.authorize("health.etl.rejects", detail={"resource": filters, **_channel(caller.channel)})
    if not warehouse.table_exists("etl_reject"):
        return []
    return show_rejects(warehouse, run_id=run_id, site=site, reason=reason, limit=limit, offset=offset)
