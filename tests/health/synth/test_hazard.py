from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from survival_fit import cox_fit, poisson_fit

from massalia.health.synth import generate
from massalia.health.synth.cohort import Cohort, design_matrix, draw_cohort
from massalia.health.synth.hazard import COVARIATES, DEFAULT_MODEL


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    parts = [
        draw_cohort(np.random.default_rng([11, b]), np.arange(b * 10_000, (b + 1) * 10_000), np.array([1.0]))
        for b in range(3)
    ]
    from dataclasses import fields

    from massalia.health.synth.treatment import Plan

    def cat(name: str) -> object:
        vals = [getattr(p, name) for p in parts]
        if isinstance(vals[0], Plan):
            return Plan(**{f.name: np.concatenate([getattr(v, f.name) for v in vals]) for f in fields(Plan)})
        return np.concatenate(vals)

    return Cohort(**{f.name: cat(f.name) for f in fields(Cohort)})


def _col(name: str) -> int:
    return COVARIATES.index(name)


def test_relapse_hazard_ratios_are_recovered(cohort):
    # Each cancer has its own Weibull scale: stratify by cancer (its own baseline hazard).
    x = design_matrix(cohort)
    stop = np.minimum(cohort.relapse_years, cohort.end_years)
    beta = cox_fit(np.zeros(len(cohort)), stop, cohort.relapse_observed, x, strata=cohort.cancer)
    for name in ("stage_II", "stage_III", "stage_IV", "ecog_2plus", "hormone_therapy", "triple_negative"):
        truth = np.log(DEFAULT_MODEL.relapse_hr[name])
        assert abs(beta[_col(name)] - truth) < 0.2, (name, np.exp(beta[_col(name)]), np.exp(truth))


def _death_intervals(c: Cohort) -> tuple[np.ndarray, ...]:
    """Counting-process rows split at the observed relapse (time-dependent covariate)."""
    x = design_matrix(c)
    rel = c.relapse_observed
    start = np.r_[np.zeros(len(c)), c.relapse_years[rel]]
    stop = np.r_[np.where(rel, c.relapse_years, c.end_years), c.end_years[rel]]
    event = np.r_[c.death_observed & ~rel, c.death_observed[rel]]
    relapsed = np.r_[np.zeros(len(c)), np.ones(int(rel.sum()))]
    xx = np.column_stack([relapsed, np.vstack([x, x[rel]])])
    return start, stop, event, xx, np.r_[c.cancer, c.cancer[rel]]


def test_death_hazard_ratios_and_time_dependent_relapse_effect_are_recovered(cohort):
    start, stop, event, x, strata = _death_intervals(cohort)
    beta = cox_fit(start, stop, event, x, strata=strata)
    checks = {
        name: DEFAULT_MODEL.death_hr[name]
        for name in ("stage_II", "stage_III", "stage_IV", "age_per_10y", "ecog_1", "ecog_2plus", "comorbidities")
    }
    for name, hr in checks.items():
        assert abs(beta[1 + _col(name)] - np.log(hr)) < 0.15, (name, np.exp(beta[_col(name)]), hr)
    assert abs(beta[0] - np.log(DEFAULT_MODEL.death_hr_after_relapse)) < 0.15, np.exp(beta[0])


def test_treatment_effect_is_confounded_by_indication_and_recovered_after_adjustment(cohort):
    eligible = cohort.plan.targeted_eligible
    sub = cohort.take(eligible)
    start, stop, event, x, strata = _death_intervals(sub)
    truth = np.log(DEFAULT_MODEL.death_hr["matched_targeted"])
    cols = [0] + [
        1 + _col(n)
        for n in (
            "matched_targeted",
            "age_per_10y",
            "ecog_1",
            "ecog_2plus",
            "stage_II",
            "stage_III",
            "stage_IV",
            "comorbidities",
            "male",
        )
    ]
    adj = cox_fit(start, stop, event, x[:, cols], strata=strata)[1]
    naive = cox_fit(start, stop, event, x[:, cols[:2]], strata=strata)[1]
    assert abs(adj - truth) < 0.3, (np.exp(adj), np.exp(truth))
    # Deviations (no targeted therapy) happen in older, frailer patients: the naive comparison flatters treatment.
    assert naive < adj - 0.05, (np.exp(naive), np.exp(adj))
    assert sub.ecog[~sub.plan.matched_targeted].mean() > sub.ecog[sub.plan.matched_targeted].mean()


def test_deviation_rates_match_the_documented_ones(cohort):
    p = cohort.plan
    young_fit = p.targeted_eligible & (cohort.age < 75) & (cohort.ecog < 2)
    rate = (~p.matched_targeted[young_fit]).mean()
    assert abs(rate - 0.08) < 0.03


def test_truth_file_matches_the_model_and_recovers_rates(tmp_path):
    summary = generate(tmp_path, 3000, seed=21, with_documents=False)
    assert sum(summary.patients_per_site.values()) == 3000
    gt = json.loads((tmp_path / "ground_truth.json").read_text(encoding="utf-8"))
    assert gt["seed"] == 21 and gt["data_cutoff"] == "2025-12-31" and gt["version"]
    assert gt["hazard_model"]["death_hr"] == DEFAULT_MODEL.death_hr
    assert gt["hazard_model"]["death_hr_after_relapse"] == DEFAULT_MODEL.death_hr_after_relapse
    assert set(gt["deviations"]) == {"targeted_omitted", "surgery_omitted", "adjuvant_omitted", "hormone_omitted"}
    t = pq.read_table(tmp_path / "truth" / "patients_part0000.parquet").to_pydict()
    stage = np.array(t["stage"])
    died = np.array(t["death_observed"])
    years = np.array(t["end_of_followup_days"]) / 365.25
    rates = [died[stage == s].sum() / years[stage == s].sum() for s in ("I", "II", "III", "IV")]
    assert rates == sorted(rates) and rates[3] > 5 * rates[0]
    # Unplanned stays: Poisson regression on the generated counts recovers the rate ratios.
    ecog = np.array(t["ecog"])
    x = np.column_stack(
        [
            np.ones(stage.size),
            stage == "IV",
            ecog == 1,
            ecog >= 2,
            np.array(t["chemo_line1"]),
            (np.array(t["age_at_diagnosis"]) - 65) / 10,
            np.array(t["n_comorbidities"]),
            stage == "III",
        ]
    ).astype(float)
    beta = poisson_fit(np.array(t["n_unplanned_stays"], dtype=float), x, years)
    rr = DEFAULT_MODEL.hosp_rr
    for j, name in [(1, "stage_IV"), (3, "ecog_2plus"), (4, "chemo_line1"), (6, "comorbidities")]:
        assert abs(beta[j] - np.log(rr[name])) < 0.2, (name, np.exp(beta[j]), rr[name])
    assert abs(np.exp(beta[0]) - DEFAULT_MODEL.hosp_base_rate) < 0.08
