"""Full-text search over the warehouse's clinical documents (OMOP NOTE), a guarded service.

The notes are indexed by the generic text index (:mod:`massalia.text`, French analysis): Tantivy in the
home's index folder (``<home>/indexes/notes/``), or, when the warehouse is PostgreSQL, PostgreSQL's own
full-text search in the warehouse table ``text_notes`` (:func:`notes_backend`; same rights, scope, snippets
and audit). Indexed: ``note_title`` and ``note_text`` searched, the person's care site
(``care_site_source_value``, as the patient view and the project scopes know it), the document kind
(``note_title``, which the ETL fills from the source's document type), ``note_date`` and ``person_id`` as
filters and facets.

Who sees what (``health.document.search``, ``rights.yaml``; every search is audited before it runs):

- a **clinician** searches the notes of their own site only: the site filter is applied here, from the
  grant, never by the interface; they get identified hits with highlighted snippets;
- a **member of an approved pseudonymized project** gets hits only within the project's scope (the
  persons of its cohort, its sites, its period): persons by project pseudonym, notes by a keyed reference,
  dates shifted by the person's project shift, exactly as the project's patient views and extracts; snippets
  of the text **de-identified** with the whole note as context (:func:`deidentified_snippet`,
  :mod:`massalia.health.documents.deid`), never the title; exact totals and facet counts;
- a member of an approved project of another access level gets exact totals and facets in its scope only;
- **anybody else** (a researcher without approval, a DPO, an admin outside a project, a clinician without a
  site) gets only the number of *persons* with a matching note, released through the disclosure mechanism
  (noise, threshold, budget): never an id, a date or a word of text. Persons, not notes: one person adds
  at most one to it (bounded sensitivity), while a person can add any number of notes;
- naming a project one is not a member of is refused before anything of it is read (audited).

The query may contain a name (a clinician looking for a patient's letters), so the audit trail and the
disclosure store keep a keyed hash of it (HMAC under a key derived from the home's master key), never its
text: an auditor holding the key can check whether a given query was run; a reader of the log cannot
guess it by trying names.

Examples
--------
>>> found = search_notes(caller, engine, home.indexes, '"métastases hépatiques"', page_size=5)  # doctest: +SKIP
>>> found.mode, found.total  # doctest: +SKIP
('identified', 12)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa
from sqlglot import exp

from massalia.engine import Engine
from massalia.governance import Caller, Grant, InvalidRequest, Role
from massalia.governance.disclosure import release_counts
from massalia.governance.keys import load_or_create_master_key
from massalia.governance.policy import RowPolicy
from massalia.governance.pseudonym import date_shifts, keyed_digests, pseudonymize
from massalia.health.cohorts.compiler import compile_cohort
from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.cohorts.service import run_step
from massalia.health.documents.deid import deidentify_note
from massalia.health.research import PROJECT_DATE_SHIFT_DAYS, project_scope
from massalia.text import IndexSchema, SearchRequest, SearchResult, Snippet, TantivyIndex, TextIndexError, parse_query
from massalia.text.postgres_index import PostgresTextIndex
from massalia.text.query import canonical

ACTION = "health.document.search"
INDEX_ACTION = "health.document.index"
NOTES_INDEX = "notes"
NOTES_SCHEMA = IndexSchema(
    id_field="note_id",
    text_fields=("note_title", "note_text"),
    keyword_fields=("site", "note_type"),
    date_fields=("note_date",),
    integer_fields=("person_id",),
)
"""The notes index: OMOP's own names, plus the person's site and the document kind."""
FACETS = ("site", "note_type")
RESEARCH_FACETS = ("site",)
"""The facets a researcher gets: ``note_title`` is free text in OMOP (a source may put a name in it), so the
document kind stays out of every pseudonymized or aggregate answer, as free text stays out of the allow-list."""
BATCH_ROWS = 20_000
"""Notes read from the warehouse per query while indexing (bounded memory, a progress step each)."""
MAX_TYPE_CHARS = 100
Mode = Literal["identified", "pseudonymized", "aggregate", "count"]
Backend = Literal["tantivy", "postgres"]


class NotesIndex(Protocol):
    """What the service asks of a text index backend (Tantivy's folder or PostgreSQL's table)."""

    def search(self, request: SearchRequest) -> SearchResult: ...  # noqa: D102 (the backends document it)

    def distinct(self, request: SearchRequest, field: str) -> int: ...  # noqa: D102

    def version(self) -> str: ...  # noqa: D102


def notes_backend(engine: Engine) -> Backend:
    """Where the notes index lives: the PostgreSQL warehouse's own full-text search, else the home's Tantivy folder.

    A PostgreSQL warehouse keeps its notes index in a table of its own (one server to back up and secure);
    indexing and searching choose alike, so a search always reads the index the last indexing run built.
    """
    return "postgres" if engine.capabilities.french_full_text else "tantivy"


def open_notes_index(engine: Engine, root: Path) -> NotesIndex:
    """The built notes index of this warehouse's backend (:func:`notes_backend`).

    Raises
    ------
    TextIndexError
        The index was never built (``massalia text index``).
    """
    if notes_backend(engine) == "postgres":
        index = PostgresTextIndex(engine, NOTES_INDEX, NOTES_SCHEMA)
        if not index.exists():
            raise TextIndexError("the notes index was never built in the warehouse: run massalia text index")
        return index
    return TantivyIndex.open(root, NOTES_INDEX, NOTES_SCHEMA)


# -- indexing ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexSummary:
    """What an indexing run did: notes added, whether it rebuilt everything, notes now searchable."""

    added: int
    rebuilt: bool
    documents: int


def _note_batches(engine: Engine, after: int) -> Iterator[pa.Table]:
    """The notes with ``note_id > after``, in id order, ``BATCH_ROWS`` at a time, with the person's site."""
    last = after
    while True:
        query = (
            exp.select(
                "n.note_id", "n.person_id", "n.note_date", "n.note_title", "n.note_text",
                exp.column("care_site_source_value", table="cs").as_("site"),
            )
            .from_(exp.to_table("note").as_("n"))
            .join(exp.to_table("person").as_("p"), on="p.person_id = n.person_id", join_type="left")
            .join(exp.to_table("care_site").as_("cs"), on="cs.care_site_id = p.care_site_id", join_type="left")
            .where(exp.column("note_id", table="n") > exp.Literal.number(last))
            .order_by("n.note_id")
            .limit(BATCH_ROWS)
        )  # fmt: skip
        batch = engine.query(query)
        if batch.num_rows == 0:
            return
        yield batch
        last = int(batch.column("note_id")[-1].as_py())


