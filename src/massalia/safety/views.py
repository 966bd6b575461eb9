"""Saved searches that notify on new matches, and saved views (filters + layout) shared within a role.

Both are kept per user in the warehouse beside the incident log (``safety_saved_search``,
``safety_saved_view``), and both are guarded services:

- a **saved search** (``safety.search.save``) belongs to its owner alone: nobody else can list, check or
  delete it (another user's id answers "not found", so ids reveal nothing). It remembers the highest report
  indexed when it was last checked; :func:`check_searches` searches only the reports indexed since
  (through :func:`massalia.safety.search.search_reports`, so with the checker's rights *today*: a user who
  lost the right to read narratives gets a noisy count, never snippets) and moves the mark on;
- a **saved view** (``safety.view.save``) is a filter and a layout (grouping, timeline bucket, map cell,
  panels) for the dashboard, map and timeline pages. Its owner may share it with one of their own safety
  roles; then every holder of that role reads it, and only its owner changes or deletes it. A view holds no
  data, only what to ask: opening it asks the guarded aggregate services with the reader's own rights.

Examples
--------
>>> saved = save_search(caller, engine, home.indexes, "Nuits bruyantes", "tapage nocturne")  # doctest: +SKIP
>>> check_searches(caller, engine, home.indexes)["searches"][0]["new_matches"]  # doctest: +SKIP
0
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

from massalia.engine import Column, Engine
from massalia.governance import Caller, InvalidRequest, NotFound, Role
from massalia.safety import search
from massalia.safety.log import REPORTS
from massalia.safety.query import IncidentFilter
from massalia.text import parse_query
from massalia.text.model import MAX_ID_SET
from massalia.text.query import canonical

SEARCHES = "safety_saved_search"
VIEWS = "safety_saved_view"
SEARCH_ACTION = "safety.search.save"
VIEW_ACTION = "safety.view.save"
MAX_SAVED = 100
"""Most saved searches, and most saved views, one user keeps."""
MAX_NAME_CHARS = 120
MAX_LAYOUT_BYTES = 8_000
SHAREABLE_ROLES = frozenset({Role.SAFETY_OPERATOR, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER})
"""Roles a view may be shared with (a partner's views stay their own: partners are separate organisations)."""

SEARCH_COLUMNS = (
    Column("search_id", "BIGINT", False),
    Column("owner", "VARCHAR", False),
    Column("name", "VARCHAR", False),
    Column("query", "VARCHAR", False),
    Column("filter_json", "VARCHAR", False),
    Column("checked_up_to", "BIGINT", False),
    Column("created_at", "TIMESTAMP", False),
    Column("checked_at", "TIMESTAMP"),
)
VIEW_COLUMNS = (
    Column("view_id", "BIGINT", False),
    Column("owner", "VARCHAR", False),
    Column("shared_with", "VARCHAR"),
    Column("name", "VARCHAR", False),
    Column("filter_json", "VARCHAR", False),
    Column("layout_json", "VARCHAR", False),
    Column("created_at", "TIMESTAMP", False),
)


def _ensure(engine: Engine, table: str, columns: tuple[Column, ...]) -> None:
    if not engine.table_exists(table):
        engine.create_empty_table(table, columns)


def _text(value: str) -> str:
    """A string as a SQL literal (quotes escaped by SQLGlot, never by hand)."""
    return exp.Literal.string(value).sql(dialect="duckdb")


def _name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= MAX_NAME_CHARS:
        raise InvalidRequest(f"name: 1 to {MAX_NAME_CHARS} characters, got {len(cleaned)}")
    return cleaned


def _next_id(engine: Engine, table: str, column: str) -> int:
    return engine.scalar_int(f"SELECT coalesce(max({column}), 0) + 1 FROM {table}")


def _owned(engine: Engine, table: str, owner: str) -> int:
    return engine.scalar_int(f"SELECT count(*) FROM {table} WHERE owner = {_text(owner)}")


def filter_from(data: Mapping[str, Any]) -> IncidentFilter:
    """An :class:`IncidentFilter` from its described form (as saved), validated again against the catalogue."""

    def day(key: str) -> dt.datetime | None:
        value = data.get(key)
        return dt.datetime.fromisoformat(value) if isinstance(value, str) and value else None

    def codes(key: str) -> tuple[str, ...]:
        values = data.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidRequest(f"filter {key}: a list of codes is expected")
        return tuple(values)

    return IncidentFilter(day("start"), day("end"), codes("zones"), codes("families"), codes("types"), codes("sources"))


# -- saved searches ----------------------------------------------------------------------------------------
def save_search(
    caller: Caller, engine: Engine, root: Path, name: str, query: str, where: IncidentFilter | None = None
) -> dict[str, Any]:
    """Keep ``query`` under ``where`` as one of the caller's saved searches; matches indexed so far are not "new"."""
    tree = parse_query(query)  # a malformed query is refused before it is kept
    chosen = where or IncidentFilter()
    label = _name(name)
    digest = search.query_digest(caller, canonical(tree))
    resource = {"saved_search": "new", "query_hmac": digest, "filter": chosen.describe()}
    caller.authorize(SEARCH_ACTION, detail={"resource": resource, "channel": caller.channel})
    _ensure(engine, SEARCHES, SEARCH_COLUMNS)
    owner = caller.principal.subject
    if _owned(engine, SEARCHES, owner) >= MAX_SAVED:
        raise InvalidRequest(f"at most {MAX_SAVED} saved searches per user: delete one first")
    search_id = _next_id(engine, SEARCHES, "search_id")
    row = {"search_id": search_id, "owner": owner, "name": label, "query": query,
           "filter_json": json.dumps(chosen.describe(), sort_keys=True), "checked_up_to": search.max_indexed(root),
           "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "checked_at": None}  # fmt: skip
    engine.insert(SEARCHES, pa.Table.from_pylist([row], schema=_schema(engine, SEARCHES)))
    return {"search_id": search_id, "name": label, "checked_up_to": row["checked_up_to"]}


def _schema(engine: Engine, table: str) -> pa.Schema:
    return engine.query(f"SELECT * FROM {table} LIMIT 0").schema


def list_searches(caller: Caller, engine: Engine) -> dict[str, Any]:
    """The caller's own saved searches (query text included: it is theirs), newest first."""
    caller.authorize(SEARCH_ACTION, detail={"resource": {"saved_search": "list"}, "channel": caller.channel})
    if not engine.table_exists(SEARCHES):
        return {"searches": []}
    rows = engine.query(
        f"SELECT search_id, name, query, filter_json, checked_up_to, created_at, checked_at FROM {SEARCHES} "
        f"WHERE owner = {_text(caller.principal.subject)} ORDER BY search_id DESC"
    ).to_pylist()
    for row in rows:
        row["filter"] = json.loads(row.pop("filter_json"))
        for key in ("created_at", "checked_at"):
            row[key] = row[key].isoformat() if row[key] else None
    return {"searches": rows}


def _own_search(engine: Engine, owner: str, search_id: int) -> dict[str, Any]:
    rows = (
        engine.query(
            f"SELECT * FROM {SEARCHES} WHERE search_id = {int(search_id)} AND owner = {_text(owner)}"
        ).to_pylist()
        if engine.table_exists(SEARCHES)
        else []
    )
    if not rows:  # another user's search is "not found" too: ids reveal nothing
        raise NotFound(f"no saved search {search_id}")
    return rows[0]


def delete_search(caller: Caller, engine: Engine, search_id: int) -> dict[str, Any]:
    """Delete one of the caller's saved searches (another user's is "not found")."""
    caller.authorize(SEARCH_ACTION, detail={"resource": {"saved_search": search_id, "delete": True},
                                            "channel": caller.channel})  # fmt: skip
    _own_search(engine, caller.principal.subject, search_id)
    engine.execute(f"DELETE FROM {SEARCHES} WHERE search_id = {int(search_id)}")
    return {"deleted": search_id}


def check_searches(caller: Caller, engine: Engine, root: Path, *, search_id: int | None = None) -> dict[str, Any]:
    """Run the caller's saved searches over the reports indexed since each was last checked; move the marks on.

    Each answer is the search service's own (``identified`` hits and total, or a released ``count``), limited
    to the new reports; a search with no new report runs nothing.
    """
    caller.authorize(SEARCH_ACTION, detail={"resource": {"saved_search": search_id or "all", "check": True},
                                            "channel": caller.channel})  # fmt: skip
    owner = caller.principal.subject
    if search_id is not None:
        saved = [_own_search(engine, owner, search_id)]
    elif engine.table_exists(SEARCHES):
        saved = engine.query(f"SELECT * FROM {SEARCHES} WHERE owner = {_text(owner)} ORDER BY search_id").to_pylist()
    else:
        saved = []
    top = search.max_indexed(root)
    results = []
    for row in saved:
        since = int(row["checked_up_to"])
        new_ids = [
            int(r["report_id"])
            for r in engine.query(
                f"SELECT report_id FROM {REPORTS} WHERE report_id > {since} AND report_id <= {int(top)} "
                f"ORDER BY report_id LIMIT {MAX_ID_SET}"
            ).to_pylist()
        ]
        entry: dict[str, Any] = {"search_id": int(row["search_id"]), "name": row["name"], "since": since,
                                 "new_reports": len(new_ids)}  # fmt: skip
        if new_ids:
            where = filter_from(json.loads(row["filter_json"]))
            found = search.search_reports(caller, engine, root, row["query"], where=where, report_ids=new_ids)
            matches = found.total if found.mode == "identified" else found.incidents
            entry.update({"mode": found.mode, "new_matches": matches, "hits": found.hits, "release": found.release})
        else:
            entry.update({"mode": None, "new_matches": 0, "hits": []})
        checked_up_to = new_ids[-1] if len(new_ids) == MAX_ID_SET else top
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        engine.execute(
            f"UPDATE {SEARCHES} SET checked_up_to = {int(max(checked_up_to, since))}, "
            f"checked_at = TIMESTAMP '{now:%Y-%m-%d %H:%M:%S}' WHERE search_id = {int(row['search_id'])}"
        )
        entry["checked_up_to"] = max(checked_up_to, since)
        results.append(entry)
    return {"searches": results, "indexed_up_to": top}


# -- saved views -------------------------------------------------------------------------------------------
def _share_role(caller: Caller, share: str | None) -> str | None:
    if share is None:
        return None
    try:
        role = Role(share)
    except ValueError:
        raise InvalidRequest(f"share: unknown role {share!r}") from None
    if role not in SHAREABLE_ROLES or role not in caller.principal.roles:
        raise InvalidRequest(f"share: a view is shared only with one of your own safety staff roles, not {share!r}")
    return role.value


def _layout(layout: Mapping[str, Any]) -> str:
    text = json.dumps(dict(layout), sort_keys=True, ensure_ascii=False)
    if len(text.encode("utf-8")) > MAX_LAYOUT_BYTES:
        raise InvalidRequest(f"layout: at most {MAX_LAYOUT_BYTES} bytes of JSON")
    return text


def save_view(
    caller: Caller,
    engine: Engine,
    name: str,
    where: IncidentFilter,
    layout: Mapping[str, Any],
    *,
    share: str | None = None,
) -> dict[str, Any]:
    """Keep a view (filter + layout) for the caller, shared with one of their safety roles if ``share`` names it."""
    label = _name(name)
    layout_json = _layout(layout)
    role = _share_role(caller, share)
    caller.authorize(VIEW_ACTION, detail={"resource": {"view": "new", "filter": where.describe(), "shared_with": role},
                                          "channel": caller.channel})  # fmt: skip
    _ensure(engine, VIEWS, VIEW_COLUMNS)
    owner = caller.principal.subject
    if _owned(engine, VIEWS, owner) >= MAX_SAVED:
        raise InvalidRequest(f"at most {MAX_SAVED} saved views per user: delete one first")
    view_id = _next_id(engine, VIEWS, "view_id")
    row = {"view_id": view_id, "owner": owner, "shared_with": role, "name": label,
           "filter_json": json.dumps(where.describe(), sort_keys=True), "layout_json": layout_json,
           "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)}  # fmt: skip
    engine.insert(VIEWS, pa.Table.from_pylist([row], schema=_schema(engine, VIEWS)))
    return {"view_id": view_id, "name": label, "shared_with": role}


def _visible(caller: Caller) -> str:
    """The predicate of the views a caller may read: their own, and those shared with a role they hold."""
    roles = sorted(r.value for r in caller.principal.roles & SHAREABLE_ROLES)
    shared = f" OR shared_with IN ({', '.join(_text(r) for r in roles)})" if roles else ""
    return f"(owner = {_text(caller.principal.subject)}{shared})"


def _view_row(row: dict[str, Any], subject: str) -> dict[str, Any]:
    return {"view_id": int(row["view_id"]), "name": row["name"], "owner": row["owner"], "mine": row["owner"] == subject,
            "shared_with": row["shared_with"], "filter": json.loads(row["filter_json"]),
            "layout": json.loads(row["layout_json"]), "created_at": row["created_at"].isoformat()}  # fmt: skip


def list_views(caller: Caller, engine: Engine) -> dict[str, Any]:
    """The views the caller may open: their own and those shared with one of their roles."""
    caller.authorize(VIEW_ACTION, detail={"resource": {"view": "list"}, "channel": caller.channel})
    if not engine.table_exists(VIEWS):
        return {"views": []}
    rows = engine.query(f"SELECT * FROM {VIEWS} WHERE {_visible(caller)} ORDER BY view_id DESC").to_pylist()
    return {"views": [_view_row(r, caller.principal.subject) for r in rows]}


def get_view(caller: Caller, engine: Engine, view_id: int) -> dict[str, Any]:
    """One view the caller may open (another user's unshared view is "not found")."""
    caller.authorize(VIEW_ACTION, detail={"resource": {"view": view_id}, "channel": caller.channel})
    rows = (
        engine.query(f"SELECT * FROM {VIEWS} WHERE view_id = {int(view_id)} AND {_visible(caller)}").to_pylist()
        if engine.table_exists(VIEWS)
        else []
    )
    if not rows:
        raise NotFound(f"no saved view {view_id}")
    return _view_row(rows[0], caller.principal.subject)


def delete_view(caller: Caller, engine: Engine, view_id: int) -> dict[str, Any]:
    """Delete one of the caller's own views (a view shared with them is theirs to read, not to delete)."""
    caller.authorize(VIEW_ACTION, detail={"resource": {"view": view_id, "delete": True}, "channel": caller.channel})
    owner = caller.principal.subject
    found = engine.table_exists(VIEWS) and engine.scalar_int(
        f"SELECT count(*) FROM {VIEWS} WHERE view_id = {int(view_id)} AND owner = {_text(owner)}"
    )
    if not found:
        raise NotFound(f"no saved view {view_id} of yours")
    engine.execute(f"DELETE FROM {VIEWS} WHERE view_id = {int(view_id)}")
    return {"deleted": view_id}


__all__ = [
    "SEARCHES",
    "VIEWS",
    "check_searches",
    "delete_search",
    "delete_view",
    "filter_from",
    "get_view",
    "list_searches",
    "list_views",
    "save_search",
    "save_view",
]
