"""The demo passes its own quality checks (issue 11, "What a new user met").

The demo warehouse (the generator's default dirty rate, 600 patients) is checked with every DQD and
oncology rule. No failure is allowed: codes the demo vocabulary lacks (``src/massalia/health/omop/vocab/SOURCES.md``,
"Known gaps") are the ETL's local source concepts (ids from 2,000,000,000), as OHDSI sites do for their own codes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.quality.runner import run_quality
from massalia.quality.report import QualityReport


@pytest.fixture(scope="module")
def demo_quality(demo_warehouse: Path) -> QualityReport:
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        return run_quality(engine)


def _failed(report: QualityReport) -> dict[str, str]:
    return {
        r.check_id: f"{r.num_violated_rows} of {r.num_denominator_rows} ({r.percent_violated}%)"
        for r in report.results
        if r.failed
    }


def test_demo_fails_no_quality_check(demo_quality: QualityReport) -> None:
    assert not _failed(demo_quality)


def test_demo_etl_has_no_vocabulary_warning(demo_warehouse: Path) -> None:
    warnings = (demo_warehouse.parent / "etl_warnings.txt").read_text(encoding="utf-8").splitlines()
    assert [w for w in warnings if "not in the vocabulary" in w] == []


def test_demo_observations_all_have_a_concept(demo_warehouse: Path) -> None:
    """clcc_sud's last contacts carry 4203711 "Follow-up status"; chu_nord's laterality its own local concept."""
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        counts = engine.query(
            "SELECT observation_source_value AS source, count(*) AS n, "
            "count(*) FILTER (WHERE observation_concept_id = 0) AS unmapped, "
            "count(*) FILTER (WHERE observation_concept_id = 4203711) AS follow_up, "
            "count(*) FILTER (WHERE observation_concept_id >= 2000000000) AS local FROM observation GROUP BY 1"
        ).to_pylist()
    by_source = {row["source"]: row for row in counts}
    assert by_source["last_contact_date"]["follow_up"] == by_source["last_contact_date"]["n"] > 0
    assert by_source["lateralite"]["local"] == by_source["lateralite"]["n"] > 0
    assert not [row for row in counts if row["unmapped"]]


def test_demo_drug_codes_the_vocabulary_lacks_have_local_source_concepts(demo_warehouse: Path) -> None:
    """The ATC 5th codes of the 2019-2021 revision have their real ids; the WHO 2022 L01F codes, which the
    vocabulary at hand lacks, get local source concepts (ATC-local) mapped to their ingredient."""
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        rows = engine.query(
            "SELECT DISTINCT d.drug_source_value AS code, c.vocabulary_id AS vocabulary FROM drug_exposure AS d "
            "LEFT JOIN concept AS c ON c.concept_id = d.drug_source_concept_id"
        ).to_pylist()
    assert not [r for r in rows if r["vocabulary"] is None]
    local = sorted(r["code"] for r in rows if r["vocabulary"] == "ATC-local")
    assert local and all(code.startswith("L01F") for code in local), local
