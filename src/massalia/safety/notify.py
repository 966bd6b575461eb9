"""Saved searches pushed to their owners: new matches found when new reports are indexed, not only when checked.

After an indexing run commits (:func:`index_and_notify`: a load with its index, the index route or command, and
the API server's alarm timer, which indexes the live reports each tick: :func:`index_new_reports`),
:func:`notify_new_matches` runs every saved search over the reports indexed since its mark, **as its owner
stands now** (the account read again from governance: a disabled or deleted account gets nothing, and the
search goes through :func:`massalia.safety.search.search_reports`, so the owner's rights are decided again and
the decision audited, channel ``saved-search-notify``):

- an owner whose grant still reads narratives (operator, manager) gets a notification when the search matches
  new reports: the saved search, how many new reports matched, and the first matches' incident, time, zone and
  type (never a narrative nor a snippet: the notification points to the search, which shows them with the
  reader's rights of the day); the search's mark moves on, and none is made when nothing matched;
- anyone else (a role that only gets a noisy count, a role that lost the right to search) gets nothing, and the
  search is not read for them (:func:`~massalia.safety.search.search_reports` with ``identified_only``): a push
  would spend their privacy budget without their asking. Their mark stays, so a manual check still finds the
  new reports.

Notifications are rows of the warehouse (``safety_search_notification``, durable when the indexing run returns)
that only their owner lists (:func:`list_notifications`) or marks read (:func:`mark_read`; another user's id
answers "not found", as an unknown one does). The portal's saved-search list shows the unread ones as a badge.

Examples
--------
>>> notify_new_matches(governance, engine, home.indexes)  # doctest: +SKIP
{'evaluated': 3, 'notified': 1, 'skipped': 1, 'up_to': 48211}
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

from massalia.engine import Column, Engine
from massalia.governance import (
    AccessDenied,
    Caller,
    Governance,
    InvalidRequest,
    NotFound,
    Principal,
    operator_principal,
)
from massalia.safety import search, views
from massalia.safety.log import REPORTS
from massalia.text import TantivyIndex, TextIndexError
from massalia.text.model import MAX_ID_SET

NOTIFICATIONS = "safety_search_notification"
CHANNEL = "saved-search-notify"
"""The channel of the searches run for a notification (in their audit entries)."""
MAX_HITS_KEPT = 20
"""Matches named in one notification (its count covers them all)."""
MAX_LISTED = 200
"""Most notifications one listing returns (newest first)."""
MAX_MARKED = 1000
"""Most notifications marked read in one call."""
NOTIFICATION_COLUMNS = (
    Column("notification_id", "BIGINT", False),
    Column("search_id", "BIGINT", False),
    Column("owner", "VARCHAR", False),
    Column("search_name", "VARCHAR", False),
    Column("created_at", "TIMESTAMP", False),
    Column("from_report", "BIGINT", False),
    Column("to_report", "BIGINT", False),
    Column("new_matches", "BIGINT", False),
    Column("hits_json", "VARCHAR", False),
    Column("audit_index", "BIGINT"),
    Column("read_at", "TIMESTAMP"),
)
_EVALUATING = threading.Lock()
HIT_FIELDS = ("report_id", "incident_id", "occurred_at", "zone", "family", "type_code", "source")
"""What a notification keeps of a match: where to look, never what the narrative says."""


def _text(value: str) -> str:
    """A string as a SQL literal (quotes escaped by SQLGlot, never by hand)."""
    return exp.Literal.string(value).sql(dialect="duckdb")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _owners(governance: Governance) -> dict[str, Principal]:
    """Every enabled account as it stands now (roles and site), by username."""
    return {
        user.username: Principal(user.username, user.roles, user.id, user.site)
        for user in governance.list_users(actor=operator_principal())
        if not user.disabled
    }


def _new_reports(engine: Engine, since: int, top: int) -> list[int]:
    rows = engine.query(
        f"SELECT report_id FROM {REPORTS} WHERE report_id > {int(since)} AND report_id <= {int(top)} "
        f"ORDER BY report_id LIMIT {MAX_ID_SET}"
    ).to_pylist()
    return [int(r["report_id"]) for r in rows]


def _move_mark(engine: Engine, search_id: int, up_to: int) -> None:
    engine.execute(
        f"UPDATE {views.SEARCHES} SET checked_up_to = {int(up_to)}, "
        f"checked_at = TIMESTAMP '{_now():%Y-%m-%d %H:%M:%S}' WHERE search_id = {int(search_id)} "
        f"AND checked_up_to < {int(up_to)}"
    )


def _record(engine: Engine, row: dict[str, Any], since: int, up_to: int, found: search.ReportSearch) -> int:
    if not engine.table_exists(NOTIFICATIONS):
        engine.create_empty_table(NOTIFICATIONS, NOTIFICATION_COLUMNS)
    number = engine.scalar_int(f"SELECT coalesce(max(notification_id), 0) + 1 FROM {NOTIFICATIONS}")
    hits = [{key: hit.get(key) for key in HIT_FIELDS} for hit in found.hits[:MAX_HITS_KEPT]]
    record = {"notification_id": number, "search_id": int(row["search_id"]), "owner": row["owner"],
              "search_name": row["name"], "created_at": _now(), "from_report": since, "to_report": up_to,
              "new_matches": int(found.total or 0), "hits_json": json.dumps(hits, ensure_ascii=False, default=str),
              "audit_index": found.audit_index, "read_at": None}  # fmt: skip
    schema = engine.query(f"SELECT * FROM {NOTIFICATIONS} LIMIT 0").schema
    engine.insert(NOTIFICATIONS, pa.Table.from_pylist([record], schema=schema))
    return number


def notify_new_matches(governance: Governance, engine: Engine, root: Path) -> dict[str, Any]:
    """Run the saved searches behind the index over its new reports, as their owners now stand; record matches.

    Returns how many searches were evaluated, notified (a match recorded) and skipped (owner gone or disabled,
    right lost, or a count-only grant), and the report id the index reaches.
    """
    # One evaluation at a time in a process (an index request and the alarm tick may end together): the second
    # reads the marks the first moved, so a match is notified once (two server processes on PostgreSQL could
    # still both notify one match: no cross-process lock here).
    with _EVALUATING:
        return _notify(governance, engine, root)


def _notify(governance: Governance, engine: Engine, root: Path) -> dict[str, Any]:
    summary = {"evaluated": 0, "notified": 0, "skipped": 0, "up_to": 0}
    if not engine.table_exists(views.SEARCHES):
        return summary
    top = search.max_indexed(root)
    summary["up_to"] = top
    saved = engine.query(
        f"SELECT * FROM {views.SEARCHES} WHERE checked_up_to < {int(top)} ORDER BY search_id"
    ).to_pylist()
    if not saved:
        return summary
    owners = _owners(governance)
    for row in saved:
        summary["evaluated"] += 1
        principal = owners.get(row["owner"])
        if principal is None:  # a deleted or disabled account: nothing, and nothing read for it
            summary["skipped"] += 1
            continue
        since = int(row["checked_up_to"])
        new_ids = _new_reports(engine, since, top)
        up_to = new_ids[-1] if len(new_ids) == MAX_ID_SET else top
        if not new_ids:
            _move_mark(engine, int(row["search_id"]), up_to)
            continue
        owner = Caller(principal, governance, CHANNEL)
        where = views.filter_from(json.loads(row["filter_json"]))
        try:
            found = search.search_reports(owner, engine, root, row["query"], where=where, report_ids=new_ids,
                                          identified_only=True)  # fmt: skip
        except AccessDenied:  # the owner's roles no longer search (the refusal is audited)
            summary["skipped"] += 1
            continue
        if found.mode != "identified":  # a count-only grant: nothing pushed, the mark stays for a manual check
            summary["skipped"] += 1
            continue
        if found.total:
            _record(engine, row, since, up_to, found)
            summary["notified"] += 1
        _move_mark(engine, int(row["search_id"]), up_to)
    return summary


def index_and_notify(caller: Caller, engine: Engine, root: Path, *, rebuild: bool = False) -> dict[str, Any]:
    """Index the new reports (:func:`massalia.safety.search.index_reports`), then notify the saved searches."""
    summary = search.index_reports(caller, engine, root, rebuild=rebuild).as_dict()
    summary["notifications"] = notify_new_matches(caller.governance, engine, root)
    return summary


def index_new_reports(governance: Governance, engine: Engine, root: Path) -> dict[str, Any] | None:
    """The alarm timer's hook: index the reports that arrived since the last index run (live ingest), then notify.

    Nothing is done (nor audited) when no report is newer than the index, when the index was never built (a
    first build is ``massalia safety index``'s, not a timer's: minutes at a million reports), or when another
    process is writing the index (the next tick tries again). The run is the local operator's, channel ``timer``.
    """
    if not engine.table_exists(REPORTS) or not TantivyIndex.exists(root, search.INDEX_NAME):
        return None
    newest = engine.scalar_int(f"SELECT coalesce(max(report_id), 0) FROM {REPORTS}")
    if newest <= search.max_indexed(root):
        return None
    try:
        return index_and_notify(Caller(operator_principal(), governance, "timer"), engine, root)
    except TextIndexError:  # another process holds the index's writer: the next tick
        return None


def _notification(row: dict[str, Any]) -> dict[str, Any]:
    return {"notification_id": int(row["notification_id"]), "search_id": int(row["search_id"]),
            "search_name": row["search_name"], "created_at": row["created_at"].isoformat(),
            "new_matches": int(row["new_matches"]), "from_report": int(row["from_report"]),
            "to_report": int(row["to_report"]), "hits": json.loads(row["hits_json"]),
            "read": row["read_at"] is not None}  # fmt: skip


def list_notifications(caller: Caller, engine: Engine, *, unread_only: bool = False) -> dict[str, Any]:
    """The caller's own notifications, newest first (``safety.search.save``), and how many are unread."""
    caller.authorize(views.SEARCH_ACTION, detail={"resource": {"notifications": "list"}, "channel": caller.channel})
    if not engine.table_exists(NOTIFICATIONS):
        return {"notifications": [], "unread": 0}
    mine = f"owner = {_text(caller.principal.subject)}"
    unread = engine.scalar_int(f"SELECT count(*) FROM {NOTIFICATIONS} WHERE {mine} AND read_at IS NULL")
    only = " AND read_at IS NULL" if unread_only else ""
    rows = engine.query(
        f"SELECT * FROM {NOTIFICATIONS} WHERE {mine}{only} ORDER BY notification_id DESC LIMIT {MAX_LISTED}"
    ).to_pylist()
    return {"notifications": [_notification(r) for r in rows], "unread": unread}


