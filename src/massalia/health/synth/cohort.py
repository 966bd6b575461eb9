"""Patients of one block: demography, cancer, histology, TNM, biomarkers, ECOG, comorbidities, outcomes.

Everything is drawn with numpy over a whole block at once (no per-patient Python).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from massalia.health.synth import treatment
from massalia.health.synth.catalogue import CANCER_BIOMARKERS, CANCERS, COMORBIDITIES, MARKERS
from massalia.health.synth.hazard import (
    COVARIATES,
    CUTOFF_DAY,
    DAYS_PER_YEAR,
    DEFAULT_MODEL,
    DIAGNOSIS_START_DAY,
    HazardModel,
    linear_predictor,
    sample_death_with_relapse,
    sample_weibull_ph,
)

T_CATS: tuple[str, ...] = ("T1", "T2", "T3", "T4")
N_CATS: tuple[str, ...] = ("N0", "N1", "N2", "N3")
COMORBIDITY_KEYS: tuple[str, ...] = tuple(COMORBIDITIES)

PABC_AGE_LIMIT = 45.0
"""Breast cancers of women diagnosed before this age may be pregnancy-associated."""
PABC_PROBABILITY = 0.10
"""Share of those that are pregnancy-associated: a generator choice (published shares vary with the definition
of the postpartum window), high enough for a demo home to hold some."""
GESTATION_DAYS = 280
"""Pregnancy start (last menstrual period) to delivery."""


def stage_from_tnm(t: np.ndarray, n: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The simplified generic stage grouping the generator uses (0=I .. 3=IV).

    M1 → IV; else T4 or N2/N3 → III; else T2/T3 or N1 → II; else (T1 N0) → I. ``t``/``n`` are
    indexes into ``T_CATS``/``N_CATS``, ``m`` 0/1. It is not the cancer-specific AJCC table; the
    quality checks of the warehouse can test consistency against this rule.

    Examples
    --------
    >>> stage_from_tnm(np.array([0, 1, 3]), np.array([0, 0, 0]), np.array([0, 0, 0])).tolist()
    [0, 1, 2]
    """
    return np.where(m == 1, 3, np.where((t == 3) | (n >= 2), 2, np.where((t >= 1) | (n == 1), 1, 0)))


# All (T, N) pairs grouped by the stage they imply under M0.
_TN_BY_STAGE: dict[int, np.ndarray] = {}
for _t in range(4):
    for _n in range(4):
        _s = int(stage_from_tnm(np.array([_t]), np.array([_n]), np.array([0]))[0])
        _TN_BY_STAGE.setdefault(_s, np.empty((0, 2), dtype=np.int8))
        _TN_BY_STAGE[_s] = np.vstack([_TN_BY_STAGE[_s], np.array([[_t, _n]], dtype=np.int8)])


