"""Certification of published open data: the signed checkpoint, proofs and public key, for anyone.

``GET /api/v1/opendata/certification/checkpoint`` (text, or JSON with ``?format=json``),
``…/proof/{resource_id}`` (``?version=``, ``?since=``), ``…/consistency`` (``?first=&second=``) and
``…/public-key``. All anonymous; the proof lookup takes a resource id (a UUID) only, never a name or a path.
The formats are in ``docs/opendata-verify.md``; every decision is the guarded service's
(:class:`massalia.opendata.certify.Certifier`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from massalia.api.deps import Caller, Context, action
from massalia.opendata.certify import READ_CERTIFICATES, Certifier, checkpoint_text

router = APIRouter(prefix="/opendata/certification", tags=["opendata"])

ResourceId = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]
TreeSize = Query(ge=0, le=2**62)


CHECKPOINT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The signed tree head: its text format (default), or the ledger's JSON form (format=json).",
        "content": {"text/plain": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object"}}},
    }
}


@router.get("/checkpoint", response_model=None, responses=CHECKPOINT_RESPONSES, **action(READ_CERTIFICATES))
async def checkpoint(
    context: Context, caller: Caller, format: Literal["text", "json"] = "text"
) -> PlainTextResponse | dict[str, Any]:
    """The latest signed tree head of the certification log (text format, or the ledger's JSON form)."""
    head = await run_in_threadpool(Certifier.for_home(context.home).checkpoint, caller)
    if format == "json":
        return head.to_json()
    return PlainTextResponse(checkpoint_text(head))


KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The public key, PEM.", "content": {"text/plain": {"schema": {"type": "string"}}}}
}


@router.get("/public-key", response_model=None, responses=KEY_RESPONSES, **action(READ_CERTIFICATES))
async def public_key(context: Context, caller: Caller) -> PlainTextResponse:
    """The log's Ed25519 public key (PEM); its SHA-256 (DER) is the checkpoint's ``log_id``."""
    pem = await run_in_threadpool(Certifier.for_home(context.home).public_key_pem, caller)
    return PlainTextResponse(pem.decode("ascii"))


@router.get("/proof/{resource_id}", **action(READ_CERTIFICATES))
async def proof(
    resource_id: ResourceId,
    context: Context,
    caller: Caller,
    version: Annotated[int | None, Query(ge=1, le=10**6)] = None,
    since: Annotated[int | None, TreeSize] = None,
) -> dict[str, Any]:
    """The proof bundle of a resource's file (its latest, or ``version``): what ``massalia verify`` checks."""
    certifier = Certifier.for_home(context.home)
    result: dict[str, Any] = await run_in_threadpool(certifier.proof, caller, resource_id, version, since)
    return result


@router.get("/consistency", **action(READ_CERTIFICATES))
async def consistency(
    context: Context,
    caller: Caller,
    first: Annotated[int, TreeSize],
    second: Annotated[int | None, TreeSize] = None,
) -> dict[str, Any]:
    """The consistency proof from tree size ``first`` to ``second`` (the latest checkpoint by default)."""
    certifier = Certifier.for_home(context.home)
    result: dict[str, Any] = await run_in_threadpool(certifier.consistency, caller, first, second)
    return result
