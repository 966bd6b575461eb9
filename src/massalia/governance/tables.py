"""The governance metadata tables (SQLAlchemy 2), in the platform metadata database.

Every table name starts with ``gov_`` so the governance schema can share the metadata database with
the other core packages. The schema is created by the Alembic migrations in
``massalia/governance/migrations`` (see :func:`massalia.governance.schema.upgrade`); these models are
the application's view of it and the migrations' reference.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the governance tables (their own metadata, apart from other packages')."""


class UserRow(Base):
    """A user account: local (argon2id password hash) or from an OIDC provider (issuer + subject)."""

    __tablename__ = "gov_user"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_gov_user_oidc"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(String(255), nullable=False)  # comma-separated Role values
    site: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    email: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    oidc_issuer: Mapped[str | None] = mapped_column(String(512))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    # Bumped when the account is disabled, its roles change or one of its tokens is revoked: a cookie
    # session opened under an older epoch is refused on its next request.
    session_epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class TokenRow(Base):
    """An API token: only the SHA-256 of the secret is kept; the plain token is shown once."""

    __tablename__ = "gov_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("gov_user.id"), nullable=False, index=True)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False)  # the token's first characters, to recognise it
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    scopes: Mapped[str | None] = mapped_column(Text)  # JSON list; NULL: everything the roles allow
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ProjectRow(Base):
    """A research project: purpose, scope (cohort hash + JSON, variables, sites, period), level, expiry."""

    __tablename__ = "gov_project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    purpose: Mapped[str] = mapped_column(Text, nullable=False)
    owner: Mapped[str] = mapped_column(String(64), nullable=False)
    scope: Mapped[str] = mapped_column(Text, nullable=False)  # ProjectScope.to_json()
    cohort_hash: Mapped[str | None] = mapped_column(String(64))
    access_level: Mapped[str] = mapped_column(String(16), nullable=False)
    expires: Mapped[dt.date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class MemberRow(Base):
    """A member of a project: ``active`` (counts as a member) or ``pending`` (waits for a DPO's approval).

    A member added to a project under review or already approved starts ``pending``: no data access
    until a DPO who is neither the adder nor a member approves them (``approved_by``).
    """

    __tablename__ = "gov_project_member"

    project_id: Mapped[int] = mapped_column(ForeignKey("gov_project.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("gov_user.id"), primary_key=True)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    added_by: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active", server_default="active")
    approved_by: Mapped[str | None] = mapped_column(String(128))
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class RequestRow(Base):
    """An access request; its decision columns are written once, by a DPO, and never changed."""

    __tablename__ = "gov_access_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("gov_project.id"), nullable=False, index=True)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    justification: Mapped[str] = mapped_column(Text, nullable=False)
    filed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)
    ledger_index: Mapped[int | None] = mapped_column(Integer)  # the decision's entry in the transparency log
    # An approval can be revoked later (status "revoked"): who, when and why are kept beside the decision.
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class ProjectSecretRow(Base):
    """A project's secret, encrypted (AES-256-GCM) under the home's master key file."""

    __tablename__ = "gov_project_secret"

    project_id: Mapped[int] = mapped_column(ForeignKey("gov_project.id"), primary_key=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12), nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class DisclosureReleaseRow(Base):
    """One noisy release of counts, stored once per normalized query so the same query gets the same answer.

    ``query_key`` is the SHA-256 of the normalized query (action, query, cells): the store is global,
    not per user, so colluding users asking the same query learn nothing more than one of them.
    Privacy loss is kept in micro-epsilon integers so budget sums are exact.
    """

    __tablename__ = "gov_disclosure_release"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_key: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    released: Mapped[str] = mapped_column(Text, nullable=False)  # JSON {cell: rounded noisy count or null}
    micro_epsilon: Mapped[int] = mapped_column(Integer, nullable=False)  # what the first release cost
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class DisclosureChargeRow(Base):
    """One user's access to a release, with what it cost them (0 when the release already existed)."""

    __tablename__ = "gov_disclosure_charge"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    release_id: Mapped[int | None] = mapped_column(ForeignKey("gov_disclosure_release.id"))
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # release | repeat | lockout
    micro_epsilon: Mapped[int] = mapped_column(Integer, nullable=False)
    result_fingerprint: Mapped[str | None] = mapped_column(String(64))  # keyed hash of the true counts
    charged_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