def _rows(batch: pa.Table) -> Iterator[dict[str, Any]]:
    for row in batch.to_pylist():
        title = row.get("note_title")
        row["note_type"] = str(title)[:MAX_TYPE_CHARS] if title else None
        yield row


def index_notes(
    caller: Caller,
    engine: Engine,
    root: Path,
    *,
    rebuild: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> IndexSummary:
    """Build the notes index under ``root``, or add the notes loaded since the last run (``health.document.index``).

    A rebuild (or the first build) writes a new index and swaps it in atomically; otherwise the notes
    whose ``note_id`` is above the highest indexed one are added and committed. ``progress(done, total)``
    is called after each batch.
    """
    caller.authorize(INDEX_ACTION, detail={"resource": {"index": NOTES_INDEX, "rebuild": rebuild},
                                           "channel": caller.channel})  # fmt: skip
    if not engine.table_exists("note"):
        raise InvalidRequest("the warehouse has no NOTE table: load documents first (massalia etl)")
    if notes_backend(engine) == "postgres":
        return _index_in_postgres(engine, rebuild=rebuild, progress=progress)
    fresh = rebuild or not TantivyIndex.exists(root, NOTES_INDEX)
    after = -(2**63) if fresh else TantivyIndex.open(root, NOTES_INDEX, NOTES_SCHEMA).max_id()
    total = _count_after(engine, after)
    done = 0

    def fill(index: TantivyIndex, add: Callable[[Any], int]) -> None:
        nonlocal done
        for batch in _note_batches(engine, after):
            done += add(_rows(batch))
            if progress is not None:
                progress(done, total)

    if fresh:
        with TantivyIndex.build(root, NOTES_INDEX, NOTES_SCHEMA) as index:
            fill(index, index.add_new)
    else:
        index = TantivyIndex.open(root, NOTES_INDEX, NOTES_SCHEMA)
        try:
            fill(index, index.add)
            index.commit()
        finally:
            index.close()
    documents = TantivyIndex.open(root, NOTES_INDEX, NOTES_SCHEMA).num_docs
    return IndexSummary(done, fresh, documents)


def _count_after(engine: Engine, after: int) -> int:
    return engine.scalar_int(
        exp.select(exp.func("count", exp.Star())).from_("note").where(exp.column("note_id") > exp.Literal.number(after))
    )


def _index_in_postgres(engine: Engine, *, rebuild: bool, progress: Callable[[int, int], None] | None) -> IndexSummary:
    """The notes index as a table of the PostgreSQL warehouse: built (staging table swapped in) or extended."""
    index = PostgresTextIndex(engine, NOTES_INDEX, NOTES_SCHEMA)
    fresh = rebuild or not index.exists()
    after = -(2**63) if fresh else index.max_id()
    total = _count_after(engine, after)
    done = 0

    def batches() -> Iterator[list[dict[str, Any]]]:
        nonlocal done
        for batch in _note_batches(engine, after):
            rows = list(_rows(batch))
            yield rows
            done += len(rows)
            if progress is not None:
                progress(done, total)

    if fresh:
        index.build(batches())
    else:
        for rows in batches():
            index.add(rows)
    return IndexSummary(done, fresh, index.num_docs)


# -- searching ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoteFilters:
    """What the caller narrows the search to (the service adds the rights' and the scope's own filters)."""

    site: str | None = None
    note_type: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def as_dict(self) -> dict[str, Any]:
        """The filters as JSON-able data (audited: sites, kinds and dates name no person)."""
        return {"site": self.site, "note_type": self.note_type,
                "date_from": self.date_from.isoformat() if self.date_from else None,
                "date_to": self.date_to.isoformat() if self.date_to else None}  # fmt: skip


@dataclass(frozen=True)
class DocumentSearch:
    """A search's answer, as much as the grant allows.

    ``mode`` says which: ``identified`` (a clinician's own site: ids and snippets), ``pseudonymized``
    (project pseudonyms, note references, shifted dates; no text), ``aggregate`` (exact total and facets
    in an approved project's scope), ``count`` (persons with a matching note, released by the disclosure
    mechanism; ``total`` and the facets withheld).
    """

    mode: Mode
    total: int | None
    persons: int | None
    """Persons with a matching note: in ``count`` mode only (the released, noisy figure)."""
    hits: list[dict[str, Any]]
    facets: dict[str, dict[str, int]]
    page: int
    page_size: int
    audit_index: int | None
    release: dict[str, Any] = field(default_factory=dict)
    withheld: tuple[str, ...] = ()


def query_digest(caller: Caller, query: str) -> str:
    """The keyed hash of a search query kept in the audit trail (the query may hold a patient's name)."""
    master = load_or_create_master_key(caller.governance.key_path)
    key = hmac.new(master, b"massalia text query", hashlib.sha256).digest()
    return hmac.new(key, query.encode("utf-8"), hashlib.sha256).hexdigest()


def _project_persons(engine: Engine, cohort: Mapping[str, Any] | None) -> list[int] | None:
    """The persons of a project's cohort (its qualified events), or ``None`` when the project names no cohort."""
    if cohort is None:
        return None
    compiled = compile_cohort(CohortDefinition.model_validate(cohort))
    people = run_step(engine, compiled, "qualified_mask").column("person_id")
    return sorted({int(v) for v in people.to_pylist() if v is not None})


def _intersect(wanted: str | None, allowed: tuple[str, ...] | None) -> list[str] | None:
    """The keyword filter: the caller's value within what the rights or the scope allow (``None``: no filter)."""
    if allowed is None:
        return None if wanted is None else [wanted]
    return [v for v in allowed if wanted is None or v == wanted]


def _date_bounds(filters: NoteFilters, policy: RowPolicy | None) -> tuple[dt.date | None, dt.date | None]:
    low, high = filters.date_from, filters.date_to
    if policy is not None and policy.period_start is not None:
        low = policy.period_start if low is None else max(low, policy.period_start)
    if policy is not None and policy.period_end is not None:
        high = policy.period_end if high is None else min(high, policy.period_end)
    return low, high


def _request(
    query: str,
    filters: NoteFilters,
    grant: Grant,
    policy: RowPolicy | None,
    persons: list[int] | None,
    *,
    page: int,
    page_size: int,
    snippets: bool,
    facets: tuple[str, ...] = FACETS,
) -> SearchRequest:
    allowed_sites: tuple[str, ...] | None = None
    if grant.site is not None:  # a clinician's own site, from the grant
        allowed_sites = (grant.site,)
    if policy is not None and policy.sites:
        allowed_sites = tuple(s for s in (allowed_sites or policy.sites) if s in policy.sites)
    keywords: dict[str, list[str]] = {}
    sites = _intersect(filters.site, allowed_sites)
    if sites is not None:
        keywords["site"] = sites
    if filters.note_type is not None:
        keywords["note_type"] = [filters.note_type]
    low, high = _date_bounds(filters, policy)
    dates = {"note_date": (low, high)} if (low or high) else {}
    if low and high and low > high:  # the caller's dates and the scope's period do not meet
        keywords["site"] = []
        dates = {}
    ids = {"person_id": persons} if persons is not None else {}
    return SearchRequest(query, keywords=keywords, dates=dates, ids=ids, facets=facets, page=page,
                         page_size=page_size, snippets=snippets)  # fmt: skip


def _mode(grant: Grant) -> Mode:
    if grant.row_level and grant.pseudonymized:
        return "pseudonymized"
    if grant.row_level and grant.site is not None:
        return "identified"
    return "aggregate" if grant.raw_counts else "count"


def _identified_hit(hit: Any) -> dict[str, Any]:
    fields = hit.fields
    return {"note_id": hit.id, "person_id": fields.get("person_id"), "note_date": _iso(fields.get("note_date")),
            "site": fields.get("site"), "note_type": fields.get("note_type"), "score": round(hit.score, 4),
            "snippets": {name: snippet.as_dict() for name, snippet in hit.snippets.items()}}  # fmt: skip


def _note_texts(engine: Engine, note_ids: list[int]) -> dict[int, str]:
    """The warehouse text of the notes ``note_ids`` (a page of hits at most)."""
    if not note_ids:
        return {}
    query = (
        exp.select("note_id", "note_text")
        .from_("note")
        .where(exp.column("note_id").isin(*(exp.Literal.number(int(i)) for i in note_ids)))
    )
    rows = engine.query(query).to_pylist()
    return {int(row["note_id"]): str(row["note_text"] or "") for row in rows}


def deidentified_snippet(text: str, snippet: Snippet, shift_days: int) -> dict[str, Any] | None:
    """The snippet of ``text`` as a researcher may see it: de-identified with the whole note as context.

    The note is de-identified whole (names are found by their cues: a title, "Patiente :", a signature,
    which a fragment may have cut off), then the fragment's window is cut from the result: a window edge
    inside an identifier is widened over it, and highlights touching a replaced identifier are dropped.
    ``None`` when the fragment cannot be placed in the note: nothing rather than a guess.
    """
    start = text.find(snippet.fragment)
    if not snippet.fragment or start < 0:
        return None
    try:
        spans = deidentify_note(text, shift_days=shift_days).spans
    except ValueError:  # a note longer than de-identification takes: no text
        return None
    end = start + len(snippet.fragment)
    marks = [(start + a, start + b) for a, b in snippet.highlights]
    for span in spans:
        if span.start < start < span.end:
            start = span.start
        if span.start < end < span.end:
            end = span.end
    pieces: list[str] = []
    moved: list[tuple[int, int]] = []  # (original position, shift of positions after it)
    position, offset = start, 0
    for span in (s for s in spans if start <= s.start and s.end <= end):
        pieces += [text[position : span.start], span.replacement]
        offset += len(span.replacement) - (span.end - span.start)
        moved.append((span.end, offset))
        position = span.end
    pieces.append(text[position:end])

    def place(at: int) -> int:
        return at - start + next((shift for after, shift in reversed(moved) if at >= after), 0)

    kept = [[place(a), place(b)] for a, b in marks if not any(a < span.end and span.start < b for span in spans)]
    return {"fragment": "".join(pieces), "highlights": kept}


def _pseudonymized_hits(
    hits: list[Any], key: bytes, project_id: int, texts: Mapping[int, str] | None = None
) -> list[dict[str, Any]]:
    """Hits as a project may see them: pseudonym, keyed note reference, shifted date, de-identified snippet.

    The snippet of the text is de-identified (names, contacts, numbers replaced; dates moved by the person's
    shift); the title never comes back.
    """
    if not hits:
        return []
    persons = pa.array([int(hit.fields["person_id"]) for hit in hits], pa.int64())
    pseudonyms = pseudonymize(persons, key=key, project=project_id).to_pylist()
    shifts = date_shifts(persons, key=key, project=project_id, max_days=PROJECT_DATE_SHIFT_DAYS).to_pylist()
    digests = keyed_digests(pa.array([hit.id for hit in hits], pa.int64()), key=key, project=project_id,
                            purpose="note")  # fmt: skip
    out = []
    for hit, pseudonym, shift, digest in zip(hits, pseudonyms, shifts, digests, strict=True):
        day = hit.fields.get("note_date")
        shifted = day + dt.timedelta(days=int(shift)) if isinstance(day, dt.date) else None
        found = {"person": pseudonym, "note": f"n{project_id}-{bytes(digest[:10]).hex()}",
                 "note_date": _iso(shifted), "score": round(hit.score, 4)}  # fmt: skip
        text, snippet = (texts or {}).get(hit.id), hit.snippets.get("note_text")
        shown = deidentified_snippet(text, snippet, int(shift)) if text and snippet is not None else None
        if shown is not None:
            found["snippets"] = {"note_text": shown}
        out.append(found)
    return out


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else None


def search_notes(
    caller: Caller,
    engine: Engine,
    root: Path,
    query: str,
    *,
    filters: NoteFilters | None = None,
    project_id: int | None = None,
    page: int = 1,
    page_size: int = 10,
) -> DocumentSearch:
    """Search the notes index under ``root`` (``health.document.search``; audited before the search runs).

    Raises
    ------
    massalia.text.QuerySyntaxError
        The query is malformed (what and where); checked before anything else.
    AccessDenied
        The caller may not search, or names a project they are not a member of.
    TextIndexError
        The index was never built (``massalia text index``).
    """
    chosen = filters or NoteFilters()
    tree = parse_query(query)  # a malformed query is refused before any decision or read
    SearchRequest(query, page=page, page_size=page_size)  # bounds of the page, checked early too
    # A project one may not name is refused (and audited) before anything of it is read.
    scope = project_scope(caller, ACTION, project_id) if project_id is not None else None
    policy = RowPolicy.of(scope) if scope is not None else None
    principal = caller.principal
    site = principal.site if principal.has_role(Role.CLINICIAN) else None
    digest = query_digest(caller, canonical(tree))
    detail = {"resource": {"index": NOTES_INDEX, "query_hmac": digest, "filters": chosen.as_dict(),
                           "page": page, "page_size": page_size}, "channel": caller.channel}  # fmt: skip
    grant = caller.authorize(ACTION, project_id=project_id, site=site, detail=detail)
    mode = _mode(grant)
    persons = _project_persons(engine, scope.cohort if scope is not None else None)
    index = open_notes_index(engine, root)
    if mode == "count":
        request = _request(query, chosen, grant, policy, persons, page=1, page_size=1, snippets=False)
        matching = index.distinct(request, "person_id")
        key = {"query_hmac": digest, "filters": chosen.as_dict(), "data": index.version(),
               "scope": None if policy is None else {"sites": sorted(policy.sites),
                                                     "period": [_iso(policy.period_start), _iso(policy.period_end)],
                                                     "cohort": scope.cohort_hash if scope else None}}  # fmt: skip
        release = release_counts(caller.governance, principal, ACTION, key, {"persons": matching})
        return DocumentSearch(mode, None, release.values["persons"], [], {}, 1, page_size, grant.audit_index,
                              release.describe(), ("notes", "ids", "text", "facets"))  # fmt: skip
    identified = mode == "identified"
    request = _request(query, chosen, grant, policy, persons, page=page, page_size=page_size,
                       snippets=mode in ("identified", "pseudonymized"),
                       facets=FACETS if identified else RESEARCH_FACETS)  # fmt: skip
    found = index.search(request)
    if mode == "identified":
        hits = [_identified_hit(hit) for hit in found.hits]
        withheld: tuple[str, ...] = ()
    elif mode == "pseudonymized" and project_id is not None:
        texts = _note_texts(engine, [hit.id for hit in found.hits])
        hits = _pseudonymized_hits(found.hits, caller.governance.project_key(project_id), project_id, texts)
        # The title is OMOP free text the de-identification does not see whole: withheld, like the raw text.
        withheld = ("note_type", "note_title", "raw_text")
    else:
        hits, withheld = [], ("ids", "text", "note_type")
    # No person count here: exact distinct counts cost a pass over every hit (hundreds of ms on large indexes).
    return DocumentSearch(mode, found.total, None, hits, found.facets, page, page_size, grant.audit_index,
                          {"mode": "exact"}, withheld)  # fmt: skip


__all__ = [
    "ACTION",
    "INDEX_ACTION",
    "NOTES_INDEX",
    "NOTES_SCHEMA",
    "DocumentSearch",
    "IndexSummary",
    "NoteFilters",
    "NotesIndex",
    "TextIndexError",
    "index_notes",
    "notes_backend",
    "open_notes_index",
    "query_digest",
    "search_notes",
]
