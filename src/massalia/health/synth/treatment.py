"""Treatment plans that mostly follow guidelines, with documented deviations at documented rates."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TypedDict

import numpy as np

from massalia.health.synth.catalogue import CANCERS, MARKERS, PROCEDURES, REGIMENS

REGIMEN_KEYS: tuple[str, ...] = tuple(REGIMENS)
PROCEDURE_KEYS: tuple[str, ...] = tuple(PROCEDURES)
DEVIATION_KINDS: tuple[str, ...] = (
    "none",
    "targeted_omitted",
    "surgery_omitted",
    "adjuvant_omitted",
    "hormone_omitted",
)


class Deviation(TypedDict, total=False):
    """One documented deviation: what it is, its base rate and the factors that raise it."""

    description: str
    base_probability: float
    odds_ratio_age_75plus: float
    odds_ratio_ecog_2plus: float
    added_probability_age_75plus: float
    added_probability_age_80plus: float


DEVIATIONS: dict[str, Deviation] = {
    "targeted_omitted": {
        "description": "eligible for a biomarker-matched targeted therapy (HER2+ breast, EGFR+/ALK+ stage IV "
        "NSCLC, RAS/BRAF wild-type stage IV colorectal, BRAF+ stage III-IV melanoma, BRCA+ stage III-IV "
        "ovary) but given the non-targeted alternative",
        "base_probability": 0.08,
        "odds_ratio_age_75plus": 3.0,
        "odds_ratio_ecog_2plus": 4.0,
    },
    "surgery_omitted": {
        "description": "stage I-III surgical candidate not operated",
        "base_probability": 0.04,
        "added_probability_age_80plus": 0.20,
    },
    "adjuvant_omitted": {
        "description": "indicated adjuvant/first-line chemotherapy not given",
        "base_probability": 0.05,
        "added_probability_age_75plus": 0.25,
    },
    "hormone_omitted": {
        "description": "ER+ breast or high-risk prostate without hormone therapy",
        "base_probability": 0.10,
    },
}
"""Documented deviation rates (written to ground_truth.json); a patient has at most one deviation kind
recorded (the first in this order that applies)."""


@dataclass
class Plan:
    """Line-1 plan and line-2 regimen, one row per patient (indexes into catalogue keys; -1 = none)."""

    surgery: np.ndarray  # index into PROCEDURE_KEYS
    surgery_day: np.ndarray  # days after diagnosis
    line1: np.ndarray  # index into REGIMEN_KEYS (systemic line 1)
    line1_day: np.ndarray
    hormone: np.ndarray  # index into REGIMEN_KEYS (hormone therapy, after line 1)
    rt_fractions: np.ndarray  # 0 = no radiotherapy
    line2: np.ndarray  # regimen at relapse/progression
    targeted_eligible: np.ndarray
    matched_targeted: np.ndarray
    chemo_line1: np.ndarray
    deviation: np.ndarray  # index into DEVIATION_KINDS
    deviation_probability: np.ndarray  # (n, 4): each patient's probability of each deviation of DEVIATIONS

    def take(self, mask: np.ndarray) -> Plan:
        """Rows where ``mask`` is true."""
        return Plan(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})


def _r(key: str) -> int:
    return REGIMEN_KEYS.index(key)


def _p(key: str) -> int:
    return PROCEDURE_KEYS.index(key)


def assign_plan(
    rng: np.random.Generator,
    cancer: np.ndarray,
    male: np.ndarray,
    age: np.ndarray,
    stage: np.ndarray,
    ecog: np.ndarray,
    morphology: np.ndarray,
    marker: np.ndarray,
    marker_value: np.ndarray,
    icd10: np.ndarray,
) -> Plan:
    """Guideline treatment per cancer, stage and biomarkers, then the documented deviations.

    Returns
    -------
    Plan
        One row per patient.
    """
    n = int(cancer.shape[0])
    keys = [c.key for c in CANCERS]
    surg_proc = np.array([_p(c.surgery) if c.surgery else -1 for c in CANCERS])[cancer]
    early = stage <= 2
    p = _Patients(
        n=n,
        is_c={k: cancer == i for i, k in enumerate(keys)},
        mk={m: marker[:, i] for i, m in enumerate(MARKERS)},
        u=rng.random((n, 8)),
        stage=stage,
        age=age,
        ecog=ecog,
        morphology=morphology,
        icd10=icd10,
        early=early,
        cancer=cancer,
    )
    d = _Draft(
        line1=np.full(n, -1),
        hormone=np.full(n, -1),
        line2=np.full(n, -1),
        rt=np.zeros(n, dtype=np.int16),
        eligible=np.zeros(n, dtype=bool),
        alt=np.full(n, -1),
        surgery=np.where(early & (surg_proc >= 0), surg_proc, -1),
    )
    _breast(p, d)
    _prostate(p, d)
    _lung(p, d)
    _colorectal(p, d)
    brca = _other_cancers(p, d)
    deviation, omit_t, probability = _deviations(p, d, brca)
    line1, hormone, line2, rt, eligible, surgery = d.line1, d.hormone, d.line2, d.rt, d.eligible, d.surgery

    myelo = np.array([REGIMENS[k].myelotoxic and REGIMENS[k].kind in ("chemo", "targeted") for k in REGIMEN_KEYS])
    chemo_line1 = (line1 >= 0) & myelo[np.maximum(line1, 0)]
    surgery_day = rng.integers(15, 46, size=n)
    start_after = np.where(surgery >= 0, surgery_day + rng.integers(28, 60, size=n), rng.integers(14, 36, size=n))
    return Plan(
        surgery=surgery.astype(np.int16),
        surgery_day=surgery_day,
        line1=line1.astype(np.int16),
        line1_day=start_after,
        hormone=hormone.astype(np.int16),
        rt_fractions=rt,
        line2=line2.astype(np.int16),
        targeted_eligible=eligible,
        matched_targeted=eligible & ~omit_t,
        chemo_line1=chemo_line1,
        deviation=deviation,
        deviation_probability=probability,
    )


@dataclass(frozen=True)
class _Patients:
    """What the guideline steps read: the patients' cancer, stage, biomarkers, and their uniform draws."""

    n: int
    is_c: dict[str, np.ndarray]  # cancer key → mask
    mk: dict[str, np.ndarray]  # marker key → -1 not tested, 0 negative, 1 positive
    u: np.ndarray  # (n, 8) uniform draws, one column per decision
    stage: np.ndarray
    age: np.ndarray
    ecog: np.ndarray
    morphology: np.ndarray
    icd10: np.ndarray
    early: np.ndarray
    cancer: np.ndarray


