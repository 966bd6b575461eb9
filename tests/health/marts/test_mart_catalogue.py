"""The shipped catalogue is complete and valid; a malformed one is refused with the entry named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from massalia.health.marts.catalogue import (
    CatalogueError,
    Disclosure,
    Group,
    VariableType,
    load_catalogue,
    parse_catalogue,
    read_catalogue,
)
from massalia.health.marts.docs import BEGIN, END, render_variables, update_document

ROOT = Path(__file__).resolve().parents[3]
CATALOGUE_FILE = ROOT / "src" / "massalia" / "health" / "marts" / "catalogue.yaml"


@pytest.fixture
def raw() -> dict[str, Any]:
    return yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))


def test_the_catalogue_covers_every_group_the_issue_lists() -> None:
    catalogue = load_catalogue()
    assert len(catalogue) >= 80
    assert set(catalogue.by_group()) == set(Group)
    names = {variable.name for variable in catalogue.variables}
    for wanted in (
        "sex", "care_site", "primary_site", "histology_code", "diagnosis_date", "age_at_diagnosis",
        "clinical_t", "clinical_n", "clinical_m", "pathological_t", "pathological_n", "pathological_m", "stage_group",
        "her2_status", "er_status", "pr_status", "egfr_status", "alk_status", "kras_status", "braf_status",
        "pdl1_percent", "msi_status", "ecog_at_diagnosis", "n_comorbidities", "n_lines", "line1_modality",
        "line1_regimen", "line1_start_date", "line1_end_date", "line2_modality", "had_surgery", "had_radiotherapy",
        "relapse_date", "had_second_cancer", "n_inpatient_stays", "inpatient_days", "vital_status",
        "os_days", "os_event", "pfs_days", "pfs_event", "follow_up_days",
    ):  # fmt: skip
        assert wanted in names, wanted


def test_every_variable_is_fully_described() -> None:
    for variable in load_catalogue().variables:
        assert variable.label_fr and variable.label_en and variable.definition and variable.missing.meaning
        assert isinstance(variable.disclosure, Disclosure)
        if variable.type is VariableType.DATE:
            assert variable.disclosure is Disclosure.DATE, f"{variable.name}: dates are shifted in extracts"
    assert load_catalogue().variable("person_id").disclosure is Disclosure.IDENTIFIER


def test_reading_the_file_gives_the_shipped_catalogue() -> None:
    assert read_catalogue(CATALOGUE_FILE) == load_catalogue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["variables"][1].update(type="colour"), "variables.1 (sex).type"),
        (lambda d: d["variables"][1].pop("values"), "needs its allowed 'values'"),
        (lambda d: d["variables"][2].update(values=["a"]), "only for category variables"),
        (lambda d: d["variables"][1].update(unit="kg"), "only for integer and number"),
        (lambda d: d["variables"][1].update(source="nowhere"), "unknown source 'nowhere'"),
        (lambda d: d["variables"][1].update(disclosure="secret"), "variables.1 (sex).disclosure"),
        (lambda d: d["variables"][1].update(expression="CASE WHEN"), "expression does not parse"),
        (lambda d: d["variables"].append(copy.deepcopy(d["variables"][1])), "'sex' is defined twice"),
        (lambda d: d["variables"][1]["missing"].update(default=3), "does not fit type category"),
        (lambda d: d["sources"].reverse(), "which is not an earlier source"),
        (lambda d: d["variables"].pop(0), "first variable must be person_id"),
        (lambda d: d["variables"][1].update(colour="blue"), "colour"),
    ],
)
def test_a_malformed_catalogue_is_refused_naming_the_entry(raw: dict[str, Any], change: Any, message: str) -> None:
    change(raw)
    with pytest.raises(CatalogueError, match="not a valid mart catalogue") as error:
        parse_catalogue(raw)
    assert message in str(error.value)


def test_docs_variable_tables_are_in_sync_with_the_catalogue() -> None:
    document = (ROOT / "docs" / "marts.md").read_text(encoding="utf-8")
    assert BEGIN in document and END in document
    assert update_document(document, load_catalogue()) == document, (
        "docs/marts.md is stale: run python -m massalia.health.marts.docs docs/marts.md"
    )
    assert "| `os_days` |" in render_variables(load_catalogue())
