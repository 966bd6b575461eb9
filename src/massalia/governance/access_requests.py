"""Access requests: filed by a project's members, decided (or revoked) by a DPO who is not one of them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from massalia.governance.authorization import Authorization
from massalia.governance.model import (
    AccessDenied,
    AccessRequest,
    InvalidRequest,
    NotFound,
    Principal,
    Role,
)
from massalia.governance.rights import decide
from massalia.governance.store import row_id
from massalia.governance.tables import MemberRow, RequestRow


class AccessRequests(Authorization):
    """Requests for access to a project's data (a part of ``Governance``)."""

    def file_request(self, project_id: int, *, actor: Principal, justification: str) -> AccessRequest:
        """File an access request for a project the actor is a member of (``request.file``, checked first)."""
        self.authorize(actor, "request.file", project_id=project_id, detail={"resource": {"project_id": project_id}})
        if not justification or len(justification.strip()) < 10:
            raise InvalidRequest("a request needs a justification (at least 10 characters)")
        with self._session() as session:
            project = self._project_row(session, project_id)
            pending = session.scalar(
                select(RequestRow.id).where(RequestRow.project_id == project_id, RequestRow.status == "pending")
            )
            if pending is not None:
                raise InvalidRequest(f"project {project_id} already has a pending request ({pending})")
            row = RequestRow(
                project_id=project_id, requested_by=actor.subject, justification=justification.strip(),
                filed_at=self._clock(), status="pending",
            )  # fmt: skip
            session.add(row)
            if project.status in ("draft", "rejected", "revoked"):
                project.status = "pending"
            session.flush()
            return self._request(row)

    def _decision_conflict(self, session: Session, actor: Principal, project_id: int, filed_by: str) -> str | None:
        """Why ``actor`` may not decide for the project (separation of duties), or ``None``."""
        project = self._project_row(session, project_id)
        if actor.subject == filed_by:
            return "nobody decides a request they filed"
        if actor.subject == project.owner:
            return "nobody decides for a project they own"
        if self._is_member_row(session, project_id, actor):
            return "nobody decides for a project they are a member of"
        return None

    def decide_request(self, request_id: int, approve: bool, reason: str, *, actor: Principal) -> AccessRequest:
        """Approve or reject a pending request (``request.decide``: DPOs only); the decision is final.

        Separation of duties: nobody decides a request they filed, or for a project they own or belong
        to (the refusal is audited). The decision is written to the transparency log (who, when, why)
        before it takes effect.
        """
        with self._session() as session:
            row = session.get(RequestRow, row_id(request_id, "request"))
            project_id = row.project_id if row is not None else None
            found = None if row is None else (row.status, row.decided_by)
            requested_by = row.requested_by if row is not None else None
        verdict = "approved" if approve else "rejected"
        detail = {"resource": {"request_id": int(request_id), "project_id": project_id}, "verdict": verdict,
                  "reason": str(reason or "").strip()}  # fmt: skip
        if found is None or found[0] != "pending":
            # Nothing about the request is revealed to a caller who may not decide: they get the same
            # (audited) refusal as for a pending one. A DPO learns it is missing or already decided.
            try:
                decide(self.rights, actor, "request.decide", self.facts(actor, project_id))
            except AccessDenied:
                self.authorize(actor, "request.decide", project_id=project_id, detail=detail)
                raise
            if found is None:
                raise NotFound(f"no access request {request_id}")
            raise InvalidRequest(f"request {request_id} was already {found[0]} by {found[1]}")
        if not reason or not reason.strip():
            raise InvalidRequest("a decision needs a reason")
        if project_id is None or requested_by is None:  # found is a pending request: both are known
            raise NotFound(f"no access request {request_id}")
        with self._session() as session:
            conflict = self._decision_conflict(session, actor, project_id, requested_by)
        if conflict:
            raise self._refuse(actor, "request.decide", conflict, project_id=project_id, resource=detail["resource"],
                               verdict=verdict)  # fmt: skip
        grant = self.authorize(actor, "request.decide", project_id=project_id, detail=detail)
        with self._session() as session:
            row = session.get(RequestRow, row_id(request_id, "request"))
            if row is None:
                raise NotFound(f"no access request {request_id}")
            if row.status != "pending":
                raise InvalidRequest(f"request {request_id} was already {row.status} by {row.decided_by}")
            now = self._clock()
            row.status, row.decided_by, row.decided_at, row.reason = verdict, actor.subject, now, reason.strip()
            row.ledger_index = grant.audit_index
            project = self._project_row(session, project_id)
            if approve:
                project.status, project.approved_at = "approved", now
            elif project.status != "approved":
                project.status = "rejected"
            session.flush()
            return self._request(row)

    def revoke_request(self, request_id: int, reason: str, *, actor: Principal) -> AccessRequest:
        """Revoke an approved request (``request.revoke``: a DPO, audited): the project loses data access at once.

        The same separation of duties as a decision applies. The project goes to ``revoked``; its
        members may file a new request. Only a DPO learns whether the request exists (checked first).
        """
        self._precheck(actor, "request.revoke", None, resource={"request_id": row_id(request_id, "request")})
        with self._session() as session:
            row = session.get(RequestRow, row_id(request_id, "request"))
            if row is None:
                raise NotFound(f"no access request {request_id}")
            if row.status != "approved":
                raise InvalidRequest(f"request {request_id} is {row.status}: only an approved request is revoked")
            project_id = row.project_id
            conflict = self._decision_conflict(session, actor, project_id, row.requested_by)
        if not reason or not reason.strip():
            raise InvalidRequest("a revocation needs a reason")
        resource = {"request_id": int(request_id), "project_id": project_id}
        self._precheck(actor, "request.revoke", project_id, resource=resource)
        if conflict:
            raise self._refuse(actor, "request.revoke", conflict, project_id=project_id, resource=resource)
        self.authorize(actor, "request.revoke", project_id=project_id,
                       detail={"resource": resource, "reason": reason.strip()})  # fmt: skip
        with self._session() as session:
            row = session.get(RequestRow, int(request_id))
            if row is None or row.status != "approved":
                raise InvalidRequest(f"request {request_id} is no longer approved")
            row.status, row.revoked_by, row.revoked_at = "revoked", actor.subject, self._clock()
            row.revoke_reason = reason.strip()
            project = self._project_row(session, project_id)
            project.status = "revoked"
            session.flush()
            return self._request(row)

    def list_requests(self, *, actor: Principal) -> list[AccessRequest]:
        """Requests the actor may see: all for DPOs and admins, those of the actor's projects for others."""
        self.authorize(actor, "request.list")
        with self._session() as session:
            query = select(RequestRow).order_by(RequestRow.id)
            if not actor.has_role(Role.ADMIN, Role.DPO):
                if actor.user_id is None:
                    return []
                query = query.join(MemberRow, MemberRow.project_id == RequestRow.project_id).where(
                    MemberRow.user_id == actor.user_id
                )
            return [self._request(row) for row in session.scalars(query).all()]
