"""Full-text search over incident narratives and their attached documents, a guarded service.

The reports of the unified log are indexed by the core text index (:mod:`massalia.text`, Tantivy, French
analysis) in the home's index folder (``<home>/indexes/safety_reports/``): one document per source record
(its latest version; an edit replaces the previous version in the index), the ``narrative`` and the text of
its attachment (``document``: PDF, DOCX, ODT or e-mail, :mod:`massalia.safety.documents`) searched, the
zone, type family, type, source and attachment kind as filters and facets, the time as a range filter.

Who sees what (``safety.search.read``, ``rights.yaml``; every search is audited before it runs, the query
as a keyed hash, never its text, since a query may be a person's name):

- roles that read narratives (**operator**, **manager**: the rule's ``row_level`` grant) get hits with the
  incident, time, place and type, highlighted snippets of the narrative and the document, facets, paging;
- every other role allowed to search (**analyst**, **partner**) gets only the number of matching *incidents*,
  released by the core's disclosure mechanism (noise, rounding, threshold, privacy budget): never an id, a
  snippet or a facet, so a name typed into the box tells at most a noisy, budgeted count;
- anybody else is refused (audited).

Indexing is incremental: :func:`index_reports` adds the reports loaded since the last run (``report_id``
above the highest indexed) and removes the versions they supersede; a file that cannot be read is reported
by name and skipped, never stopping the run.

Examples
--------
>>> found = search_reports(caller, engine, home.indexes, "tapage nocturne", page_size=5)  # doctest: +SKIP
>>> found.mode, found.total  # doctest: +SKIP
('identified', 41)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from massalia.engine import Engine
from massalia.governance import Caller, Grant, InvalidRequest
from massalia.governance.disclosure import release_counts
from massalia.governance.keys import load_or_create_master_key
from massalia.safety.documents import DocumentError, extract_text
from massalia.safety.log import INCIDENTS, REPORTS
from massalia.safety.query import IncidentFilter
from massalia.text import IndexSchema, SearchRequest, TantivyIndex, parse_query
from massalia.text.query import canonical

ACTION = "safety.search.read"
INDEX_ACTION = "safety.search.index"
INDEX_NAME = "safety_reports"
SCHEMA = IndexSchema(
    id_field="report_id",
    text_fields=("narrative", "document"),
    keyword_fields=("zone", "family", "type_code", "source", "document_kind"),
    date_fields=("occurred_at",),
    integer_fields=("incident_id",),
)
"""One document per source record (latest version): narrative and attachment text, with the incident's filters."""
FACETS = ("zone", "family", "source", "document_kind")
BATCH_ROWS = 20_000
MAX_ERRORS_KEPT = 200
"""Unreadable attachments named in an indexing summary (the count covers them all)."""
Mode = Literal["identified", "count"]


