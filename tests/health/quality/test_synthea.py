"""All checks on the real Synthea27Nj OMOP sample (28 persons), with facts verified by hand."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from massalia.engine import Engine
from massalia.health.quality import QualityReport, run_quality
from massalia.quality.report import ERROR, FAILED, PASSED, REPORT_SCHEMA_VERSION


@pytest.fixture(scope="module")
def report(synthea: Engine, tmp_path_factory: pytest.TempPathFactory) -> QualityReport:
    return run_quality(synthea, out_dir=tmp_path_factory.mktemp("quality"))


def _result(report: QualityReport, check_id: str):
    return next(r for r in report.results if r.check_id == check_id)


def test_every_check_runs_without_error(report: QualityReport) -> None:
    assert [r.check_id for r in report.results if r.status == ERROR] == []
    assert len(report.results) > 2500


@pytest.mark.parametrize(
    ("check_id", "status", "violated", "denominator"),
    [
        # every person has an observation period (checked in OBSERVATION_PERIOD.csv by hand)
        ("measurepersoncompleteness.observation_period", PASSED, 0, 28),
        ("isprimarykey.person.person_id", PASSED, 0, 28),
        ("cdmtable.person", PASSED, 0, 1),
        # 3 persons died; DEATH has one row each
        ("isrequired.death.death_date", PASSED, 0, 3),
        # every drug_exposure.quantity is 0 in this export, under DQD's minimum of 0.0000001
        ("plausiblevaluelow.drug_exposure.quantity", FAILED, 883, 883),
        # 461 of 883 days_supply exceed 365
        ("plausiblevaluehigh.drug_exposure.days_supply", FAILED, 461, 883),
        # condition_status_concept_id is 0 on all 470 conditions
        ("standardconceptrecordcompleteness.condition_occurrence.condition_status_concept_id", FAILED, 470, 470),
        ("isforeignkey.condition_occurrence.person_id", PASSED, 0, 470),
    ],
)
def test_known_facts(report: QualityReport, check_id: str, status: str, violated: int, denominator: int) -> None:
    result = _result(report, check_id)
    assert (result.status, result.num_violated_rows, result.num_denominator_rows) == (status, violated, denominator)


def test_summary_and_files(report: QualityReport, tmp_path: Path) -> None:
    summary = report.summary()
    assert sum(summary["status"].values()) == summary["total"] == len(report.results)
    counted = summary["status"]["passed"] + summary["status"]["failed"] + summary["status"]["error"]
    assert summary["pass_rate"] == round(100 * summary["status"]["passed"] / counted, 2)
    assert set(summary["category"]) == {"Completeness", "Conformance", "Plausibility"}
    data = json.loads(report.to_json(tmp_path / "q.json").read_text())
    assert set(data) == {"schema_version", "engine", "started_at", "seconds", "metadata", "summary", "results"}
    assert data["schema_version"] == REPORT_SCHEMA_VERSION
    assert set(data["results"][0]) == {
        "check_id",
        "check_name",
        "level",
        "table",
        "field",
        "concept_id",
        "unit_concept_id",
        "category",
        "subcategory",
        "context",
        "severity",
        "description",
        "num_violated_rows",
        "num_denominator_rows",
        "percent_violated",
        "threshold",
        "status",
        "message",
        "sql",
        "seconds",
    }
    assert QualityReport.from_dict(data).summary() == summary
    html = report.to_html(tmp_path / "q.html").read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert "plausibleValueLow" in html  # failed checks are listed


def test_subset_is_fast(synthea: Engine) -> None:
    started = time.perf_counter()
    report = run_quality(synthea, checks=["isRequired", "isForeignKey"])
    assert {r.check_name for r in report.results} == {"isRequired", "isForeignKey"}
    assert time.perf_counter() - started < 10
