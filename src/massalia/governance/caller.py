"""``Caller``: who acts, under which governance, through which channel (every guarded service's first argument).

Each interface builds one in one place (the API in :func:`massalia.api.deps.get_caller`, the CLI in
:func:`massalia.cli.common.governed`) and hands it to the domains' services, which alone decide what it
may do (:meth:`Caller.authorize`) and record the ``channel`` in the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from massalia.governance.model import Grant, Principal
from massalia.governance.service import Governance


@dataclass(frozen=True)
class Caller:
    """The principal acting, the governance deciding for it and the channel the call came through.

    Examples
    --------
    >>> from massalia.governance import Principal
    >>> caller = Caller(Principal.anonymous(), gov, "cli")  # doctest: +SKIP
    >>> caller.authorize("health.vocabulary.read").action  # doctest: +SKIP
    'health.vocabulary.read'
    """

    principal: Principal
    governance: Governance
    channel: str | None = None

    def authorize(
        self,
        action: str,
        *,
        project_id: int | None = None,
        site: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Grant:
        """:meth:`Governance.authorize <massalia.governance.service.Governance.authorize>` for this caller.

        Used by the guarded services, never by an interface. The channel is not added here: each service
        records it in its audit detail as it always has.
        """
        return self.governance.authorize(self.principal, action, project_id=project_id, site=site, detail=detail)
