"""Data quality of the OMOP warehouse: DataQualityDashboard checks as data, plus oncology rules.

The machinery (check shapes, registry, runner, JSON and HTML reports) is the core's :mod:`massalia.quality`;
this package holds health's checks and registers them.

Examples
--------
>>> from massalia.engine import connect
>>> from massalia.health.quality import run_quality
>>> with connect("duckdb") as engine:
...     report = run_quality(engine, checks=["cdmTable"])
>>> sorted(report.summary()["status"])
['error', 'failed', 'not_applicable', 'passed']
"""

from massalia.health.quality.definitions import CheckDescription, CheckInstance, check_descriptions
from massalia.health.quality.registry import CheckRegistry, default_registry
from massalia.health.quality.runner import run_quality
from massalia.quality.report import CheckResult, QualityReport

__all__ = [
    "CheckDescription",
    "CheckInstance",
    "CheckRegistry",
    "CheckResult",
    "QualityReport",
    "check_descriptions",
    "default_registry",
    "run_quality",
]
