"""The governance vocabulary: roles, principals, grants, projects, access requests and the errors.

These are plain frozen values shared by every interface (CLI, API, portal) and by the domain services;
they carry no database session and no behaviour beyond validation, so any layer may import them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

AccessLevel = Literal["aggregate", "pseudonymized"]
ACCESS_LEVELS: tuple[str, ...] = ("aggregate", "pseudonymized")
AuthMethod = Literal["password", "token", "oidc", "operator", "anonymous"]
AUTH_METHODS: tuple[str, ...] = ("password", "token", "oidc", "operator", "anonymous")


class Role(StrEnum):
    """What a person does on the platform; rights (``rights.yaml``) are granted to roles.

    Examples
    --------
    >>> Role("dpo") is Role.DPO
    True
    """

    ADMIN = "admin"
    DATA_ENGINEER = "data_engineer"
    DPO = "dpo"
    RESEARCHER = "researcher"
    CLINICIAN = "clinician"
    PUBLIC = "public"
    # The public-safety domain's roles (massalia/safety/rights.yaml says what each may do).
    SAFETY_OPERATOR = "safety_operator"  # an operator of the urban supervision centre
    SAFETY_ANALYST = "safety_analyst"
    SAFETY_MANAGER = "safety_manager"
    PARTNER = "partner"  # an outside partner: aggregates only


class AccessDenied(PermissionError):  # noqa: N818 (the contract's name: a refusal, not a crash)
    """The principal may not do ``action``; ``reason`` says which rule or condition failed."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"access denied to {action}: {reason}")
        self.action = action
        self.reason = reason


class AuthenticationError(Exception):
    """Credentials (password, token, OIDC identity) were missing, wrong, expired, revoked or disabled."""


class NotFound(LookupError):  # noqa: N818 (the contract's name)
    """A user, project, request or token that does not exist (or that the caller may not know exists)."""


class InvalidRequest(ValueError):  # noqa: N818 (the contract's name)
    """Bad input to a governance operation (a malformed username, a past expiry, an unknown role...)."""


@dataclass(frozen=True)
class Principal:
    """Who is acting: an authenticated user, a token holder, the local operator or an anonymous visitor.

    Parameters
    ----------
    subject
        The username (``"anonymous"`` for nobody).
    roles
        The roles the principal acts with.
    user_id
        The metadata row of the user, when there is one (``None`` for the operator and anonymous).
    site
        A clinician's care site (e.g. ``chu_nord``): identified data is limited to it.
    auth
        How the identity was established: ``password``, ``token``, ``oidc``, ``operator`` or ``anonymous``.
    scopes
        The actions a token may be used for (``None``: everything the roles allow).
    expires_at
        When the token a principal authenticated with expires (``None`` for other methods): a token
        only mints tokens that expire no later than itself.

    Examples
    --------
    >>> Principal.anonymous().roles == frozenset({Role.PUBLIC})
    True
    """

    subject: str
    roles: frozenset[Role]
    user_id: int | None = None
    site: str | None = None
    auth: str = "password"
    scopes: frozenset[str] | None = None
    expires_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(Role(role) for role in self.roles))
        if self.scopes is not None:
            object.__setattr__(self, "scopes", frozenset(self.scopes))
        if self.auth not in AUTH_METHODS:
            raise InvalidRequest(f"Principal.auth must be one of {', '.join(AUTH_METHODS)}, got {self.auth!r}")

    @classmethod
    def anonymous(cls) -> Principal:
        """The unauthenticated visitor: role ``public`` only."""
        return cls(subject="anonymous", roles=frozenset({Role.PUBLIC}), auth="anonymous")

    def has_role(self, *roles: Role | str) -> bool:
        """Whether the principal holds any of ``roles``."""
        return any(Role(role) in self.roles for role in roles)


@dataclass(frozen=True)
class Grant:
    """What an allowed check permits.

    Attributes
    ----------
    action
        The action that was authorized.
    raw_counts
        May see counts below the small-cell threshold (otherwise every aggregate is suppressed).
    row_level
        May see person-level rows.
    pseudonymized
        Person-level rows must be pseudonymized (keyed per project) and dates shifted.
    project_id
        The project under which the access happens, if any.
    site
        Identified data is limited to this care site (clinicians), if not ``None``.
    audit_index
        The transparency-log entry recording this decision (audited actions only).
    """

    action: str
    raw_counts: bool = False
    row_level: bool = False
    pseudonymized: bool = False
    project_id: int | None = None
    site: str | None = None
    audit_index: int | None = None