# -- indexing ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexSummary:
    """What an indexing run did: reports added, superseded versions removed, documents read, files refused."""

    added: int
    removed: int
    rebuilt: bool
    documents_read: int
    document_errors: list[str]
    errors_total: int
    indexed: int

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-able data."""
        return {"added": self.added, "removed": self.removed, "rebuilt": self.rebuilt,
                "documents_read": self.documents_read, "document_errors": self.document_errors,
                "errors_total": self.errors_total, "indexed": self.indexed}  # fmt: skip


def _batches(engine: Engine, after: int) -> Iterator[list[dict[str, Any]]]:
    """Latest versions of the reports with ``report_id > after``, in id order, ``BATCH_ROWS`` at a time.

    Which reports are latest is decided once (one window over the new reports' ids); each batch then reads an
    id range. Deciding it in every batch's query re-ran the window over every remaining report: about 3 s a
    batch at a million reports, half of a full index's time.
    """
    latest = (
        engine.query(
            f"SELECT r.report_id FROM {REPORTS} AS r WHERE r.report_id > {int(after)} "
            f"QUALIFY r.version = max(r.version) OVER (PARTITION BY r.source, r.source_id) ORDER BY r.report_id"
        )
        .column("report_id")
        .to_pylist()
    )
    for at in range(0, len(latest), BATCH_ROWS):
        chosen = latest[at : at + BATCH_ROWS]
        wanted = set(chosen)
        rows = engine.query(
            f"SELECT r.report_id, r.incident_id, r.source, r.source_id, r.occurred_at, i.zone, i.family, r.type_code, "
            f"r.narrative, r.attachments, r.source_file FROM {REPORTS} AS r "
            f"JOIN {INCIDENTS} AS i ON i.incident_id = r.incident_id "
            f"WHERE r.report_id BETWEEN {int(chosen[0])} AND {int(chosen[-1])} ORDER BY r.report_id"
        ).to_pylist()
        batch = [row for row in rows if row["report_id"] in wanted]  # earlier versions in the range are left
        if batch:
            yield batch


def _superseded(engine: Engine, after: int) -> list[int]:
    """Report ids of earlier versions of the records that got a new version above ``after``."""
    rows = engine.query(
        f"SELECT old.report_id FROM {REPORTS} AS old JOIN {REPORTS} AS new ON new.source = old.source "
        f"AND new.source_id = old.source_id AND new.version > old.version WHERE new.report_id > {int(after)} "
        f"AND old.report_id <= {int(after)}"
    ).to_pylist()
    return sorted({int(r["report_id"]) for r in rows})


def attachment_path(source_file: str, name: str) -> Path:
    """Where a report's attachment was delivered: the ``pj/`` folder beside its source log (name checked)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DocumentError(f"{name!r}: an attachment is a plain file name")
    return Path(source_file).parent / "pj" / name


def index_reports(caller: Caller, engine: Engine, root: Path, *, rebuild: bool = False) -> IndexSummary:
    """Index the reports loaded since the last run (``safety.search.index``), or rebuild the whole index.

    Attachments are read from the ``pj/`` folder beside each report's source log; a missing or unreadable
    one is named in ``document_errors`` and the report is indexed with its narrative alone.
    """
    caller.authorize(INDEX_ACTION, detail={"resource": {"index": INDEX_NAME, "rebuild": rebuild},
                                           "channel": caller.channel})  # fmt: skip
    if not engine.table_exists(REPORTS):
        raise InvalidRequest("the incident log is empty: load a delivery first (massalia safety load)")
    fresh = rebuild or not TantivyIndex.exists(root, INDEX_NAME)
    after = -(2**63) if fresh else TantivyIndex.open(root, INDEX_NAME, SCHEMA).max_id()
    errors: list[str] = []
    counts = {"added": 0, "read": 0, "errors": 0}

    def rows() -> Iterator[dict[str, Any]]:
        for batch in _batches(engine, after):
            for row in batch:
                kind = None
                text = None
                name = row.pop("attachments") or ""
                source_file = row.pop("source_file")
                if name:
                    try:
                        extracted = extract_text(attachment_path(str(source_file), str(name)))
                        text, kind = extracted.text, extracted.kind
                        counts["read"] += 1
                    except DocumentError as error:
                        counts["errors"] += 1
                        if len(errors) < MAX_ERRORS_KEPT:
                            errors.append(f"{row['source']} {row['source_id']}: {error}")
                row["document"] = text
                row["document_kind"] = kind or ("none" if not name else "unreadable")
                row.pop("source_id")
                counts["added"] += 1
                yield row

    removed = 0
    if fresh:
        with TantivyIndex.build(root, INDEX_NAME, SCHEMA) as index:
            index.add_new(rows())
    else:
        index = TantivyIndex.open(root, INDEX_NAME, SCHEMA)
        try:
            stale = _superseded(engine, after)
            index.delete(stale)
            removed = len(stale)
            index.add(rows())
            index.commit()
        finally:
            index.close()
    indexed = TantivyIndex.open(root, INDEX_NAME, SCHEMA).num_docs
    return IndexSummary(counts["added"], removed, fresh, counts["read"], errors, counts["errors"], indexed)


# -- searching ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportSearch:
    """A search's answer, as much as the grant allows (``mode``: ``identified`` or ``count``)."""

    mode: Mode
    total: int | None
    incidents: int | None
    hits: list[dict[str, Any]]
    facets: dict[str, dict[str, int]]
    page: int
    page_size: int
    audit_index: int | None
    release: dict[str, Any] = field(default_factory=dict)
    withheld: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The answer as JSON-able data."""
        return {"mode": self.mode, "total": self.total, "incidents": self.incidents, "hits": self.hits,
                "facets": self.facets, "page": self.page, "page_size": self.page_size,
                "audit_index": self.audit_index, "release": self.release,
                "withheld": list(self.withheld)}  # fmt: skip


def query_digest(caller: Caller, query: str) -> str:
    """A keyed hash of a (canonical) query: what the audit trail and the disclosure store keep, never the text."""
    master = load_or_create_master_key(caller.governance.key_path)
    key = hmac.new(master, b"massalia safety search query", hashlib.sha256).digest()
    return hmac.new(key, query.encode("utf-8"), hashlib.sha256).hexdigest()


def _request(query: str, where: IncidentFilter, *, page: int, page_size: int, snippets: bool,
             facets: Sequence[str] = (), report_ids: Sequence[int] | None = None) -> SearchRequest:  # fmt: skip
    keywords: dict[str, Sequence[str]] = {}
    for name, values in (("zone", where.zones), ("family", where.families), ("type_code", where.types),
                         ("source", where.sources)):  # fmt: skip
        if values:
            keywords[name] = list(values)
    dates: dict[str, tuple[dt.date | None, dt.date | None]] = {}
    if where.start or where.end:
        # [start, end) as Tantivy's inclusive range: the end minus one second (dates are stored to the second).
        upper = where.end - dt.timedelta(seconds=1) if where.end else None
        dates["occurred_at"] = (where.start, upper)
    ids = {"report_id": list(report_ids)} if report_ids is not None else {}
    return SearchRequest(query, keywords=keywords, dates=dates, ids=ids, facets=facets, page=page,
                         page_size=page_size, snippets=snippets)  # fmt: skip


def _mode(grant: Grant) -> Mode:
    # Snippets and ids only for the rule that grants row-level reads (the roles that read narratives).
    return "identified" if grant.row_level else "count"


def _hit(hit: Any) -> dict[str, Any]:
    fields = hit.fields
    occurred = fields.get("occurred_at")
    return {
        "report_id": hit.id,
        "incident_id": fields.get("incident_id"),
        # Stored as UTC by the index; the log's times are Paris wall-clock times, given back without an offset.
        "occurred_at": occurred.replace(tzinfo=None).isoformat() if isinstance(occurred, dt.datetime) else None,
        "zone": fields.get("zone"),
        "family": fields.get("family"),
        "type_code": fields.get("type_code"),
        "source": fields.get("source"),
        "document_kind": fields.get("document_kind"),
        "score": round(hit.score, 4),
        "snippets": {name: snippet.as_dict() for name, snippet in hit.snippets.items()},
    }


def search_reports(
    caller: Caller,
    engine: Engine,
    root: Path,
    query: str,
    *,
    where: IncidentFilter | None = None,
    page: int = 1,
    page_size: int = 10,
    report_ids: Sequence[int] | None = None,
    identified_only: bool = False,
) -> ReportSearch:
    """Search narratives and attachments under ``root`` (``safety.search.read``; audited before it answers).

    ``report_ids`` narrows the search to those reports (the saved searches' "new since last check").
    ``identified_only``: a caller whose grant gives only a count gets an empty ``count`` answer, with nothing
    read nor released (a notification pushed without the caller's asking must not spend their budget).

    Raises
    ------
    massalia.text.QuerySyntaxError
        The query is malformed (what and where); checked before anything else (Tantivy's own
        ``field:value`` is read as plain words by the core's parser, never as a field).
    AccessDenied
        The caller may not search.
    TextIndexError
        The index was never built (``massalia safety index``).
    """
    chosen = where or IncidentFilter()
    tree = parse_query(query)  # a malformed query is refused before any decision or read
    SearchRequest(query, page=page, page_size=page_size)  # bounds of the page, checked early too
    digest = query_digest(caller, canonical(tree))
    resource = {"index": INDEX_NAME, "query_hmac": digest, "filter": chosen.describe(), "page": page,
                "page_size": page_size, "restricted_to": None if report_ids is None else len(report_ids)}  # fmt: skip
    # The decision is taken before anything is read (a refusal reads nothing); its audit entry is then written
    # while the index is read, and nothing leaves this block before the entry is durable (audit_before_answer).
    with caller.governance.audit_before_answer() as gate:
        grant = caller.authorize(ACTION, detail={"resource": resource, "channel": caller.channel})
        mode = _mode(grant)
        if mode == "count" and identified_only:
            found = ReportSearch(mode, None, None, [], {}, 1, page_size, None, {"mode": "withheld"},
                                 ("count", "hits", "ids", "snippets", "facets"))  # fmt: skip
        else:
            found = _answer(caller, root, query, chosen, mode, digest, page, page_size, report_ids)
    return dataclasses.replace(found, audit_index=gate.indexes[0] if gate.indexes else grant.audit_index)


def _answer(caller: Caller, root: Path, query: str, chosen: IncidentFilter, mode: Mode, digest: str, page: int,
            page_size: int, report_ids: Sequence[int] | None) -> ReportSearch:  # fmt: skip
    """The search itself, as much as ``mode`` allows (the decision was taken by :func:`search_reports`)."""
    index = open_index(root)
    if mode == "count":
        request = _request(query, chosen, page=1, page_size=1, snippets=False, report_ids=report_ids)
        matching = index.distinct(request, "incident_id")
        restricted = None if report_ids is None else hashlib.sha256(
            ",".join(str(int(i)) for i in sorted(report_ids)).encode()).hexdigest()  # fmt: skip
        key = {"query_hmac": digest, "filter": chosen.describe(), "data": index.version(), "restricted_to": restricted}
        # One incident changes the count by one at most (its reports are counted once): sensitivity 1.
        release = release_counts(caller.governance, caller.principal, ACTION, key, {"incidents": matching})
        return ReportSearch(mode, None, release.values["incidents"], [], {}, 1, page_size, None,
                            release.describe(), ("hits", "ids", "snippets", "facets"))  # fmt: skip
    request = _request(query, chosen, page=page, page_size=page_size, snippets=True, facets=FACETS,
                       report_ids=report_ids)  # fmt: skip
    found = index.search(request)
    return ReportSearch(mode, found.total, None, [_hit(h) for h in found.hits], found.facets, page, page_size, None,
                        {"mode": "exact"})  # fmt: skip


_OPENED: dict[Path, tuple[tuple[str, int, int], TantivyIndex]] = {}
_OPENED_LOCK = threading.Lock()
MAX_OPENED = 16
"""Indexes kept open per process (one per home in practice; tests make many)."""


def open_index(root: Path) -> TantivyIndex:
    """The index under ``root`` for searching, opened once per generation and commit.

    Opening reads the schema file and every segment's metadata (milliseconds at a million reports, paid by each
    search before). The opened index is kept while its generation (the ``current`` link) and its last commit
    (Tantivy's ``meta.json``, rewritten by each commit) stay the same, so a search always reads the latest
    commit, as if it had opened the index itself. Never written through (indexing opens its own).
    """
    current = TantivyIndex.folder(root, INDEX_NAME) / "current"
    try:
        target = current.resolve(strict=True)
        meta = (target / "meta.json").stat()
    except OSError:
        return TantivyIndex.open(root, INDEX_NAME, SCHEMA)  # not built (yet): its own clear error
    stamp = (str(target), meta.st_mtime_ns, meta.st_size)
    with _OPENED_LOCK:
        kept = _OPENED.get(current)
    if kept is not None and kept[0] == stamp:
        return kept[1]
    index = TantivyIndex.open(root, INDEX_NAME, SCHEMA)
    with _OPENED_LOCK:
        if len(_OPENED) >= MAX_OPENED:
            _OPENED.clear()
        _OPENED[current] = (stamp, index)
    return index


def max_indexed(root: Path) -> int:
    """The highest report id in the index (saved searches remember it as "checked up to")."""
    if not TantivyIndex.exists(root, INDEX_NAME):
        return 0
    return max(0, TantivyIndex.open(root, INDEX_NAME, SCHEMA).max_id())


__all__ = [
    "ACTION",
    "INDEX_ACTION",
    "INDEX_NAME",
    "SCHEMA",
    "IndexSummary",
    "ReportSearch",
    "attachment_path",
    "index_reports",
    "max_indexed",
    "open_index",
    "query_digest",
    "search_reports",
]
