"""Pregnancy-associated breast cancer in the generator: who has it, when, its planted effect, its stream.

The ground truth (``ground_truth.json`` ``pregnancy``) takes the hazard ratios of Azim et al. 2012 (Cancer
Treat Rev 38:834-842): relapse 1.60, death 1.44. The relapse hazard is direct (relapse is drawn from its own
Weibull model, death only censors it), so a cause-specific Cox model of relapse must recover 1.60; death also
rises through the more frequent relapses (HR 3.0 after one), so overall survival shows a larger total effect.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from massalia.health.analytics.survival import cox_model
from massalia.health.synth.catalogue import CANCERS
from massalia.health.synth.cohort import (
    GESTATION_DAYS,
    PABC_AGE_LIMIT,
    PABC_PROBABILITY,
    Cohort,
    design_matrix,
    draw_cohort,
    draw_pregnancies,
)
from massalia.health.synth.hazard import COVARIATES, DEFAULT_MODEL
from massalia.health.synth.truth import ground_truth

BREAST = [c.key for c in CANCERS].index("breast")


@pytest.fixture(scope="module")
def young_breast() -> pd.DataFrame:
    """Women with breast cancer before 45 among 400,000 drawn patients (about 7,000; 3 s)."""
    frames = []
    for block in range(2):
        c = draw_cohort(np.random.default_rng([23, block]), np.arange(block * 200_000, (block + 1) * 200_000),
                        np.array([1.0]))  # fmt: skip
        keep = ~c.male & (c.cancer == BREAST) & (c.age < PABC_AGE_LIMIT)
        frame = pd.DataFrame(design_matrix(c)[keep], columns=list(COVARIATES))
        frame["relapse_time"] = np.minimum(c.relapse_years, c.end_years)[keep]
        frame["relapse"] = c.relapse_observed[keep].astype(int)
        frame["death_time"], frame["death"] = c.end_years[keep], c.death_observed[keep].astype(int)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    return frame.loc[:, (frame != 0).any()]  # covariates constant here (male, stage...) are left out


def _hr(frame: pd.DataFrame, time: str, event: str) -> dict:
    data = frame.drop(columns=[c for c in ("relapse_time", "relapse", "death_time", "death") if c not in (time, event)])
    data = data.rename(columns={time: "time", event: "event"})
    return next(t for t in cox_model(data, check_ph=False)["terms"] if t["term"] == "pregnancy_associated")


def test_the_planted_relapse_hazard_ratio_is_recovered_by_the_analysis_estimator(young_breast: pd.DataFrame) -> None:
    pregnant = young_breast["pregnancy_associated"] == 1
    assert 600 < pregnant.sum() < 900 and young_breast.loc[pregnant, "relapse"].sum() > 80
    relapse = _hr(young_breast, "relapse_time", "relapse")
    truth = DEFAULT_MODEL.relapse_hr["pregnancy_associated"]
    assert relapse["lower"] < truth < relapse["upper"], relapse
    assert relapse["lower"] > 1.0  # the effect is found, not only compatible
    death = _hr(young_breast, "death_time", "death")
    assert death["lower"] > 1.0 and death["hr"] > DEFAULT_MODEL.death_hr["pregnancy_associated"] * 0.9, death


def test_only_young_women_with_breast_cancer_and_the_stated_share_of_them() -> None:
    rng = np.random.default_rng(1)
    n = 60_000
    male, cancer = rng.random(n) < 0.3, rng.integers(0, 3, n)
    age, dx = rng.uniform(20, 90, n), rng.integers(16_000, 20_000, n)
    start, delivery = draw_pregnancies(np.random.default_rng(2), male, cancer, age, dx)
    pabc = start >= 0
    eligible = ~male & (cancer == BREAST) & (age < PABC_AGE_LIMIT)
    assert not (pabc & ~eligible).any()
    share = pabc[eligible].mean()
    assert abs(share - PABC_PROBABILITY) < 3 * np.sqrt(PABC_PROBABILITY * (1 - PABC_PROBABILITY) / eligible.sum())
    assert (delivery[pabc] - start[pabc] == GESTATION_DAYS).all()
    # diagnosed during pregnancy (after its 6th week) or within 365 days after delivery: both occur
    during = (dx[pabc] >= start[pabc] + 42) & (dx[pabc] < delivery[pabc])
    after = (dx[pabc] >= delivery[pabc]) & (dx[pabc] - delivery[pabc] < 365)
    assert (during | after).all() and 0.4 < during.mean() < 0.6


def test_pregnancies_have_their_own_stream() -> None:
    # the pregnancy draws never touch the cohort's generator: every other fact is drawn as before
    one = draw_cohort(np.random.default_rng([5, 0]), np.arange(5000), np.array([1.0]),
                      pregnancy_rng=np.random.default_rng(1))  # fmt: skip
    two = draw_cohort(np.random.default_rng([5, 0]), np.arange(5000), np.array([1.0]),
                      pregnancy_rng=np.random.default_rng(2))  # fmt: skip
    assert (one.pregnancy_day >= 0).any() and not np.array_equal(one.pregnancy_day, two.pregnancy_day)
    same = (one.pregnancy_day < 0) & (two.pregnancy_day < 0)
    for name in ("age", "stage", "dx_day", "ecog", "cancer", "relapse_years", "death_years", "censor_years"):
        assert np.array_equal(getattr(one, name)[same], getattr(two, name)[same]), name
    assert {f.name for f in fields(Cohort)} >= {"pregnancy_day", "delivery_day"}


def test_the_ground_truth_names_the_source_and_the_hazard_ratios() -> None:
    truth = ground_truth(0, DEFAULT_MODEL, {"chu_nord": 1.0})
    assert truth["pregnancy"]["death_hr"] == 1.44 and truth["pregnancy"]["relapse_hr"] == 1.60
    assert "Azim" in truth["pregnancy"]["source"] and "4217975" in truth["pregnancy"]["recorded_as"]
    assert "pregnancy_associated" in truth["hazard_model"]["covariates"]