@dataclass
class _Draft:
    """The plan as the guideline steps write it (indexes into catalogue keys; -1 = none)."""

    line1: np.ndarray
    hormone: np.ndarray
    line2: np.ndarray
    rt: np.ndarray
    eligible: np.ndarray
    alt: np.ndarray  # regimen given instead when the targeted therapy is omitted
    surgery: np.ndarray


def _breast(patients: _Patients, draft: _Draft) -> None:
    """Breast: HER2-targeted, chemotherapy by subtype and stage, hormone therapy for ER+."""
    is_c, mk, u, stage, age, early = (
        patients.is_c,
        patients.mk,
        patients.u,
        patients.stage,
        patients.age,
        patients.early,
    )
    line1, hormone, line2, rt, eligible, alt, surgery = (
        draft.line1,
        draft.hormone,
        draft.line2,
        draft.rt,
        draft.eligible,
        draft.alt,
        draft.surgery,
    )
    b = is_c["breast"]
    her2 = mk["her2"] == 1
    er = mk["er"] == 1
    tn = b & (mk["er"] == 0) & (mk["pr"] == 0) & (mk["her2"] == 0)
    surgery = np.where(b & early & (stage <= 1) & (u[:, 0] < 0.7), _p("lumpectomy"), surgery)
    line1 = np.where(b & her2, np.where(stage == 3, _r("tch_pertuzumab"), _r("ec_docetaxel_trastuzumab")), line1)
    eligible |= b & her2
    alt = np.where(b & her2, _r("ec_paclitaxel"), alt)
    line1 = np.where(
        b & ~her2 & (tn & (stage >= 1) | er & ((stage >= 2) | (mk["ki67"] == 1) & (stage == 1))),
        _r("ec_paclitaxel"),
        line1,
    )
    hormone = np.where(b & er, np.where(age < 50, _r("tamoxifen"), _r("anastrozole")), hormone)
    rt = np.where(b & ((surgery == _p("lumpectomy")) | (stage == 2)), 25, rt)
    line2 = np.where(b, _r("capecitabine"), line2)
    draft.line1, draft.hormone, draft.line2, draft.rt, draft.eligible, draft.alt, draft.surgery = (
        line1,
        hormone,
        line2,
        rt,
        eligible,
        alt,
        surgery,
    )


