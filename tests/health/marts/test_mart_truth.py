"""The mart built on the shared generated warehouse agrees with the generator's ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.marts.builder import BUILD_TABLE, MART_TABLE
from massalia.health.marts.catalogue import VariableType, load_catalogue

Rows = dict[int, dict[str, Any]]


def test_one_row_per_person_and_every_catalogue_column(mart_warehouse: Path, mart_rows: Rows) -> None:
    catalogue = load_catalogue()
    with DuckDBEngine(mart_warehouse, read_only=True) as engine:
        persons = engine.scalar("SELECT count(*) FROM person")
        columns = [column.name for column in engine.describe(MART_TABLE)]
        staging = [name for name in engine.list_tables() if name.startswith("stg_")]
    assert len(mart_rows) == persons == 600
    assert columns == [variable.name for variable in catalogue.variables]
    assert staging == [], "a build leaves no staging table behind"


def test_values_fit_their_declared_type_and_categories(mart_rows: Rows) -> None:
    python_types = {
        VariableType.INTEGER: int,
        VariableType.NUMBER: float,
        VariableType.TEXT: str,
        VariableType.CATEGORY: str,
        VariableType.BOOLEAN: bool,
    }
    for variable in load_catalogue().variables:
        values = [row[variable.name] for row in mart_rows.values()]
        present = [value for value in values if value is not None]
        if variable.missing.default is not None:
            assert len(present) == len(values), f"{variable.name} has a default, so no nulls"
        if variable.type is VariableType.CATEGORY:
            outside = set(present) - set(variable.values or ())
            assert not outside, f"{variable.name}: values outside the catalogue {outside}"
        if variable.type in python_types:
            assert all(isinstance(value, python_types[variable.type]) for value in present), variable.name


def test_demographics_and_diagnosis_match_the_truth(mart_rows: Rows, truth_by_person: Rows) -> None:
    assert set(mart_rows) == set(truth_by_person)
    for person_id, truth in truth_by_person.items():
        row = mart_rows[person_id]
        assert row["sex"] == {"F": "female", "M": "male"}[truth["sex"]], person_id
        assert row["diagnosis_date"] == truth["diagnosis_date"], person_id
        # Rounded to 0.01 year on both sides: at most one rounding step apart.
        assert abs(row["age_at_diagnosis"] - truth["age_at_diagnosis"]) <= 0.0101, person_id
        assert row["primary_site"] == truth["cancer"], person_id
        assert row["stage_group"] == truth["stage"], person_id
        assert (row["clinical_t"], row["clinical_n"], row["clinical_m"]) == (truth["ct"], truth["cn"], truth["cm"])
        assert row["pathological_t"] == truth["pt"], person_id
        assert row["n_comorbidities"] == truth["n_comorbidities"], person_id
        assert row["comorbidity_diabetes"] is truth["comorbidity_diabetes"], person_id
        assert row["had_surgery"] is (truth["surgery"] is not None), person_id
        assert row["had_second_cancer"] is (truth["second_cancer"] is not None), person_id
        if truth["second_cancer"] is not None:
            assert row["second_cancer_site"] == truth["second_cancer"], person_id


def test_biomarkers_match_the_truth_where_tested(mart_rows: Rows, truth_by_person: Rows) -> None:
    tested = 0
    for person_id, truth in truth_by_person.items():
        for marker in ("er", "her2", "kras"):
            expected = truth[f"marker_{marker}"]
            got = mart_rows[person_id][f"{marker}_status"]
            if expected is None:
                assert got is None, (person_id, marker)
            else:
                tested += 1
                assert got == ("positive" if expected == 1 else "negative"), (person_id, marker)
    assert tested > 100


def test_vital_status_and_survival_match_the_truth(mart_rows: Rows, truth_by_person: Rows) -> None:
    deaths = 0
    censored_late: list[float] = []
    censored = 0
    for person_id, truth in truth_by_person.items():
        row = mart_rows[person_id]
        assert row["vital_status"] == ("deceased" if truth["death_observed"] else "alive"), person_id
        assert row["os_event"] is truth["death_observed"], person_id
        assert row["follow_up_days"] == row["os_days"] >= 0
        assert row["pfs_days"] <= row["os_days"], person_id
        if truth["death_observed"]:
            deaths += 1
            # Death within a day of the generator's true time (dates are whole days).
            assert abs(row["os_days"] - truth["death_time_true_days"]) <= 1, person_id
            assert row["pfs_event"] is True
        else:
            # Censored at the last contact: the generator's end of follow-up, or the end of a stay that
            # began before it and ended after it (a few days later).
            censored += 1
            excess = row["os_days"] - truth["censor_time_days"]
            assert excess <= 30, person_id
            if excess > 1:
                censored_late.append(excess)
    assert len(censored_late) <= 0.05 * censored
    assert deaths > 100


def test_relapses_after_the_staging_window_are_found_with_their_date(mart_rows: Rows, truth_by_person: Rows) -> None:
    found = 0
    for person_id, truth in truth_by_person.items():
        row = mart_rows[person_id]
        # The ETL calls a metastasis within 30 days of diagnosis staging, not progression (MAPPINGS.md).
        if truth["relapse_observed"] and truth["relapse_time_true_days"] > 31:
            found += 1
            assert row["had_relapse"] is True, person_id
            assert abs(row["days_to_relapse"] - truth["relapse_time_true_days"]) <= 1, person_id
            assert row["pfs_event"] is True and row["pfs_days"] == row["days_to_relapse"]
        elif not truth["relapse_observed"]:
            assert row["had_relapse"] is False, person_id
    assert found > 50


def test_lines_of_therapy_come_from_the_treatment_episodes(mart_rows: Rows, truth_by_person: Rows) -> None:
    with_line1 = [row for row in mart_rows.values() if row["line1_start_date"] is not None]
    assert len(with_line1) > 150
    for row in with_line1:
        assert row["n_lines"] >= 1 and row["line1_regimen"] and row["line1_modality"]
        assert row["line1_end_date"] >= row["line1_start_date"]
        if row["line2_start_date"] is not None:
            assert row["n_lines"] >= 2 and row["line2_start_date"] >= row["line1_start_date"]
    # The generator's R-CHOP first lines show their five drugs.
    rchop = [p for p, t in truth_by_person.items() if t["line1_regimen"] == "r_chop" and mart_rows[p]["line1_regimen"]]
    assert rchop
    assert all(
        set(mart_rows[p]["line1_regimen"].split("+")) >= {"cyclophosphamide", "doxorubicin", "rituximab", "vincristine"}
        for p in rchop
    )


def test_the_build_is_recorded_with_its_versions(mart_warehouse: Path) -> None:
    with DuckDBEngine(mart_warehouse, read_only=True) as engine:
        builds = engine.query(f"SELECT * FROM {BUILD_TABLE}").to_pylist()
    assert len(builds) == 1
    build = builds[0]
    assert build["rows"] == 600 and build["variables"] == len(load_catalogue().variables)
    assert build["vocabulary_version"].startswith("Massalia demo vocabulary")
    assert build["data_version"].endswith(tuple("0123456789abcdef")) and "sha256:" in build["data_version"]
    assert build["engine"] == "duckdb" and build["cdm_version"] == "5.4"
    json.dumps(build, default=str)  # a plain record
