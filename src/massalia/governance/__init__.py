"""Governance: identities, roles, rights as data, projects, access requests, audit — the one enforcement point.

Core package: it never imports a domain (``health/``...) or an interface (``api/``, ``cli*``). Every
interface resolves a :class:`Principal` and calls :meth:`Governance.authorize` (directly, or through a
guarded domain service such as ``massalia.health.research``). See ``docs/governance.md``.
"""

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