def _prostate(patients: _Patients, draft: _Draft) -> None:
    """Prostate: prostatectomy or radiotherapy when localized, ADT and docetaxel when advanced."""
    is_c, u, stage = patients.is_c, patients.u, patients.stage
    line1, hormone, line2, rt, surgery = draft.line1, draft.hormone, draft.line2, draft.rt, draft.surgery
    p = is_c["prostate"]
    surgery = np.where(p & (stage <= 1), np.where(u[:, 0] < 0.55, _p("prostatectomy"), -1), np.where(p, -1, surgery))
    rt = np.where(p & (stage <= 2) & (surgery < 0), 39, rt)
    hormone = np.where(p & (stage >= 2), _r("adt"), hormone)
    line1 = np.where(p & (stage == 3) & (u[:, 1] < 0.5), _r("docetaxel"), line1)
    line2 = np.where(p, _r("bicalutamide"), line2)
    draft.line1, draft.hormone, draft.line2, draft.rt, draft.surgery = line1, hormone, line2, rt, surgery


def _lung(patients: _Patients, draft: _Draft) -> None:
    """Lung: lobectomy when early, platinum doublets, immunotherapy or EGFR/ALK inhibitors at stage IV."""
    is_c, mk, u, stage, morphology = patients.is_c, patients.mk, patients.u, patients.stage, patients.morphology
    line1, line2, rt, eligible, alt, surgery = (
        draft.line1,
        draft.line2,
        draft.rt,
        draft.eligible,
        draft.alt,
        draft.surgery,
    )
    lu = is_c["lung"]
    sclc = lu & (morphology == "8041/3")
    nonsq = lu & np.isin(morphology, ["8140/3", "8046/3"])
    surgery = np.where(
        lu & ((stage <= 1) | (stage == 2) & (u[:, 0] < 0.3)) & ~sclc, _p("lobectomy"), np.where(lu, -1, surgery)
    )
    chemo = np.where(nonsq, _r("carbo_pemetrexed"), _r("carbo_paclitaxel"))
    line1 = np.where(lu & (stage >= 1), chemo, line1)
    line1 = np.where(sclc, _r("cis_vinorelbine_like"), line1)
    rt = np.where(lu & (stage == 2), 30, rt)
    m4 = lu & (stage == 3) & ~sclc
    line1 = np.where(m4 & (mk["pdl1"] == 1), _r("pembrolizumab"), line1)
    egfr, alk = m4 & (mk["egfr"] == 1), m4 & (mk["alk"] == 1)
    line1 = np.where(egfr, _r("osimertinib"), np.where(alk, _r("alectinib"), line1))
    eligible |= egfr | alk
    alt = np.where(egfr | alk, chemo, alt)
    line2 = np.where(lu, _r("docetaxel"), line2)
    draft.line1, draft.line2, draft.rt, draft.eligible, draft.alt, draft.surgery = (
        line1,
        line2,
        rt,
        eligible,
        alt,
        surgery,
    )


