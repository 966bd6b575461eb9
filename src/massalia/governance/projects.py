"""Research projects: their members, their scope, and their secret (pseudonyms, date shifts)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from massalia.governance import keys
from massalia.governance.authorization import Authorization
from massalia.governance.model import (
    ACCESS_LEVELS,
    InvalidRequest,
    NotFound,
    Principal,
    Project,
    ProjectScope,
    Role,
)
from massalia.governance.tables import MemberRow, ProjectRow, ProjectSecretRow


class Projects(Authorization):
    """Projects and their members (a part of ``Governance``)."""

    def create_project(
        self,
        title: str,
        purpose: str,
        *,
        scope: ProjectScope,
        access_level: str,
        expires: dt.date,
        actor: Principal,
    ) -> Project:
        """Create a project (``project.create``); it starts ``draft`` (no data access until a DPO approves).

        The creator becomes its owner, and its first member when they have an account.
        """
        if not title or not title.strip() or len(title) > 200:
            raise InvalidRequest("project title must be 1 to 200 characters")
        if not purpose or len(purpose.strip()) < 10:
            raise InvalidRequest("project purpose must say why (at least 10 characters)")
        if access_level not in ACCESS_LEVELS:
            raise InvalidRequest(f"access level must be one of {', '.join(ACCESS_LEVELS)}, got {access_level!r}")
        if not isinstance(scope, ProjectScope):
            raise InvalidRequest("scope must be a ProjectScope")
        if not isinstance(expires, dt.date) or expires <= self._today():
            raise InvalidRequest(f"project expiry must be a date after today, got {expires!r}")
        self.authorize(actor, "project.create", detail={
            "resource": {"title": title.strip(), "scope": scope.to_json(), "access_level": access_level,
                         "expires": expires.isoformat()},
        })  # fmt: skip
        now = self._clock()
        with self._session() as session:
            row = ProjectRow(
                title=title.strip(), purpose=purpose.strip(), owner=actor.subject, scope=json.dumps(scope.to_json()),
                cohort_hash=scope.cohort_hash, access_level=access_level, expires=expires, status="draft",
                created_at=now,
            )  # fmt: skip
            session.add(row)
            session.flush()
            if actor.user_id is not None:
                session.add(MemberRow(project_id=row.id, user_id=actor.user_id, added_at=now, added_by=actor.subject))
                session.flush()
            return self._project(session, row)

    def add_member(self, project_id: int, username: str, *, actor: Principal) -> Project:
        """Add a user to a project (``project.add_member``, audited): its owner, a DPO or an admin.

        Nobody adds themself. A member added to a draft (or rejected, or revoked) project is active: a
        DPO decides the project's request with its members in view. A member added once a request is
        filed or approved starts ``pending``: no data access until a DPO approves them
        (:meth:`approve_member`).

        Raises
        ------
        AccessDenied
            Self-addition, or an actor who is neither the owner, a DPO nor an admin (both audited).
        """
        resource = {"project_id": int(project_id), "username": username}
        self._precheck(actor, "project.add_member", project_id, resource=resource)
        with self._session() as session:
            project = self._project_row(session, project_id)
            user = self._user_row(session, username)
            owner = project.owner
        if user.username == actor.subject or (actor.user_id is not None and user.id == actor.user_id):
            raise self._refuse(actor, "project.add_member", "nobody adds themself to a project",
                               project_id=project_id, resource=resource)  # fmt: skip
        if actor.subject != owner and not actor.has_role(Role.ADMIN, Role.DPO):
            raise self._refuse(actor, "project.add_member", "only the project's owner, a DPO or an admin adds members",
                               project_id=project_id, resource=resource)  # fmt: skip
        self.authorize(actor, "project.add_member", project_id=project_id, detail={"resource": resource})
        with self._session() as session:
            project = self._project_row(session, project_id)
            if session.get(MemberRow, (project_id, user.id)) is None:
                status = "active" if project.status in ("draft", "rejected", "revoked") else "pending"
                session.add(MemberRow(project_id=project_id, user_id=user.id, added_at=self._clock(),
                                      added_by=actor.subject, status=status))  # fmt: skip
                session.flush()
            return self._project(session, project)

    def approve_member(self, project_id: int, username: str, *, actor: Principal) -> Project:
        """Approve a pending member (``project.approve_member``: a DPO, audited); they then have data access.

        The deciding DPO may not be the member, the one who added them, nor a member of the project.

        Raises
        ------
        InvalidRequest
            The user is not a pending member of the project.
        AccessDenied
            Not a DPO, or a conflict of duties (audited).
        """
        resource = {"project_id": int(project_id), "username": username}
        self._precheck(actor, "project.approve_member", project_id, resource=resource)
        with self._session() as session:
            self._project_row(session, project_id)
            user = self._user_row(session, username)
            member = session.get(MemberRow, (project_id, user.id))
            if member is None or member.status != "pending":
                raise InvalidRequest(f"{username!r} is not a pending member of project {project_id}")
            conflict = None
            if username == actor.subject:
                conflict = "nobody approves their own membership"
            elif member.added_by == actor.subject:
                conflict = "nobody approves a member they added"
            elif self._is_member_row(session, project_id, actor):
                conflict = "a member of the project cannot approve its members"
        if conflict:
            raise self._refuse(actor, "project.approve_member", conflict, project_id=project_id, resource=resource)
        self.authorize(actor, "project.approve_member", project_id=project_id, detail={"resource": resource})
        with self._session() as session:
            member = session.get(MemberRow, (project_id, user.id))
            if member is None or member.status != "pending":
                raise InvalidRequest(f"{username!r} is not a pending member of project {project_id}")
            member.status, member.approved_by, member.approved_at = "active", actor.subject, self._clock()
            session.flush()
            return self._project(session, self._project_row(session, project_id))

    def remove_member(self, project_id: int, username: str, *, actor: Principal) -> Project:
        """Remove a member (``project.remove_member``, audited): the owner, a DPO, an admin, or the member leaving.

        The owner cannot be removed (the project would have nobody answerable for it). Data access
        ends at once: rights are evaluated against the membership table on every call.
        """
        resource = {"project_id": int(project_id), "username": username}
        self._precheck(actor, "project.remove_member", project_id, resource=resource)
        with self._session() as session:
            project = self._project_row(session, project_id)
            user = self._user_row(session, username)
            owner = project.owner
            if session.get(MemberRow, (project_id, user.id)) is None:
                raise NotFound(f"{username!r} is not a member of project {project_id}")
        if actor.subject not in (owner, username) and not actor.has_role(Role.ADMIN, Role.DPO):
            raise self._refuse(actor, "project.remove_member",
                               "only the owner, a DPO, an admin or the member themself removes a member",
                               project_id=project_id, resource=resource)  # fmt: skip
        if username == owner:
            raise InvalidRequest(f"{username!r} owns project {project_id} and cannot be removed from it")
        self.authorize(actor, "project.remove_member", project_id=project_id, detail={"resource": resource})
        with self._session() as session:
            row = session.get(MemberRow, (project_id, user.id))
            if row is not None:
                session.delete(row)
                session.flush()
            return self._project(session, self._project_row(session, project_id))

    def get_project(self, project_id: int, *, actor: Principal) -> Project:
        """A project (``project.read``: admins, DPOs, members).

        Authorized before the lookup: to a caller who may not read it, a missing project and another's
        project give the same refusal.
        """
        self.authorize(actor, "project.read", project_id=project_id)
        with self._session() as session:
            return self._project(session, self._project_row(session, project_id))

    def list_projects(self, *, actor: Principal) -> list[Project]:
        """Projects the actor may read: all for admins and DPOs, the actor's own for others."""
        self.authorize(actor, "project.list")
        with self._session() as session:
            query = select(ProjectRow).order_by(ProjectRow.id)
            if not actor.has_role(Role.ADMIN, Role.DPO):
                if actor.user_id is None:
                    return []
                query = query.join(MemberRow, MemberRow.project_id == ProjectRow.id).where(
                    MemberRow.user_id == actor.user_id
                )
            return [self._project(session, row) for row in session.scalars(query).all()]

    def project_scope(self, project_id: int) -> ProjectScope:
        """A project's scope, for the domain services that enforce it (no rights check: server-side only)."""
        number = int(project_id)
        return self._read_once(
            ("scope", number),
            lambda session: ProjectScope.from_json(json.loads(self._project_row(session, number).scope)),
        )

    # -- project secrets ------------------------------------------------------------------------------
    def project_key(self, project_id: int) -> bytes:
        """The project's 32-byte secret (keyed-hash pseudonyms, date shifts), created on first use.

        Server-side only: no API returns it. Stored encrypted under the master key file (see
        :mod:`massalia.governance.keys`).
        """
        master = keys.load_or_create_master_key(self.key_path)
        with self._session() as session:
            self._project_row(session, project_id)
            row = session.get(ProjectSecretRow, project_id)
            if row is None:
                secret = keys.new_project_secret()
                nonce, ciphertext = keys.seal(master, project_id, secret)
                session.add(ProjectSecretRow(project_id=project_id, nonce=nonce, ciphertext=ciphertext,
                                             created_at=self._clock()))  # fmt: skip
                try:
                    session.flush()
                except IntegrityError:  # created concurrently: use theirs
                    session.rollback()
                    return self.project_key(project_id)
                return secret
            return keys.unseal(master, project_id, row.nonce, row.ciphertext)
