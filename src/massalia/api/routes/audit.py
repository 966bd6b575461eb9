"""The audit trail over HTTP: verify the log, read entries (admins, DPOs), tree heads and proofs (anyone).

Tree heads and proofs are hashes and signatures only, no personal data: any party, signed in or not,
may fetch them and check them with the standalone verifier (``python -m massalia.ledger.verify``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from massalia.api.deps import Caller, Context, action
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, encode_cursor
from massalia.governance import audit_trail

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/verify", **action("audit.verify"))
def verify(context: Context, caller: Caller) -> dict[str, Any]:
    """Recompute the whole log and check every stored hash and signed tree head."""
    result = audit_trail.verify_log(caller, context.home.ledger)
    return {"ok": result.ok, "size": result.size, "summary": result.summary}


@router.get("/tree-head", **action("audit.verify"))
def tree_head(context: Context, caller: Caller) -> dict[str, Any]:
    """The latest signed tree head and the log's public key (PEM)."""
    head, public_key = audit_trail.latest_tree_head(caller, context.home.ledger)
    return {"tree_head": head, "public_key_pem": public_key}


Moment = Annotated[
    dt.date | dt.datetime | None,
    Query(description="A date (the whole day, UTC) or an ISO 8601 date and time; inclusive."),
]


@router.get("/entries", response_model=Page, **action("audit.read"))
def entries(
    context: Context,
    caller: Caller,
    actor: Annotated[str | None, Query(min_length=1, max_length=200, description="Only this user's entries.")] = None,
    action_name: Annotated[
        str | None,
        Query(alias="action", min_length=1, max_length=200, description="An action, or an area such as `health.*`."),
    ] = None,
    decision: Literal["allowed", "denied"] | None = None,
    since: Moment = None,
    until: Moment = None,
    sort: Literal["index", "actor", "action"] = "index",
    order: Literal["asc", "desc"] = "asc",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """The audit entries (default: oldest first), filtered by user, action, decision and time (admins and DPOs).

    ``total`` counts the entries passing the filters; ``index`` is each entry's place in the log, for its
    inclusion proof.
    """
    start = decode_cursor(cursor)
    which = audit_trail.EntryFilter(actor=actor, action=action_name, decision=decision, since=since, until=until,
                                    sort=sort, descending=order == "desc")  # fmt: skip
    items, size = audit_trail.search_entries(caller, context.home.ledger, which, start, limit)
    stop = start + len(items)
    return Page(items=items, next=encode_cursor(stop) if stop < size else None, total=size)


@router.get("/entries/{index}/proof", **action("audit.verify"))
def inclusion_proof(
    index: int, context: Context, caller: Caller, tree_size: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    """The inclusion proof of entry ``index`` in the tree of ``tree_size`` entries (default: the latest head)."""
    return audit_trail.inclusion_proof(caller, context.home.ledger, index, tree_size)


@router.get("/consistency", **action("audit.verify"))
def consistency_proof(
    context: Context,
    caller: Caller,
    old_size: Annotated[int, Query(ge=1)],
    new_size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """The consistency proof between two tree sizes: the log only grew, nothing was rewritten."""
    return audit_trail.consistency_proof(caller, context.home.ledger, old_size, new_size)
