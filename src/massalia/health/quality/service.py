"""The guarded data-quality service: run the checks only after ``health.quality.run`` is allowed.

What ``massalia quality`` and ``massalia demo`` call; the rights check is the governance service's
(``rights.yaml``), the same for every interface.

Examples
--------
>>> report = run_quality_checks(caller, warehouse, out_dir=home.reports)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest
from massalia.health.quality.runner import run_quality
from massalia.quality.report import QualityReport

if TYPE_CHECKING:
    from rich.progress import Progress

MAX_CHECK_NAMES = 1000


def run_quality_checks(
    caller: Caller,
    warehouse: Engine,
    *,
    out_dir: Path | None = None,
    checks: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> QualityReport:
    """Run the data-quality checks on ``warehouse`` (``health.quality.run``), writing the reports to ``out_dir``."""
    if checks is not None and len(checks) > MAX_CHECK_NAMES:
        raise InvalidRequest(f"at most {MAX_CHECK_NAMES} check names, got {len(checks)}")
    caller.authorize("health.quality.run", detail={"resource": {"checks": sorted(checks) if checks else None}})
    return run_quality(warehouse, out_dir=out_dir, checks=checks, progress=progress)
