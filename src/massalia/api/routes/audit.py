"""The audit trail over HTTP: verify the log, read entries (admins, DPOs), tree heads and proofs (anyone).

Tree heads and proofs are hashes and signatures only, no personal data: any party, signed in or not,
may fetch them and check them with the standalone verifier (``python -m massalia.ledger.verify``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query

from massalia.api.deps import Caller, Context, action
from massalia.api.errors import ApiError
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, encode_cursor

router = APIRouter(prefix="/audit", tags=["audit"])


@contextmanager
def _read_log(context: Context) -> Iterator[Any]:
    from massalia.ledger import TransparencyLog

    if not context.home.ledger.is_dir():
        raise ApiError(404, "not_found", "No audit log yet (nothing has been audited).")
    with TransparencyLog(context.home.ledger, readonly=True) as log:
        yield log


@router.get("/verify", **action("audit.verify"))
def verify(context: Context, caller: Caller) -> dict[str, Any]:
    """Recompute the whole log and check every stored hash and signed tree head."""
    context.governance.authorize(caller, "audit.verify")
    with _read_log(context) as log:
        report = log.verify()
        size = log.size
    return {"ok": bool(report.ok), "size": size, "summary": report.summary()}


@router.get("/tree-head", **action("audit.verify"))
def tree_head(context: Context, caller: Caller) -> dict[str, Any]:
    """The latest signed tree head and the log's public key (PEM)."""
    context.governance.authorize(caller, "audit.verify")
    with _read_log(context) as log:
        head = log.latest_tree_head()
        if head is None:
            raise ApiError(404, "not_found", "The audit log has no signed tree head yet.")
        return {"tree_head": head.to_json(), "public_key_pem": log.public_key_pem.decode()}


@router.get("/entries", response_model=Page, **action("audit.read"))
def entries(
    context: Context,
    caller: Caller,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """The audit entries, oldest first, a page at a time (admins and DPOs)."""
    context.governance.authorize(caller, "audit.read")
    start = decode_cursor(cursor)
    with _read_log(context) as log:
        size = log.size
        stop = min(start + limit, size)
        items = [{"index": i, "entry": log.get(i).entry} for i in range(start, stop)]
    return Page(items=items, next=encode_cursor(stop) if stop < size else None, total=size)


@router.get("/entries/{index}/proof", **action("audit.verify"))
def inclusion_proof(
    index: int, context: Context, caller: Caller, tree_size: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    """The inclusion proof of entry ``index`` in the tree of ``tree_size`` entries (default: the latest head)."""
    context.governance.authorize(caller, "audit.verify")
    with _read_log(context) as log:
        head = log.latest_tree_head()
        size = tree_size or (head.tree_size if head else log.size)
        if not 0 <= index < size <= log.size:
            raise ApiError(404, "not_found", f"No entry {index} in a tree of {size} entries.")
        return {"proof": log.inclusion_proof(index, size).to_json(), "leaf_hash": log.get(index).leaf_hash.hex()}


@router.get("/consistency", **action("audit.verify"))
def consistency_proof(
    context: Context,
    caller: Caller,
    old_size: Annotated[int, Query(ge=1)],
    new_size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """The consistency proof between two tree sizes: the log only grew, nothing was rewritten."""
    context.governance.authorize(caller, "audit.verify")
    with _read_log(context) as log:
        new = new_size or log.size
        if not old_size <= new <= log.size:
            raise ApiError(404, "not_found", f"No consistency proof from {old_size} to {new} (log size {log.size}).")
        return {"proof": log.consistency_proof(old_size, new).to_json()}
