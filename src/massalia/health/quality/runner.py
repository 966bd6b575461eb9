"""Run health's data-quality checks (DQD's and the oncology rules) on an OMOP warehouse."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from massalia.engine.base import Engine
from massalia.health.omop.schema import cdm_tables
from massalia.health.quality.registry import default_registry
from massalia.quality.registry import CheckRegistry
from massalia.quality.report import QualityReport
from massalia.quality.runner import run_checks

if TYPE_CHECKING:
    from rich.progress import Progress

COHORT_TABLES = ("cohort", "cohort_definition")
"""Results tables the oncology rules may read beside the CDM's own."""


def run_quality(
    engine: Engine,
    *,
    out_dir: Path | None = None,
    checks: Sequence[str] | None = None,
    progress: Progress | None = None,
    registry: CheckRegistry | None = None,
) -> QualityReport:
    """Run the data-quality checks (DQD's and the oncology rules) on an OMOP warehouse.

    Parameters
    ----------
    engine
        The warehouse engine.
    out_dir
        When given, ``quality.json`` and ``quality.html`` are written there.
    checks
        Check names to run (DQD names such as ``isRequired``, or oncology rule names); all by default.
    progress
        A Rich progress display to report on.
    registry
        Check types to run; :func:`~massalia.health.quality.registry.default_registry` by default.

    Returns
    -------
    QualityReport
        One result per check instance, in registry order.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> with connect("duckdb") as engine:
    ...     report = run_quality(engine, checks=["cdmTable"])
    >>> report.summary()["status"]["failed"] > 0  # an empty database lacks every CDM table
    True
    """
    return run_checks(
        engine,
        registry or default_registry(),
        tables=[*cdm_tables(), *COHORT_TABLES],
        out_dir=out_dir,
        checks=checks,
        progress=progress,
    )
