"""Data quality, the core's machinery: check shapes, a registry, a runner, JSON and HTML reports.

Each domain registers its own checks (health: OHDSI DataQualityDashboard's and the oncology rules, in
:mod:`massalia.health.quality`); the runner plans, batches per table and evaluates them the same way.
"""

from __future__ import annotations

from massalia.quality.checks import (
    CheckDefinitionError,
    CheckType,
    Fragment,
    Join,
    MetadataCheck,
    QueryCheck,
    ScanCheck,
)
from massalia.quality.definitions import CheckDescription, CheckInstance
from massalia.quality.registry import CheckRegistry, RegisteredCheck
from massalia.quality.report import CheckResult, QualityReport
from massalia.quality.runner import run_checks

__all__ = [
    "CheckDefinitionError",
    "CheckDescription",
    "CheckInstance",
    "CheckRegistry",
    "CheckResult",
    "CheckType",
    "Fragment",
    "Join",
    "MetadataCheck",
    "QualityReport",
    "QueryCheck",
    "RegisteredCheck",
    "ScanCheck",
    "run_checks",
]
