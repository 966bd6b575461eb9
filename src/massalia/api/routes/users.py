"""Local user accounts (admins create them; admins and DPOs list them). Passwords are never returned."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
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
    return paginate(context.governance.list_users(actor=caller), limit, cursor, render=user_json)


@router.post("", status_code=201, **action("user.create"))
def create_user(body: UserBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Create a local account (admins)."""
    principal = context.governance.create_user(
        body.username, body.password, roles=body.roles, site=body.site, actor=caller, email=body.email,
        display_name=body.display_name,
    )  # fmt: skip
    return {"username": principal.subject, "roles": sorted(r.value for r in principal.roles), "site": principal.site}