@dataclass
class Cohort:
    """One block of patients, column-wise (all arrays have one row per patient)."""

    index: np.ndarray  # global patient index (int64)
    site: np.ndarray  # index into the run's site list
    male: np.ndarray
    age: np.ndarray  # years at diagnosis (float)
    birth_day: np.ndarray  # days since 1970-01-01
    dx_day: np.ndarray
    cancer: np.ndarray  # index into CANCERS
    icd10: np.ndarray  # object array of ICD-10 codes (with dot)
    morphology: np.ndarray  # object array of ICD-O-3 morphology
    grade: np.ndarray  # 1..3
    laterality: np.ndarray  # 0 none, 1 right, 2 left
    stage: np.ndarray  # 0..3
    ct: np.ndarray
    cn: np.ndarray
    cm: np.ndarray
    ecog: np.ndarray
    comorb: np.ndarray  # (n, len(COMORBIDITY_KEYS)) bool
    marker: np.ndarray  # (n, len(MARKERS)) int8: -1 not tested, 0 negative, 1 positive
    marker_value: np.ndarray  # (n, len(MARKERS)) float: Ki-67 %, PD-L1 TPS %, else NaN
    family_history: np.ndarray  # -1 none, else index into CANCERS of a relative's cancer
    family_relative: np.ndarray  # 0 mother, 1 father, 2 sister, 3 brother
    plan: treatment.Plan
    relapse_years: np.ndarray  # true relapse/progression time (inf if never)
    death_years: np.ndarray  # true death time
    censor_years: np.ndarray  # min(loss to follow-up, cut-off) time
    end_years: np.ndarray  # end of observation = min(death, censor)
    relapse_observed: np.ndarray
    death_observed: np.ndarray
    hosp_rate: np.ndarray  # true unplanned-hospitalization rate per person-year
    second_cancer_years: np.ndarray  # inf if none observed
    second_cancer: np.ndarray  # index into CANCERS, -1 if none
    pt: np.ndarray  # pathological T index or -1 (no surgery)
    pn: np.ndarray
    pregnancy_day: np.ndarray  # start of the pregnancy of a pregnancy-associated cancer (days), else -1
    delivery_day: np.ndarray  # its delivery (days; after the diagnosis when diagnosed during pregnancy), else -1

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def take(self, mask: np.ndarray) -> Cohort:
        """The sub-cohort of rows where ``mask`` is true (or at the given indexes)."""
        values: dict[str, Any] = {}  # one value per field, of the field's own type
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = v.take(mask) if isinstance(v, treatment.Plan) else v[mask]
        return Cohort(**values)

    def marker_col(self, key: str) -> np.ndarray:
        """Status column of one biomarker (-1/0/1)."""
        return self.marker[:, MARKERS.index(key)]


def design_matrix(c: Cohort) -> np.ndarray:
    """Covariates of the hazard model, columns in ``hazard.COVARIATES`` order (float64)."""
    x = np.zeros((len(c), len(COVARIATES)))
    col = {name: i for i, name in enumerate(COVARIATES)}
    x[:, col["stage_II"]] = c.stage == 1
    x[:, col["stage_III"]] = c.stage == 2
    x[:, col["stage_IV"]] = c.stage == 3
    x[:, col["age_per_10y"]] = (c.age - 65.0) / 10.0
    x[:, col["ecog_1"]] = c.ecog == 1
    x[:, col["ecog_2plus"]] = c.ecog >= 2
    x[:, col["male"]] = c.male
    x[:, col["comorbidities"]] = c.comorb.sum(axis=1)
    x[:, col["matched_targeted"]] = c.plan.matched_targeted
    x[:, col["hormone_therapy"]] = c.plan.hormone >= 0
    x[:, col["triple_negative"]] = _triple_negative(c.cancer, c.marker)
    x[:, col["chemo_line1"]] = c.plan.chemo_line1
    x[:, col["pregnancy_associated"]] = c.pregnancy_day >= 0
    return x


def _triple_negative(cancer: np.ndarray, marker: np.ndarray) -> np.ndarray:
    breast = cancer == [c.key for c in CANCERS].index("breast")
    neg = (marker[:, MARKERS.index("er")] == 0) & (marker[:, MARKERS.index("pr")] == 0)
    return breast & neg & (marker[:, MARKERS.index("her2")] == 0)


def _choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (n, k) probability matrix."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cum[:, -1]
    return (u[:, None] > cum).sum(axis=1)