def _colorectal(patients: _Patients, draft: _Draft) -> None:
    """Colorectal: adjuvant FOLFOX or capecitabine, anti-EGFR for RAS/BRAF wild-type stage IV."""
    is_c, mk, u, stage, age, icd10 = (
        patients.is_c,
        patients.mk,
        patients.u,
        patients.stage,
        patients.age,
        patients.icd10,
    )
    line1, line2, rt, eligible, alt = draft.line1, draft.line2, draft.rt, draft.eligible, draft.alt
    cr = is_c["colorectal"]
    rectum = cr & (icd10 == "C20")
    line1 = np.where(
        cr & ((stage == 2) | (stage == 1) & (u[:, 1] < 0.2)),
        np.where(age >= 75, _r("capecitabine"), _r("folfox")),
        line1,
    )
    line1 = np.where(rectum & (stage >= 1) & (stage <= 2), _r("capecitabine"), line1)
    rt = np.where(rectum & (stage >= 1) & (stage <= 2), 25, rt)
    wild = cr & (stage == 3) & (mk["kras"] == 0) & (mk["braf"] == 0)
    line1 = np.where(cr & (stage == 3), np.where(wild, _r("folfox_cetuximab"), _r("folfiri_bev")), line1)
    eligible |= wild
    alt = np.where(wild, _r("folfiri_bev"), alt)
    line2 = np.where(cr, np.where(line1 == _r("folfiri_bev"), _r("folfox"), _r("folfiri_bev")), line2)
    draft.line1, draft.line2, draft.rt, draft.eligible, draft.alt = line1, line2, rt, eligible, alt


def _other_cancers(patients: _Patients, draft: _Draft) -> np.ndarray:
    """Bladder, kidney, melanoma, pancreas, head and neck, lymphoma, ovary and uterus; returns the BRCA+ ovaries."""
    is_c, mk, u, stage, age, ecog = patients.is_c, patients.mk, patients.u, patients.stage, patients.age, patients.ecog
    line1, hormone, line2, rt, eligible, alt, surgery = (
        draft.line1,
        draft.hormone,
        draft.line2,
        draft.rt,
        draft.eligible,
        draft.alt,
        draft.surgery,
    )
    bl = is_c["bladder"]
    surgery = np.where(bl & (stage == 0), -1, surgery)
    line1 = np.where(bl & (stage >= 2), _r("gem_cis"), line1)
    line2 = np.where(bl, _r("pembrolizumab"), line2)
    ki = is_c["kidney"]
    line1 = np.where(ki & (stage == 3), _r("sunitinib"), line1)
    line2 = np.where(ki, _r("nivolumab"), line2)
    me = is_c["melanoma"]
    braf = me & (stage >= 2) & (mk["braf"] == 1)
    line1 = np.where(me & (stage >= 2), np.where(braf, _r("dabrafenib_trametinib"), _r("nivolumab")), line1)
    eligible |= braf
    alt = np.where(braf, _r("nivolumab"), alt)
    line2 = np.where(me, np.where(braf, _r("nivolumab"), _r("dabrafenib_trametinib")), line2)
    pa = is_c["pancreas"]
    surgery = np.where(pa & (stage >= 2), -1, surgery)
    fit = (age < 75) & (ecog <= 1)
    line1 = np.where(pa, np.where(fit, _r("folfirinox"), _r("gemcitabine")), line1)
    line2 = np.where(pa, _r("gemcitabine"), line2)
    hn = is_c["head_neck"]
    line1 = np.where(hn & (stage >= 2), _r("cisplatin_rt"), line1)
    rt = np.where(hn, 35, rt)
    line2 = np.where(hn, _r("nivolumab"), line2)
    ly = is_c["lymphoma"]
    line1 = np.where(ly, _r("r_chop"), line1)
    line2 = np.where(ly, _r("gem_cis"), line2)
    ov = is_c["ovary"]
    surgery = np.where(ov & ((stage <= 2) | (u[:, 0] < 0.5)), _p("hysterectomy"), surgery)
    line1 = np.where(ov & ((stage >= 1) | (u[:, 1] < 0.3)), _r("carbo_paclitaxel_ov"), line1)
    brca = ov & (stage >= 2) & (mk["brca"] == 1)
    hormone = np.where(brca, _r("olaparib"), hormone)  # maintenance slot, after line 1
    eligible |= brca
    line2 = np.where(ov, _r("carbo_paclitaxel_ov"), line2)
    ut = is_c["uterus"]
    rt = np.where(ut & (stage >= 1) & (stage <= 2), 25, rt)
    line1 = np.where(ut & (stage >= 2), _r("carbo_paclitaxel_ov"), line1)
    line2 = np.where(ut, _r("pembrolizumab"), line2)
    draft.line1, draft.hormone, draft.line2, draft.rt, draft.eligible, draft.alt, draft.surgery = (
        line1,
        hormone,
        line2,
        rt,
        eligible,
        alt,
        surgery,
    )
    return brca


