from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from massalia.health.quality.definitions import check_descriptions, dqd_definitions, instantiate, matches_filter
from massalia.health.quality.registry import DQD_CHECK_TYPES, default_registry, register_dqd_check

ROOT = Path(__file__).resolve().parents[3]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_dqd_checks", ROOT / "scripts" / "gen_dqd_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_definitions_match_reference(reference: Path) -> None:
    rebuilt = _generator().build_checks(reference / "dqd")
    assert json.loads(json.dumps(rebuilt)) == dqd_definitions()


def test_every_dqd_check_type_is_implemented() -> None:
    implemented = {cls.name for cls in DQD_CHECK_TYPES}
    assert implemented == set(check_descriptions())


@pytest.mark.parametrize(
    ("expression", "row", "expected"),
    [
        ("isRequired=='Yes'", {"isRequired": "Yes"}, True),
        ("isRequired=='Yes'", {}, False),
        ("isForeignKey=='Yes' & fkDomain!= ''", {"isForeignKey": "Yes", "fkDomain": ""}, False),
        ("isForeignKey=='Yes' & fkDomain!= ''", {"isForeignKey": "Yes", "fkDomain": "Visit"}, True),
        ("plausibleValueLow!=''", {"plausibleValueLow": "'19500101'"}, True),
    ],
)
def test_evaluation_filter(expression: str, row: dict[str, str], expected: bool) -> None:
    assert matches_filter(expression, row) is expected


def test_unknown_filter_syntax_is_an_error() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        matches_filter("isRequired in ('Yes')", {})


@pytest.mark.parametrize(
    ("check", "count"),
    [
        ("cdmTable", 39),
        ("isRequired", 180),
        ("isPrimaryKey", 28),
        ("isForeignKey", 177),
        ("fkClass", 3),
        ("withinVisitDates", 9),
        ("plausibleGender", 287),
        ("plausibleUnitConceptIds", 181),
    ],
)
def test_instances_follow_evaluation_filters(check: str, count: int) -> None:
    # Counts read off DQD's CSVs by hand (e.g. 180 'Yes' in isRequired, 28 primary keys).
    assert len(instantiate(check_descriptions()[check])) == count


def test_thresholds_come_from_the_definitions() -> None:
    by_id = {i.check_id: i for i in instantiate(check_descriptions()["standardConceptRecordCompleteness"])}
    assert by_id["standardconceptrecordcompleteness.condition_occurrence.condition_concept_id"].threshold == 5
    persons = {i.table: i for i in instantiate(check_descriptions()["measurePersonCompleteness"])}
    assert persons["observation_period"].threshold == 0
    assert persons["drug_exposure"].threshold == 95


def test_registry_rejects_unknown_names_and_duplicates() -> None:
    registry = default_registry()
    with pytest.raises(KeyError, match="notACheck"):
        registry.checks(["notACheck"])
    with pytest.raises(ValueError, match="already registered"):
        register_dqd_check(registry, DQD_CHECK_TYPES[0]())