def mark_read(caller: Caller, engine: Engine, notification_ids: Sequence[int]) -> dict[str, Any]:
    """Mark some of the caller's notifications read; an id that is not theirs is "not found" (as an unknown one).

    Raises
    ------
    NotFound
        One of the ids is not one of the caller's notifications (nothing is marked then).
    """
    ids = sorted({int(i) for i in notification_ids})
    if not 1 <= len(ids) <= MAX_MARKED:
        raise InvalidRequest(f"notification_ids: 1 to {MAX_MARKED} ids")
    caller.authorize(views.SEARCH_ACTION, detail={"resource": {"notifications": ids, "read": True},
                                                  "channel": caller.channel})  # fmt: skip
    listed = ", ".join(str(i) for i in ids)
    mine = f"owner = {_text(caller.principal.subject)} AND notification_id IN ({listed})"
    found = engine.scalar_int(f"SELECT count(*) FROM {NOTIFICATIONS} WHERE {mine}") if engine.table_exists(
        NOTIFICATIONS) else 0  # fmt: skip
    if found != len(ids):
        raise NotFound("no such notification of yours")
    engine.execute(f"UPDATE {NOTIFICATIONS} SET read_at = TIMESTAMP '{_now():%Y-%m-%d %H:%M:%S}' WHERE {mine}")
    return {"read": ids}


__all__ = [
    "NOTIFICATIONS",
    "index_and_notify",
    "index_new_reports",
    "list_notifications",
    "mark_read",
    "notify_new_matches",
]
