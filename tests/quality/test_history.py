"""The quality runs' history (quality.history): one line per run, a report from before the history counted
once, a torn line skipped, and the trend between consecutive runs."""

from __future__ import annotations

import json
from pathlib import Path

from massalia.quality.history import HISTORY_FILE, REPORT_FILE, read_runs, record_run, with_trend
from massalia.quality.report import CheckResult, QualityReport


def _report(started_at: str, statuses: list[str]) -> QualityReport:
    results = [
        CheckResult(check_id=f"c{i}", check_name="isRequired", level="field", table="person", field=f"f{i}",
                    concept_id=None, unit_concept_id=None, category="Conformance", subcategory=None,
                    context="Verification", severity="fatal", description="required", num_violated_rows=0,
                    num_denominator_rows=1, percent_violated=0.0, threshold=0.0, status=status)
        for i, status in enumerate(statuses)
    ]  # fmt: skip
    return QualityReport(results=results, engine="duckdb", seconds=0.1, started_at=started_at)


def test_each_run_is_kept_and_the_trend_is_the_difference(tmp_path: Path) -> None:
    old = _report("2026-01-01T00:00:00+00:00", ["passed", "failed", "failed"])
    old.to_json(tmp_path / REPORT_FILE)  # a folder from before the history: a report, no line
    new = _report("2026-02-01T00:00:00+00:00", ["passed", "passed", "failed", "passed"])
    record_run(tmp_path, new)
    new.to_json(tmp_path / REPORT_FILE)
    with (tmp_path / HISTORY_FILE).open("a", encoding="utf-8") as history:
        history.write('{"started_at": "2026-03')  # a run killed while writing its line
    runs = read_runs(tmp_path)
    assert [run["started_at"] for run in runs] == [new.started_at]  # the old report was replaced, not recorded
    record_run(tmp_path, _report("2026-03-01T00:00:00+00:00", ["failed"] * 4))
    trend = with_trend(read_runs(tmp_path))
    assert [run["run"] for run in trend] == [1, 2] and trend[0]["trend"] is None
    assert trend[1]["trend"]["status"] == {"passed": -3, "failed": 3, "not_applicable": 0, "error": 0}
    assert trend[1]["trend"]["category"]["Conformance"] == {"failed": 3, "pass_rate": -75.0}


def test_a_report_without_history_counts_as_one_run(tmp_path: Path) -> None:
    _report("2026-01-01T00:00:00+00:00", ["passed"]).to_json(tmp_path / REPORT_FILE)
    runs = read_runs(tmp_path)
    assert len(runs) == 1 and runs[0]["summary"]["pass_rate"] == 100.0
    assert json.loads((tmp_path / REPORT_FILE).read_text())["started_at"] == runs[0]["started_at"]