def draw_pregnancies(
    rng: np.random.Generator, male: np.ndarray, cancer: np.ndarray, age: np.ndarray, dx_day: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pregnancy start and delivery days of the pregnancy-associated breast cancers (-1 for everyone else).

    A woman with breast cancer diagnosed before :data:`PABC_AGE_LIMIT` has a pregnancy-associated cancer with
    probability :data:`PABC_PROBABILITY`: diagnosed during pregnancy (half of them, at a gestational week
    uniform in 6-38) or within 12 months after delivery (uniform). Draws come from ``rng`` alone (its own
    stream, three draws per patient whatever the cohort), so adding this fact left every other draw as it was.

    Examples
    --------
    >>> start, delivery = draw_pregnancies(np.random.default_rng(0), np.zeros(4000, bool), np.zeros(4000, int),
    ...                                    np.full(4000, 35.0), np.full(4000, 20000))
    >>> bool(0.07 < (start >= 0).mean() < 0.13), bool((delivery[start >= 0] - start[start >= 0] == 280).all())
    (True, True)
    """
    n = male.shape[0]
    u, during_u, timing_u = rng.random(n), rng.random(n), rng.random(n)
    breast = cancer == [c.key for c in CANCERS].index("breast")
    pabc = ~male & breast & (age < PABC_AGE_LIMIT) & (u < PABC_PROBABILITY)
    during = during_u < 0.5
    week = 6 + np.floor(timing_u * 33).astype(np.int64)  # gestational week at diagnosis, 6-38
    after = np.floor(timing_u * 365).astype(np.int64)  # days from delivery to diagnosis, 0-364
    delivery = np.where(during, dx_day - 7 * week + GESTATION_DAYS, dx_day - after)
    start = delivery - GESTATION_DAYS
    return np.where(pabc, start, -1).astype(np.int64), np.where(pabc, delivery, -1).astype(np.int64)


def draw_cohort(
    rng: np.random.Generator,
    index: np.ndarray,
    site_weights: np.ndarray,
    model: HazardModel = DEFAULT_MODEL,
    pregnancy_rng: np.random.Generator | None = None,
) -> Cohort:
    """Draw the patients with global indexes ``index`` (one block) from ``rng``.

    Parameters
    ----------
    rng
        The block's generator (seeded from (seed, block)).
    index
        Global patient indexes of the block (int64).
    site_weights
        Probability of each site of the run (sums to 1).
    model
        Outcome model parameters.
    pregnancy_rng
        The stream of the pregnancy facts (:func:`draw_pregnancies`); default: spawned from ``rng``'s seed
        sequence, leaving ``rng``'s own draws as they were.

    Returns
    -------
    Cohort
        The block, column-wise.

    Examples
    --------
    >>> c = draw_cohort(np.random.default_rng(0), np.arange(100), np.array([1.0]))
    >>> len(c), bool((c.end_years > 0).all())
    (100, True)
    """
    n = int(index.shape[0])
    site = _choice_rows(rng, np.broadcast_to(site_weights, (n, site_weights.shape[0])))
    inc_m = np.array([c.incidence_m for c in CANCERS])
    inc_f = np.array([c.incidence_f for c in CANCERS])
    male = rng.random(n) < inc_m.sum() / (inc_m.sum() + inc_f.sum())
    cancer = _choice_rows(rng, np.where(male[:, None], inc_m, inc_f))
    age_mean = np.array([c.age_mean for c in CANCERS])[cancer]
    age_sd = np.array([c.age_sd for c in CANCERS])[cancer]
    age = np.clip(rng.normal(age_mean, age_sd), 20.0, 97.0)
    dx_day = rng.integers(DIAGNOSIS_START_DAY, CUTOFF_DAY - 60, size=n)
    birth_day = dx_day - np.floor(age * DAYS_PER_YEAR).astype(np.int64)

    icd10 = np.empty(n, dtype=object)
    morphology = np.empty(n, dtype=object)
    stage = np.zeros(n, dtype=np.int8)
    for k, c in enumerate(CANCERS):
        sel = np.flatnonzero(cancer == k)
        if sel.size == 0:
            continue
        codes, w = zip(*c.icd10, strict=True)
        icd10[sel] = np.array(codes, dtype=object)[_pick(rng, w, sel.size)]
        morphs = [h[0] for h in c.histologies]
        morphology[sel] = np.array(morphs, dtype=object)[_pick(rng, [h[2] for h in c.histologies], sel.size)]
        stage[sel] = _pick(rng, c.stage_probs, sel.size)
    lateral = np.array([c.lateral for c in CANCERS])[cancer]
    laterality = np.where(lateral, rng.integers(1, 3, size=n), 0)
    grade = rng.choice(np.array([1, 2, 3]), size=n, p=[0.25, 0.45, 0.30])

    # TNM consistent with the stage (see stage_from_tnm).
    ct = np.zeros(n, dtype=np.int8)
    cn = np.zeros(n, dtype=np.int8)
    cm = (stage == 3).astype(np.int8)
    for s in range(3):
        sel = np.flatnonzero(stage == s)
        pairs = _TN_BY_STAGE[s][rng.integers(0, _TN_BY_STAGE[s].shape[0], size=sel.size)]
        ct[sel], cn[sel] = pairs[:, 0], pairs[:, 1]
    sel4 = np.flatnonzero(stage == 3)
    ct[sel4] = rng.integers(0, 4, size=sel4.size)
    cn[sel4] = rng.integers(0, 4, size=sel4.size)

    # Comorbidities grow with age; ECOG with age and comorbidities.
    prev = np.array([p for _, p in COMORBIDITIES.values()])
    age_factor = np.exp(0.04 * (age - 65.0))[:, None]
    comorb = rng.random((n, prev.shape[0])) < np.clip(prev[None, :] * age_factor, 0, 0.9)
    ecog_score = 0.03 * (age - 65.0) + 0.35 * comorb.sum(axis=1) + 0.4 * (stage == 3) + rng.normal(0, 1, n)
    ecog = np.digitize(ecog_score, [0.3, 1.3, 2.3]).astype(np.int8)

    marker, marker_value = _draw_markers(rng, cancer, morphology, stage)

    fam_p = 0.12 + 0.4 * (marker[:, MARKERS.index("brca")] == 1)
    has_fam = rng.random(n) < fam_p
    family_history = np.where(has_fam, np.where(rng.random(n) < 0.5, cancer, rng.integers(0, len(CANCERS), n)), -1)
    family_relative = rng.integers(0, 4, size=n)

    plan = treatment.assign_plan(rng, cancer, male, age, stage, ecog, morphology, marker, marker_value, icd10)
    if pregnancy_rng is None:
        pregnancy_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])  # type: ignore[attr-defined]
    pregnancy_day, delivery_day = draw_pregnancies(pregnancy_rng, male, cancer, age, dx_day)
    proto = Cohort(
        index=index,
        site=site,
        male=male,
        age=age,
        birth_day=birth_day,
        dx_day=dx_day,
        cancer=cancer,
        icd10=icd10,
        morphology=morphology,
        grade=grade,
        laterality=laterality,
        stage=stage,
        ct=ct,
        cn=cn,
        cm=cm,
        ecog=ecog,
        comorb=comorb,
        marker=marker,
        marker_value=marker_value,
        family_history=family_history,
        family_relative=family_relative,
        plan=plan,
        relapse_years=np.zeros(n),
        death_years=np.zeros(n),
        censor_years=np.zeros(n),
        end_years=np.zeros(n),
        relapse_observed=np.zeros(n, bool),
        death_observed=np.zeros(n, bool),
        hosp_rate=np.zeros(n),
        second_cancer_years=np.full(n, np.inf),
        second_cancer=np.full(n, -1),
        pt=np.full(n, -1, np.int8),
        pn=np.full(n, -1, np.int8),
        pregnancy_day=pregnancy_day,
        delivery_day=delivery_day,
    )
    _draw_outcomes(rng, proto, model)
    return proto


def _pick(rng: np.random.Generator, weights: object, size: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return rng.choice(w.shape[0], size=size, p=w / w.sum())


def _draw_markers(
    rng: np.random.Generator, cancer: np.ndarray, morphology: np.ndarray, stage: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    n = cancer.shape[0]
    marker = np.full((n, len(MARKERS)), -1, dtype=np.int8)
    value = np.full((n, len(MARKERS)), np.nan)
    keys = [c.key for c in CANCERS]
    col = {m: i for i, m in enumerate(MARKERS)}
    for key, probs in CANCER_BIOMARKERS.items():
        sel = np.flatnonzero(cancer == keys.index(key))
        if sel.size == 0:
            continue
        u = rng.random((sel.size, len(MARKERS)))
        for m, p in probs.items():
            marker[sel, col[m]] = u[:, col[m]] < p
        if key == "breast":
            er = marker[sel, col["er"]] == 1
            marker[sel, col["pr"]] = np.where(er, u[:, col["pr"]] < 0.82, u[:, col["pr"]] < 0.05)
            tn = (~er) & (marker[sel, col["her2"]] == 0)
            ki = np.clip(rng.lognormal(np.log(np.where(tn, 45.0, 18.0)), 0.5), 1, 95).round()
            value[sel, col["ki67"]] = ki
            marker[sel, col["ki67"]] = ki >= 20
            # BRCA is tested only in young patients or triple negative tumours.
            marker[sel, col["brca"]] = np.where(tn | (u[:, col["ki67"]] < 0.2), marker[sel, col["brca"]], -1)
        elif key == "lung":
            nonsq = np.isin(morphology[sel], ["8140/3", "8046/3"])
            driver = u[:, col["egfr"]]
            marker[sel, col["egfr"]] = driver < 0.12
            marker[sel, col["alk"]] = (driver >= 0.12) & (driver < 0.16)
            marker[sel, col["kras"]] = (driver >= 0.16) & (driver < 0.41)
            for m in ("egfr", "alk", "kras"):
                marker[sel, col[m]] = np.where(nonsq, marker[sel, col[m]], -1)
            tps = np.where(
                u[:, col["pdl1"]] < 0.3,
                0.0,
                np.where(u[:, col["pdl1"]] < 0.65, rng.integers(1, 50, sel.size), rng.integers(50, 101, sel.size)),
            )
            value[sel, col["pdl1"]] = tps
            marker[sel, col["pdl1"]] = tps >= 50
        elif key == "colorectal":
            ras = u[:, col["kras"]]
            marker[sel, col["kras"]] = ras < 0.42
            marker[sel, col["braf"]] = (ras >= 0.42) & (ras < 0.51)
            # RAS/BRAF are tested only in metastatic disease; MSI in everyone.
            for m in ("kras", "braf"):
                marker[sel, col[m]] = np.where(stage[sel] == 3, marker[sel, col[m]], -1)
        elif key in ("melanoma", "ovary"):
            m = "braf" if key == "melanoma" else "brca"
            marker[sel, col[m]] = np.where(stage[sel] >= 2, marker[sel, col[m]], -1)
    return marker, value


def _draw_outcomes(rng: np.random.Generator, c: Cohort, model: HazardModel) -> None:
    n = len(c)
    x = design_matrix(c)
    keys = [k.key for k in CANCERS]
    d_scale = np.array([model.death_scale()[k] for k in keys])[c.cancer]
    r_scale = np.array([model.relapse_scale()[k] for k in keys])[c.cancer]
    relapse = sample_weibull_ph(rng, r_scale, model.relapse_shape, linear_predictor(x, model.relapse_hr))
    death = sample_death_with_relapse(
        rng, d_scale, model.death_shape, linear_predictor(x, model.death_hr), relapse, model.death_hr_after_relapse
    )
    ltfu = rng.exponential(1.0 / model.loss_to_followup_rate, size=n)
    admin = (CUTOFF_DAY - c.dx_day) / DAYS_PER_YEAR
    censor = np.minimum(ltfu, admin)
    end = np.minimum(death, censor)
    c.relapse_years = relapse
    c.death_years = death
    c.censor_years = censor
    c.end_years = np.maximum(end, 1.0 / DAYS_PER_YEAR)
    c.relapse_observed = relapse < end
    c.death_observed = death <= censor
    c.hosp_rate = model.hosp_base_rate * np.exp(linear_predictor(x, model.hosp_rr))
    second = rng.exponential(1.0 / model.second_cancer_rate, size=n)
    has_second = second < end
    c.second_cancer_years = np.where(has_second, second, np.inf)
    other = (c.cancer + rng.integers(1, len(CANCERS), size=n)) % len(CANCERS)
    c.second_cancer = np.where(has_second, other, -1)
    # Pathological staging after surgery: mostly the clinical category, sometimes up/down-staged by one.
    operated = c.plan.surgery >= 0
    shift_t = rng.choice(np.array([-1, 0, 1]), size=n, p=[0.1, 0.75, 0.15])
    shift_n = rng.choice(np.array([0, 1]), size=n, p=[0.85, 0.15])
    c.pt = np.where(operated, np.clip(c.ct + shift_t, 0, 3), -1).astype(np.int8)
    c.pn = np.where(operated, np.clip(c.cn + shift_n, 0, 3), -1).astype(np.int8)
