"""Each mart variable is filled on generated data at the rate the generator's ground truth implies.

``ecog_at_diagnosis`` was empty for every patient (0 of 5,000) although ECOG drives the generator's
hazards: no site wrote it in a structured extract. A variable the generator decides for every
patient must be filled for every patient; one it decides for some (a grade, a tested biomarker, a
death before the cut-off) must be filled for those; every other variable must be filled for some.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from massalia.health.marts.catalogue import Provenance, load_catalogue
from massalia.health.synth.cohort import MARKERS

Rows = dict[int, dict[str, Any]]
Truth = dict[str, Any]

TOLERANCE = 0.02
"""Share of patients by which a fill rate may differ from the truth's (clean generated data: ~0)."""

EXPECTED_FILL: dict[str, Callable[[Truth], bool]] = {
    "ecog_at_diagnosis": lambda t: t["ecog"] is not None,
    "stage_group": lambda t: t["stage"] is not None,
    "clinical_t": lambda t: t["ct"] is not None,
    "clinical_n": lambda t: t["cn"] is not None,
    "clinical_m": lambda t: t["cm"] is not None,
    "pathological_t": lambda t: t["pt"] is not None,
    "pathological_n": lambda t: t["pn"] is not None,
    # ch_est's PMSI extracts carry no grade: only the two other sites can fill it.
    "tumour_grade": lambda t: (t["grade"] or 0) > 0 and t["site"] in ("chu_nord", "clcc_sud"),
    "death_date": lambda t: bool(t["death_observed"]),
    "age_at_death": lambda t: bool(t["death_observed"]),
    "diagnosis_date": lambda t: True,
    "age_at_diagnosis": lambda t: True,
    "primary_site": lambda t: True,
    **{
        f"{marker}_status": (lambda m: lambda t: t[f"marker_{m}"] is not None)(marker)
        for marker in MARKERS
        if marker not in ("ki67", "pdl1")
    },
}
"""Mart variable → whether the truth says a patient has a value for it."""

MAY_BE_EMPTY_HERE = frozenset(
    {
        # The generator draws no pathological M (pM is rarely known: no distant surgery specimen).
        "pathological_m",
        # Events the 600-patient sample need not contain: each is checked on larger data elsewhere.
        "line2_modality",
        "line2_regimen",
        "line2_start_date",
        "line2_end_date",
        "line2_duration_days",
    }
)
"""Variables a small generated sample may leave empty for every patient (no such event drawn)."""


def _filled_share(rows: Rows, name: str, persons: list[int]) -> float:
    return sum(rows[p][name] is not None for p in persons) / len(persons)


@pytest.mark.parametrize("variable", sorted(EXPECTED_FILL))
def test_fill_rate_matches_the_ground_truth(variable: str, mart_rows: Rows, truth_by_person: Rows) -> None:
    persons = sorted(truth_by_person)
    expected = sum(EXPECTED_FILL[variable](truth_by_person[p]) for p in persons) / len(persons)
    observed = _filled_share(mart_rows, variable, persons)
    assert abs(observed - expected) <= TOLERANCE, (
        f"{variable}: filled for {observed:.1%} of patients, the ground truth implies {expected:.1%}"
    )


def test_ecog_at_diagnosis_is_the_generated_score(mart_rows: Rows, truth_by_person: Rows) -> None:
    wrong = {p: (mart_rows[p]["ecog_at_diagnosis"], t["ecog"]) for p, t in truth_by_person.items()
             if mart_rows[p]["ecog_at_diagnosis"] != t["ecog"]}  # fmt: skip
    assert not wrong, f"{len(wrong)} patients with another ECOG than generated, e.g. {list(wrong.items())[:5]}"


def test_every_variable_is_filled_for_some_patient(mart_rows: Rows) -> None:
    empty = [
        variable.name
        for variable in load_catalogue().variables
        # Text variables read NOTE_NLP, empty until `massalia nlp run` (tests/health/nlp/test_mart_text.py fills it).
        if variable.name not in MAY_BE_EMPTY_HERE
        and variable.provenance is not Provenance.TEXT
        and all(row[variable.name] is None for row in mart_rows.values())
    ]
    assert not empty, f"mart variables empty for every generated patient: {empty}"