def _deviations(patients: _Patients, draft: _Draft, brca: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The documented deviations, in documented order.

    Returns the deviation kinds, the omitted targeted therapies, and each patient's probability of each
    deviation (column order of :data:`DEVIATIONS`; 0 where it cannot apply): the known non-conformance a
    conformance measurement must recover (ground truth), drawn from the same uniforms as before.
    """
    probability = np.zeros((patients.n, len(DEVIATIONS)))
    n, u, stage, age, ecog = patients.n, patients.u, patients.stage, patients.age, patients.ecog
    line1, hormone, eligible, alt, surgery = draft.line1, draft.hormone, draft.eligible, draft.alt, draft.surgery
    deviation = np.zeros(n, dtype=np.int8)
    d = DEVIATIONS["targeted_omitted"]
    logit = np.log(d["base_probability"] / (1 - d["base_probability"]))
    logit = logit + np.log(d["odds_ratio_age_75plus"]) * (age >= 75) + np.log(d["odds_ratio_ecog_2plus"]) * (ecog >= 2)
    probability[:, 0] = np.where(eligible, 1 / (1 + np.exp(-logit)), 0.0)
    omit_t = eligible & (u[:, 2] < probability[:, 0])
    line1 = np.where(omit_t & ~brca, alt, line1)
    hormone = np.where(omit_t & brca, -1, hormone)
    deviation = np.where(omit_t, 1, deviation)
    d = DEVIATIONS["surgery_omitted"]
    probability[:, 1] = np.where(
        surgery >= 0, d["base_probability"] + d["added_probability_age_80plus"] * (age >= 80), 0.0
    )
    omit_s = (surgery >= 0) & (u[:, 3] < probability[:, 1])
    surgery = np.where(omit_s, -1, surgery)
    deviation = np.where(omit_s & (deviation == 0), 2, deviation)
    d = DEVIATIONS["adjuvant_omitted"]
    chemo_kind = np.array([REGIMENS[k].kind == "chemo" for k in REGIMEN_KEYS])
    has_chemo = (line1 >= 0) & chemo_kind[np.maximum(line1, 0)]
    p_adj = d["base_probability"] + d["added_probability_age_75plus"] * (age >= 75)
    probability[:, 2] = np.where(has_chemo & (stage <= 2), p_adj, 0.0)
    omit_a = has_chemo & (stage <= 2) & (u[:, 4] < p_adj)
    line1 = np.where(omit_a, -1, line1)
    deviation = np.where(omit_a & (deviation == 0), 3, deviation)
    probability[:, 3] = np.where((hormone >= 0) & ~brca, DEVIATIONS["hormone_omitted"]["base_probability"], 0.0)
    omit_h = (hormone >= 0) & ~brca & (u[:, 5] < probability[:, 3])
    hormone = np.where(omit_h, -1, hormone)
    deviation = np.where(omit_h & (deviation == 0), 4, deviation)
    draft.line1, draft.hormone, draft.surgery = line1, hormone, surgery
    return deviation, omit_t, probability
