"""Every reference Circe definition imports, compiles (or is refused precisely), and round-trips."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.cohorts import (
    CirceCompatibilityWarning,
    CirceImportError,
    CohortDefinition,
    UnsupportedConstruct,
    compile_cohort,
    generated_sql,
    import_circe,
    import_circe_concept_sets,
    import_circe_report,
    to_circe,
)
from massalia.health.omop.schema import create_cdm_schema
from reference_data import REFERENCE

PRINTFRIENDLY = sorted((REFERENCE / "circe" / "printfriendly").glob("*.json"))
PHENOTYPES = sorted((REFERENCE / "phenotypes" / "cohorts").glob("*.json"))
CONCEPT_SET_FILES = {"conceptSetList.json"}

# Refused at compile time, each for a construct OMOP CDM v5.4 cannot hold (listed in docs/cohorts.md).
REFUSED = {
    "allAttributes.json": "dose_unit_concept_id of drug_exposure are not in OMOP CDM v5.4",
    "drugExposure.json": "effective_drug_dose of drug_exposure are not in OMOP CDM v5.4",
    "visit.json": r"region_concept_id .* \(Circe JSON path \$\.PrimaryCriteria\.CriteriaList\[0\]"
    r"\.VisitOccurrence\.PlaceOfServiceLocation\)",
    "visitDetail.json": "place_of_service_location: location regions need location.region_concept_id",
}


def test_reference_definitions_are_present(reference: Path) -> None:
    """Fails in CI (via the ``reference`` fixture) rather than letting the parametrized tests vanish."""
    assert PRINTFRIENDLY and PHENOTYPES, f"no Circe definitions under {reference}"


@pytest.fixture(scope="module")
def empty_cdm() -> DuckDBEngine:
    engine = DuckDBEngine()
    create_cdm_schema(engine)
    return engine


def _import(path: Path) -> CohortDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CirceCompatibilityWarning)
        return import_circe(path.read_text())


@pytest.mark.parametrize("path", PRINTFRIENDLY + PHENOTYPES, ids=lambda p: p.name)
def test_reference_definition_imports_and_compiles(path: Path, empty_cdm: DuckDBEngine) -> None:
    if path.name in CONCEPT_SET_FILES:
        concept_sets = import_circe_concept_sets(path.read_text())
        assert concept_sets and all(cs.expression.items for cs in concept_sets)
        return
    definition = _import(path)
    if path.name in REFUSED:
        with pytest.raises(UnsupportedConstruct, match=REFUSED[path.name]):
            compile_cohort(definition)
        return
    compiled = compile_cohort(definition)
    statement = compiled.single_statement()
    for dialect in ("postgres", "spark"):
        assert "final_cohort" in statement.sql(dialect=dialect)
    if path.stat().st_size < 8_000:  # large phenotypes take seconds for DuckDB to plan; small ones prove it runs
        result = empty_cdm.query(statement)
        assert result.column_names == ["cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date"]


@pytest.mark.parametrize("path", PRINTFRIENDLY + PHENOTYPES, ids=lambda p: p.name)
def test_reference_definition_round_trips(path: Path) -> None:
    if path.name in CONCEPT_SET_FILES:
        return
    definition = _import(path)
    again = import_circe(json.dumps(to_circe(definition)))
    assert again == definition
    assert CohortDefinition.from_json(definition.to_json()) == definition
    assert again.definition_hash() == definition.definition_hash()


def test_generated_sql_materializes_for_postgres() -> None:
    definition = _import(REFERENCE / "circe" / "printfriendly" / "conditionOccurrence.json")
    postgres = generated_sql(definition, "postgres")
    assert "CREATE TEMPORARY TABLE c_qualified_events AS" in postgres
    assert "ANALYZE c_qualified_events" in postgres
    assert generated_sql(definition, "duckdb").startswith("WITH")


def test_ignored_attributes_are_reported_not_silent() -> None:
    text = (REFERENCE / "circe" / "printfriendly" / "allAttributes.json").read_text()
    with pytest.warns(CirceCompatibilityWarning, match=r"DrugExposure\.ConditionStatusCS"):
        import_circe(text)
    report = import_circe_report(text)
    assert "$.PrimaryCriteria.CriteriaList[8].DrugExposure.ConditionStatusCS" in report.ignored
    with pytest.raises(CirceImportError, match="ConditionStatusCS"):
        import_circe(text, lenient=False)


def test_unknown_construct_is_refused_with_its_path() -> None:
    document = {"PrimaryCriteria": {"CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "Banana": 1}}]}}
    with pytest.raises(CirceImportError) as caught:
        import_circe(document, lenient=False)
    assert caught.value.problems[0][0] == "$.PrimaryCriteria.CriteriaList[0].ConditionOccurrence.Banana"
    with pytest.raises(CirceImportError, match="unsupported criteria type 'Tumour'"):
        import_circe({"PrimaryCriteria": {"CriteriaList": [{"Tumour": {}}]}})
    with pytest.raises(CirceImportError, match=r"\$\.Surprise"):
        import_circe({"Surprise": True})


def test_bare_concept_set_expression_imports() -> None:
    path = REFERENCE / "circe" / "checkers" / "conceptSetWithDuplicateItems.json"
    (concept_set,) = import_circe_concept_sets(path.read_text())
    ids = [item.concept.concept_id for item in concept_set.expression.items]
    assert len(ids) > len(set(ids))
