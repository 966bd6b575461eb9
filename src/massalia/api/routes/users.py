"""Local user accounts (admins create, disable and re-role them; admins and DPOs list them).

Passwords are never returned. Disabling an account or changing its roles ends its sessions at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, action
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, paginate
from massalia.governance import Role, UserInfo

router = APIRouter(prefix="/users", tags=["users"])


class UserBody(BaseModel):
    """A new local account. Without a password it can only use API tokens."""

    username: str = Field(min_length=2, max_length=64)
    password: str | None = Field(default=None, min_length=12, max_length=1024)
    roles: list[Role] = Field(min_length=1, max_length=6)
    site: str | None = Field(default=None, max_length=64, description="A clinician's care site (e.g. chu_nord).")
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=200)


def user_json(user: UserInfo) -> dict[str, Any]:
    """A user account as JSON."""
    return {
        "id": user.id, "username": user.username, "roles": sorted(role.value for role in user.roles),
        "site": user.site, "disabled": user.disabled, "created_at": user.created_at.isoformat(),
        "email": user.email, "display_name": user.display_name, "issuer": user.issuer,
    }  # fmt: skip


@router.get("", response_model=Page, **action("user.list"))
def list_users(context: Context, caller: Caller, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page:
    """User accounts (admins and DPOs), a page at a time."""
    return paginate(context.governance.list_users(actor=caller.principal), limit, cursor, render=user_json)


@router.post("", status_code=201, **action("user.create"))
def create_user(body: UserBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Create a local account (admins)."""
    principal = context.governance.create_user(
        body.username, body.password, roles=body.roles, site=body.site, actor=caller.principal, email=body.email,
        display_name=body.display_name,
    )  # fmt: skip
    return {"username": principal.subject, "roles": sorted(r.value for r in principal.roles), "site": principal.site}


Username = Annotated[str, PathParam(min_length=2, max_length=64)]


class RolesBody(BaseModel):
    """The roles an account will hold (replacing its current ones)."""

    roles: list[Role] = Field(min_length=1, max_length=6)


@router.post("/{username}/disable", **action("user.disable"))
def disable_user(username: Username, context: Context, caller: Caller) -> dict[str, Any]:
    """Disable an account (admins, never their own): its password, tokens and open sessions stop working."""
    context.governance.set_disabled(username, True, actor=caller.principal)
    return {"username": username, "disabled": True}


@router.post("/{username}/enable", **action("user.disable"))
def enable_user(username: Username, context: Context, caller: Caller) -> dict[str, Any]:
    """Re-enable a disabled account (admins, never their own); its old sessions stay ended."""
    context.governance.set_disabled(username, False, actor=caller.principal)
    return {"username": username, "disabled": False}


@router.put("/{username}/roles", **action("user.set_roles"))
def set_roles(username: Username, body: RolesBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Replace an account's roles (admins, never their own); its open sessions end."""
    principal = context.governance.set_roles(username, body.roles, actor=caller.principal)
    return {"username": principal.subject, "roles": sorted(r.value for r in principal.roles), "site": principal.site}
