"""Research projects, their members and access requests (filed by members, decided and revoked by a DPO).

Separation of duties is enforced by the governance service: nobody decides a request they filed or a
project they belong to, nobody adds themself, and a member added once a request is filed waits for a
DPO's approval.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, action
from massalia.api.errors import ApiError
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, paginate
from massalia.governance import AccessRequest, Project, ProjectScope

router = APIRouter(tags=["projects"])


class ScopeBody(BaseModel):
    """What the project may look at."""

    cohort: dict[str, Any] | None = None
    variables: list[str] = Field(default_factory=list, max_length=500)
    sites: list[str] = Field(default_factory=list, max_length=100)
    period_start: dt.date | None = None
    period_end: dt.date | None = None


class ProjectBody(BaseModel):
    """A new project: title, purpose, scope, access level and expiry."""

    title: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=10, max_length=5000)
    scope: ScopeBody = Field(default_factory=ScopeBody)
    access_level: Literal["aggregate", "pseudonymized"] = "aggregate"
    expires: dt.date


class MemberBody(BaseModel):
    """A user to add to a project."""

    username: str = Field(min_length=1, max_length=200)


class RequestBody(BaseModel):
    """Why access is requested."""

    justification: str = Field(min_length=1, max_length=5000)


class DecisionBody(BaseModel):
    """A DPO's decision on a request."""

    approve: bool
    reason: str = Field(min_length=1, max_length=5000)


class RevocationBody(BaseModel):
    """Why a DPO revokes an approval."""

    reason: str = Field(min_length=1, max_length=5000)


Username = Annotated[str, PathParam(min_length=2, max_length=64)]


def project_json(project: Project) -> dict[str, Any]:
    """A project as JSON."""
    return {
        "id": project.id, "title": project.title, "purpose": project.purpose, "owner": project.owner,
        "members": list(project.members), "pending_members": list(project.pending_members),
        "scope": project.scope.to_json(), "access_level": project.access_level,
        "expires": project.expires.isoformat(), "status": project.status,
        "created_at": project.created_at.isoformat(),
        "approved_at": project.approved_at.isoformat() if project.approved_at else None,
    }  # fmt: skip


def request_json(request: AccessRequest) -> dict[str, Any]:
    """An access request as JSON."""
    return {
        "id": request.id, "project_id": request.project_id, "requested_by": request.requested_by,
        "justification": request.justification, "filed_at": request.filed_at.isoformat(), "status": request.status,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at.isoformat() if request.decided_at else None, "reason": request.reason,
        "revoked_by": request.revoked_by,
        "revoked_at": request.revoked_at.isoformat() if request.revoked_at else None,
        "revoke_reason": request.revoke_reason,
    }  # fmt: skip


@router.get("/projects", response_model=Page, **action("project.list"))
def list_projects(context: Context, caller: Caller, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page:
    """Projects the caller may see (admins and DPOs: all; others: their own), a page at a time."""
    return paginate(context.governance.list_projects(actor=caller.principal), limit, cursor, render=project_json)


def _domain_part_hash(request: Request, part: str, raw: dict[str, Any] | None) -> str | None:
    """The hash of a scope's domain part (``cohort``), computed by the domain that contributed its scope model.

    The core does not know what a cohort is: the loaded domains' scope models do (health's ``CohortScope``).
    """
    if raw is None:
        return None
    contributions = request.app.state.domains
    models = [c.item for _, c in contributions.scope_models.items() if getattr(c.item, "field", None) == part]
    if len(models) != 1:
        raise ApiError(422, "invalid_request", f"No loaded domain defines the project scope's {part!r} part.")
    digest: str = models[0].digest(raw)
    return digest


@router.post("/projects", status_code=201, **action("project.create"))
def create_project(body: ProjectBody, context: Context, caller: Caller, request: Request) -> dict[str, Any]:
    """Create a project (status ``draft``); the creator becomes its first member."""
    cohort_hash = _domain_part_hash(request, "cohort", body.scope.cohort)
    scope = ProjectScope(
        cohort=body.scope.cohort,
        cohort_hash=cohort_hash, variables=tuple(body.scope.variables), sites=tuple(body.scope.sites),
        period_start=body.scope.period_start, period_end=body.scope.period_end,
    )  # fmt: skip
    project = context.governance.create_project(
        body.title,
        body.purpose,
        scope=scope,
        access_level=body.access_level,
        expires=body.expires,
        actor=caller.principal,
    )
    return project_json(project)


@router.get("/projects/{project_id}", **action("project.read"))
def get_project(project_id: int, context: Context, caller: Caller) -> dict[str, Any]:
    """One project (members, admins and DPOs)."""
    return project_json(context.governance.get_project(project_id, actor=caller.principal))


@router.post("/projects/{project_id}/members", **action("project.add_member"))
def add_member(project_id: int, body: MemberBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Add a user to a project (its owner, a DPO or an admin; never oneself).

    Once a request is filed or approved the new member is ``pending``: no data access until a DPO approves.
    """
    return project_json(context.governance.add_member(project_id, body.username, actor=caller.principal))


@router.post("/projects/{project_id}/members/{username}/approval", **action("project.approve_member"))
def approve_member(project_id: int, username: Username, context: Context, caller: Caller) -> dict[str, Any]:
    """Approve a pending member (a DPO who is neither a member nor the one who added them)."""
    return project_json(context.governance.approve_member(project_id, username, actor=caller.principal))


@router.delete("/projects/{project_id}/members/{username}", **action("project.remove_member"))
def remove_member(project_id: int, username: Username, context: Context, caller: Caller) -> dict[str, Any]:
    """Remove a member (the owner, a DPO, an admin, or the member leaving); their access ends at once."""
    return project_json(context.governance.remove_member(project_id, username, actor=caller.principal))


@router.post("/projects/{project_id}/requests", status_code=201, **action("request.file"))
def file_request(project_id: int, body: RequestBody, context: Context, caller: Caller) -> dict[str, Any]:
    """File an access request for a project (members)."""
    return request_json(
        context.governance.file_request(project_id, actor=caller.principal, justification=body.justification)
    )


@router.get("/requests", response_model=Page, **action("request.list"))
def list_requests(context: Context, caller: Caller, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page:
    """Access requests the caller may see (DPOs and admins: all; others: their projects')."""
    return paginate(context.governance.list_requests(actor=caller.principal), limit, cursor, render=request_json)


@router.post("/requests/{request_id}/decision", **action("request.decide"))
def decide_request(request_id: int, body: DecisionBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Approve or reject an access request (DPOs only); approval opens the project's data access."""
    return request_json(
        context.governance.decide_request(request_id, body.approve, body.reason, actor=caller.principal)
    )


@router.post("/requests/{request_id}/revocation", **action("request.revoke"))
def revoke_request(request_id: int, body: RevocationBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Revoke an approved request (DPOs, never for their own project); the project loses data access at once."""
    return request_json(context.governance.revoke_request(request_id, body.reason, actor=caller.principal))
