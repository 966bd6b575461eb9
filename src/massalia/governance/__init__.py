"""Governance: identities, roles, rights as data, projects, access requests, audit — the one enforcement point.

Core package: it never imports a domain (``health/``...) or an interface (``api/``, ``cli*``). Every
interface resolves a :class:`Principal` into one :class:`Caller` (principal, governance, channel) and hands
it to a guarded domain service (such as ``massalia.health.research``), which calls
:meth:`Governance.authorize`. See ``docs/governance.md``.
"""

from massalia.governance.caller import Caller
from massalia.governance.model import (
    ACCESS_LEVELS,
    AccessDenied,
    AccessRequest,
    AuthenticationError,
    Grant,
    InvalidRequest,
    NotFound,
    Principal,
    Project,
    ProjectScope,
    Role,
    TokenInfo,
    UserInfo,
)
from massalia.governance.rights import Rights, RightsError, load_rights
from massalia.governance.service import Governance, operator_principal

__all__ = [
    "ACCESS_LEVELS",
    "AccessDenied",
    "AccessRequest",
    "AuthenticationError",
    "Caller",
    "Governance",
    "Grant",
    "InvalidRequest",
    "NotFound",
    "Principal",
    "Project",
    "ProjectScope",
    "Rights",
    "RightsError",
    "Role",
    "TokenInfo",
    "UserInfo",
    "load_rights",
    "operator_principal",
]
