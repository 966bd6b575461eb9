"""Results of a quality run: one :class:`CheckResult` per check instance, and their summary."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from massalia.quality.html import render_html

PASSED = "passed"
FAILED = "failed"
NOT_APPLICABLE = "not_applicable"
ERROR = "error"
STATUSES = (PASSED, FAILED, NOT_APPLICABLE, ERROR)

REPORT_SCHEMA_VERSION = 1
"""Bumped whenever a key of the JSON report changes meaning or disappears."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one table / field / concept.

    ``percent_violated`` is in percent (0-100); the check fails when it exceeds ``threshold``
    (also in percent), as in DataQualityDashboard.
    """

    check_id: str
    check_name: str
    level: str
    table: str
    field: str | None
    concept_id: int | None
    unit_concept_id: int | None
    category: str
    subcategory: str | None
    context: str
    severity: str
    description: str
    num_violated_rows: int | None
    num_denominator_rows: int | None
    percent_violated: float | None
    threshold: float
    status: str
    message: str | None = None
    sql: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Whether the check failed (errors are reported apart)."""
        return self.status == FAILED


def evaluate(violated: int, denominator: int, threshold: float) -> tuple[float | None, str]:
    """Percent violated and status; nothing to evaluate (denominator 0) is 'not applicable'.

    Examples
    --------
    >>> evaluate(1, 200, 1.0)
    (0.5, 'passed')
    >>> evaluate(3, 200, 1.0)
    (1.5, 'failed')
    """
    if denominator <= 0:
        return None, NOT_APPLICABLE
    percent = 100.0 * violated / denominator
    return percent, FAILED if percent > threshold else PASSED


@dataclass
class QualityReport:
    """All results of a run, with the engine and timing it ran on."""

    results: list[CheckResult]
    engine: str = ""
    seconds: float = 0.0
    started_at: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def by_status(self, status: str) -> list[CheckResult]:
        """Results with ``status``."""
        return [r for r in self.results if r.status == status]

    def summary(self) -> dict[str, Any]:
        """Counts per status, per Kahn category, per severity, and DQD's overall pass rate.

        DQD's pass rate is ``passed / (passed + failed)`` where errors count as failures and
        'not applicable' checks are left out.
        """
        statuses = Counter(r.status for r in self.results)
        counted = statuses[PASSED] + statuses[FAILED] + statuses[ERROR]

        def breakdown(key: str) -> dict[str, dict[str, int]]:
            table: dict[str, dict[str, int]] = {}
            for result in self.results:
                row = table.setdefault(getattr(result, key), dict.fromkeys(STATUSES, 0))
                row[result.status] += 1
            return dict(sorted(table.items()))

        return {
            "total": len(self.results),
            "status": {status: statuses[status] for status in STATUSES},
            "pass_rate": round(100.0 * statuses[PASSED] / counted, 2) if counted else None,
            "category": breakdown("category"),
            "severity": breakdown("severity"),
            "level": breakdown("level"),
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "engine": self.engine,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "metadata": self.metadata,
            "summary": self.summary(),
            "results": [asdict(result) for result in self.results],
        }

    def to_json(self, path: Path) -> Path:
        """Write the report as JSON; return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        return path

    def to_html(self, path: Path) -> Path:
        """Write the self-contained HTML report; return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(self), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityReport:
        """Read back a report written by :meth:`to_json`."""
        return cls(
            results=[CheckResult(**row) for row in data["results"]],
            engine=data.get("engine", ""),
            seconds=data.get("seconds", 0.0),
            started_at=data.get("started_at", ""),
            metadata=data.get("metadata", {}),
        )
