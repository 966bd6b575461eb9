"""The single rights check of the platform: facts about a caller, the decision, and its audited trace."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from massalia.governance.auditing import RESERVED_AUDIT_KEYS, AuditTrail
from massalia.governance.model import (
    AccessDenied,
    Grant,
    InvalidRequest,
    NotFound,
    Principal,
)
from massalia.governance.rights import Facts, decide
from massalia.governance.store import row_id
from massalia.governance.tables import MemberRow, ProjectRow, UserRow
from massalia.ledger import TransparencyLog


class Authorization(AuditTrail):
    """Decides every action against the rights table (a part of ``Governance``)."""

    def _refuse(self, actor: Principal, action: str, reason: str, **detail: Any) -> AccessDenied:
        """Audit a refusal decided here (separation of duties) rather than by the rights table; return the error."""
        self.audit(actor, action, decision="denied", denied_because=reason, **detail)
        return AccessDenied(action, reason)

    def _precheck(self, actor: Principal, action: str, project_id: int | None = None, **detail: Any) -> None:
        """Refuse (audited, by :meth:`authorize`) before any lookup when the rights table denies ``action`` anyway.

        Lookups come after, so nobody without the right learns from a 404 which users or projects exist;
        the audited decision itself is made by :meth:`authorize` once the separation-of-duties checks pass.
        """
        try:
            decide(self.rights, actor, action, self.facts(actor, project_id))
        except AccessDenied:
            self.authorize(actor, action, project_id=project_id, detail=detail)
            raise

    def facts(self, principal: Principal, project_id: int | None = None, site: str | None = None) -> Facts:
        """What the rights conditions are evaluated against for ``principal`` and ``project_id``."""
        if project_id is None:
            return Facts(data_site=site)
        number = row_id(project_id, "project")

        def read(session: Session) -> Facts:
            project = session.get(ProjectRow, number)
            if project is None:
                return Facts(project_id=number, data_site=site)
            member = False
            row = session.get(MemberRow, (project.id, principal.user_id)) if principal.user_id is not None else None
            # A pending member (added after the request was filed) is nobody's member until a DPO approves.
            if row is not None and row.status == "active":
                # A disabled account, or a principal whose id and name disagree, is nobody's member.
                user = session.get(UserRow, principal.user_id)
                member = user is not None and not user.disabled and user.username == principal.subject
            approved = project.status == "approved" and self._today() <= project.expires
            return Facts(project.id, bool(member), approved, project.access_level, site)

        # Read once per API request (the same call checks a caller several times): see read_once_per_request.
        return self._read_once(("facts", principal.user_id, principal.subject, number, site), read)

    def may_name_project(self, principal: Principal, project_id: int) -> bool:
        """Whether ``principal`` may act under ``project_id``: it may read that project (``project.read``).

        Members of a project, and the roles that oversee every project (admins, DPOs), may name it in a
        call; nobody else, so that naming another project's id reveals nothing of its scope (variables,
        sites, period, cohort) or of its existence. A token's scopes are set aside here: they narrow the
        actions a token may call, not the projects its owner belongs to. Not audited: the caller's action
        is, with this refusal as its reason.
        """
        unscoped = dataclasses.replace(principal, scopes=None)
        try:
            decide(self.rights, unscoped, "project.read", self.facts(principal, project_id))
        except AccessDenied:
            return False
        return True

    def authorize(
        self,
        principal: Principal,
        action: str,
        *,
        project_id: int | None = None,
        site: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Grant:
        """Decide whether ``principal`` may do ``action``; the single rights check of the platform.

        For actions marked ``audit: true``, and for every action of the local operator (whose power comes
        from holding the files, so the trail must show each use), the decision (allowed or denied, with
        ``detail``) is appended to the transparency log before this returns; the grant then carries its
        index. Decisions on anonymous calls are audited at a bounded rate (see :meth:`_anonymous_quota`).

        Raises
        ------
        AccessDenied
            With the reason (no rule for the role, not a member, project not approved or expired...).
        """
        if not isinstance(principal, Principal):
            raise AccessDenied(str(action), "no principal")
        extra = dict(detail or {})
        clash = set(extra) & RESERVED_AUDIT_KEYS
        if clash:
            raise InvalidRequest(f"audit detail may not use the reserved key(s) {', '.join(sorted(clash))}")
        facts = self.facts(principal, project_id, site)
        audited = self.rights.audited(action) or principal.auth == "operator"
        if audited and principal.auth == "anonymous" and self._bound_anonymous_audit:
            skipped = self._anonymous_quota()
            audited = skipped is not None
            if skipped:
                extra["anonymous_entries_skipped"] = skipped
        try:
            grant = decide(self.rights, principal, action, facts)
        except AccessDenied as denied:
            if audited:
                self.audit_decision(principal, action, decision="denied", denied_because=denied.reason,
                                    project_id=project_id, **extra)  # fmt: skip
            raise
        if audited:
            flags = {"raw_counts": grant.raw_counts, "row_level": grant.row_level,
                     "pseudonymized": grant.pseudonymized, "site": grant.site}  # fmt: skip
            # Inside audit_before_answer the entry is being written while the caller reads: its index is the gate's.
            index = self.audit_decision(principal, action, decision="allowed", project_id=project_id, grant=flags,
                                        **extra)  # fmt: skip
            grant = Grant(**{**grant.__dict__, "audit_index": index})
        return grant

    def verify_audit_log(self, *, actor: Principal) -> Any:
        """Recompute the whole audit log and check every hash and signed tree head (``audit.verify``).

        Returns the ledger's verification report (``.ok``, ``.summary()``).

        Raises
        ------
        NotFound
            There is no audit log yet.
        """
        # Whether a log exists is no secret (tree heads are public); checking first keeps the operator's
        # audited decision from creating the very log it was asked to verify.
        if not self.ledger_path.is_dir():
            raise NotFound(f"no audit log at {self.ledger_path}")
        self.authorize(actor, "audit.verify")
        with TransparencyLog(self.ledger_path, readonly=True) as log:
            return log.verify()