@dataclass(frozen=True)
class ProjectScope:
    """What a project may look at: a cohort definition, variables, sites and a period.

    The cohort definition is kept as JSON (the governance core does not know the cohort model); its
    hash is the SHA-256 of its canonical JSON unless the caller supplies the domain's own hash.

    Examples
    --------
    >>> scope = ProjectScope(cohort={"title": "lung"}, variables=("age",), sites=("chu_nord",))
    >>> len(scope.cohort_hash)
    64
    """

    cohort: dict[str, Any] | None = None
    cohort_hash: str | None = None
    variables: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    period_start: dt.date | None = None
    period_end: dt.date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "sites", tuple(self.sites))
        if self.cohort is not None and self.cohort_hash is None:
            canonical = json.dumps(self.cohort, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            object.__setattr__(self, "cohort_hash", hashlib.sha256(canonical.encode()).hexdigest())
        if self.period_start and self.period_end and self.period_start > self.period_end:
            raise InvalidRequest(f"project period starts ({self.period_start}) after it ends ({self.period_end})")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings)."""
        return {
            "cohort": self.cohort,
            "cohort_hash": self.cohort_hash,
            "variables": list(self.variables),
            "sites": list(self.sites),
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "period_end": self.period_end.isoformat() if self.period_end else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProjectScope:
        """The inverse of :meth:`to_json`."""
        unknown = set(data) - {"cohort", "cohort_hash", "variables", "sites", "period_start", "period_end"}
        if unknown:
            raise InvalidRequest(f"project scope: unknown field(s) {', '.join(sorted(unknown))}")

        def day(value: Any, name: str) -> dt.date | None:
            if value in (None, ""):
                return None
            try:
                return dt.date.fromisoformat(str(value))
            except ValueError:
                raise InvalidRequest(f"project scope: {name} must be a date YYYY-MM-DD, got {value!r}") from None

        return cls(
            cohort=data.get("cohort"),
            cohort_hash=data.get("cohort_hash"),
            variables=tuple(data.get("variables") or ()),
            sites=tuple(data.get("sites") or ()),
            period_start=day(data.get("period_start"), "period_start"),
            period_end=day(data.get("period_end"), "period_end"),
        )


ProjectStatus = Literal["draft", "pending", "approved", "rejected", "revoked"]


@dataclass(frozen=True)
class Project:
    """A research project: a purpose, members, a scope, an access level, an expiry and its approval state."""

    id: int
    title: str
    purpose: str
    owner: str
    members: tuple[str, ...]
    scope: ProjectScope
    access_level: str
    expires: dt.date
    status: str
    created_at: dt.datetime
    approved_at: dt.datetime | None = None
    pending_members: tuple[str, ...] = ()
    """Members waiting for a DPO's approval (no data access yet); ``members`` are the active ones."""

    def is_active(self, today: dt.date | None = None) -> bool:
        """Approved and not expired (the project expires at the end of its ``expires`` day)."""
        return self.status == "approved" and (today or dt.date.today()) <= self.expires


RequestStatus = Literal["pending", "approved", "rejected", "revoked"]


@dataclass(frozen=True)
class AccessRequest:
    """A request to use a project's scope, and its decision (who, when, why)."""

    id: int
    project_id: int
    requested_by: str
    justification: str
    filed_at: dt.datetime
    status: str
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    reason: str | None = None
    revoked_by: str | None = None
    revoked_at: dt.datetime | None = None
    revoke_reason: str | None = None


@dataclass(frozen=True)
class UserInfo:
    """A user account as listed (never the password hash)."""

    id: int
    username: str
    roles: frozenset[Role]
    site: str | None
    disabled: bool
    created_at: dt.datetime
    email: str | None = None
    display_name: str | None = None
    issuer: str | None = None


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed (never its secret)."""

    id: int
    username: str
    prefix: str
    scopes: frozenset[str] | None
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
