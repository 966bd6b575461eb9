"""``Governance``: the one enforcement point for identities, projects, requests, rights and the audit trail.

Every interface (CLI, API, portal) and every guarded domain service calls :meth:`Governance.authorize`
before acting; decisions on actions marked ``audit: true`` in ``rights.yaml`` (allowed and denied) are
appended to the transparency log before anything is returned. Metadata lives in the SQLAlchemy
database at ``metadata_url``; the ledger in ``ledger_path``.
"""

from __future__ import annotations

from massalia.governance.access_requests import AccessRequests
from massalia.governance.accounts import Accounts
from massalia.governance.auditing import (
    AUDIT_VALUE_MAX_BYTES,
    bounded_audit_value,
    operator_account,
    operator_principal,
)
from massalia.governance.projects import Projects
from massalia.governance.store import ANONYMOUS_AUDIT_BURST, ANONYMOUS_AUDIT_REFILL_S, MAX_ROW_ID, row_id
from massalia.governance.tokens import DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME, Tokens

__all__ = [
    "ANONYMOUS_AUDIT_BURST",
    "ANONYMOUS_AUDIT_REFILL_S",
    "AUDIT_VALUE_MAX_BYTES",
    "DEFAULT_TOKEN_LIFETIME",
    "MAX_ROW_ID",
    "MAX_TOKEN_LIFETIME",
    "Governance",
    "bounded_audit_value",
    "operator_account",
    "operator_principal",
    "row_id",
]


class Governance(Accounts, Tokens, Projects, AccessRequests):
    """The governance service over one metadata database and one ledger.

    Its parts live in one module each: the store (:mod:`~massalia.governance.store`), the audit trail
    (:mod:`~massalia.governance.auditing`), the rights check (:mod:`~massalia.governance.authorization`),
    accounts, tokens, projects and access requests; this class is their facade, with the same methods.

    Parameters
    ----------
    metadata_url
        SQLAlchemy URL of the metadata database (SQLite by default, PostgreSQL in production).
    ledger_path
        The transparency log directory (audit trail).
    key_path
        The master key file sealing project secrets (default: ``<ledger_path>/../keys/master.key``).
    rights
        The rights table (default: the packaged ``rights.yaml``, validated).
    clock
        Today's date and time in UTC (tests move it to check expiry).
    bound_anonymous_audit
        Audit decisions on anonymous calls at a bounded rate (:data:`ANONYMOUS_AUDIT_BURST` at once, then
        one per :data:`ANONYMOUS_AUDIT_REFILL_S` seconds). The API turns it on: there anyone can make
        such calls for free. Off, every decision on an audited action is written.

    Examples
    --------
    >>> from massalia.config import home  # doctest: +SKIP
    >>> gov = Governance.from_home(home())  # doctest: +SKIP
    >>> gov.authorize(Principal.anonymous(), "audit.verify").action  # doctest: +SKIP
    'audit.verify'
    """
