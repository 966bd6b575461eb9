"""Ground truth written next to the data: model parameters (JSON) and one row per patient (Parquet)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from massalia.health.synth.catalogue import CANCERS, REGIMENS
from massalia.health.synth.cohort import (
    COMORBIDITY_KEYS,
    GESTATION_DAYS,
    MARKERS,
    N_CATS,
    PABC_AGE_LIMIT,
    PABC_PROBABILITY,
    T_CATS,
    Cohort,
)
from massalia.health.synth.dirty import DEFECT_KINDS
from massalia.health.synth.hazard import DATA_CUTOFF, DIAGNOSIS_START, HazardModel
from massalia.health.synth.labs import NADIR_KINDS
from massalia.health.synth.treatment import DEVIATION_KINDS, DEVIATIONS, PROCEDURE_KEYS, REGIMEN_KEYS

FAMILY_RELATIVES = ("mother", "father", "sister", "brother")
"""Names of ``Cohort.family_relative``'s codes 0-3 in the ground truth."""

GENERATOR_VERSION = "1.0.0"
STAGES = ("I", "II", "III", "IV")


def ground_truth(seed: int, model: HazardModel, site_weights: dict[str, float]) -> dict[str, Any]:
    """The machine-readable description of how the data were drawn (``ground_truth.json``).

    Examples
    --------
    >>> from massalia.health.synth.hazard import DEFAULT_MODEL
    >>> ground_truth(0, DEFAULT_MODEL, {"chu_nord": 1.0})["hazard_model"]["death_hr"]["stage_IV"]
    12.0
    """
    return {
        "generator": "massalia.health.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "data_cutoff": DATA_CUTOFF.isoformat(),
        "diagnosis_period": [DIAGNOSIS_START.isoformat(), DATA_CUTOFF.isoformat()],
        "site_weights": site_weights,
        "hazard_model": model.to_dict(),
        "deviations": DEVIATIONS,
        "cancers": {
            c.key: {
                "label_fr": c.label_fr,
                "incidence_male": c.incidence_m,
                "incidence_female": c.incidence_f,
                "age_mean": c.age_mean,
                "age_sd": c.age_sd,
                "stage_probabilities": dict(zip(STAGES, c.stage_probs, strict=True)),
                "surv5_reference": c.surv5_ref,
                "rfs5_reference": c.rfs5_ref,
                "icd10": dict(c.icd10),
                "histologies": {h[0]: h[2] for h in c.histologies},
            }
            for c in CANCERS
        },
        "stage_rule": "M1 -> IV; T4 or N2/N3 -> III; T2/T3 or N1 -> II; T1 N0 -> I (clinical TNM)",
        "lab_effects": {
            "neutrophils": "x0.75 before cycles of myelotoxic lines; x~0.3 at day-8 nadir counts; x0.06 in "
            "stays for febrile neutropenia",
            "platelets": "x0.8 on myelotoxic lines",
            "hemoglobin": "-0.25 g/dL per cycle received (max -3); 6.2-8.4 g/dL in stays for anaemia",
            "crp": "x15 in unplanned stays other than anaemia",
            "tumour_marker": "high at diagnosis (x(1+1.5*stage)), low after treatment, x e^(2*r) with r rising "
            "linearly over the 150 days before an observed relapse",
            "draw_contexts": NADIR_KINDS,
        },
        "defect_kinds": list(DEFECT_KINDS),
        "regimens": {k: {"label": r.label, "drugs": list(r.drugs), "kind": r.kind} for k, r in REGIMENS.items()},
        "pregnancy": {
            "definition": "pregnancy-associated breast cancer: diagnosed during pregnancy or within 12 months "
            "after delivery",
            "eligible": f"women with breast cancer diagnosed before {PABC_AGE_LIMIT:g} years",
            "probability": PABC_PROBABILITY,
            "timing": "half during pregnancy (gestational week uniform 6-38), half after delivery (0-364 days)",
            "gestation_days": GESTATION_DAYS,
            "recorded_as": "ICD-10 Z33 at an obstetric consultation 56 days after the pregnancy start, mapped to "
            "SNOMED 72892002 'Normal pregnancy' (OMOP 4217975)",
            "death_hr": model.death_hr["pregnancy_associated"],
            "relapse_hr": model.relapse_hr["pregnancy_associated"],
            "source": "Azim HA Jr et al. Prognosis of pregnancy-associated breast cancer: a meta-analysis of 30 "
            "studies. Cancer Treat Rev 2012;38(7):834-842 (pooled HR death 1.44 [1.27-1.63], DFS 1.60 [1.19-2.16])",
        },
    }


def _names(labels: tuple[str, ...] | list[str], idx: np.ndarray) -> pa.Array:
    arr = pa.array(list(labels), type=pa.string()).take(pa.array(np.maximum(idx, 0).astype(np.int64)))
    return pa.array(arr.to_pylist(), mask=idx < 0, type=pa.string()) if (idx < 0).any() else arr


def patient_truth(c: Cohort, site_names: list[str], source_ids: list[str]) -> pa.Table:
    """One row per patient with everything the generator decided (times in days since diagnosis).

    Parameters
    ----------
    c
        The patients (any number of blocks, one site or several).
    site_names
        Site of each patient.
    source_ids
        The patient id as written in the site's files.
    """
    keys = [k.key for k in CANCERS]
    day = 365.25
    cols: dict[str, pa.Array] = {
        "site": pa.array(site_names, type=pa.string()),
        "source_patient_id": pa.array(source_ids, type=pa.string()),
        "patient_index": pa.array(c.index, type=pa.int64()),
        "sex": pa.array(np.where(c.male, "M", "F")),
        "birth_date": pa.array(c.birth_day.astype("datetime64[D]")),
        "diagnosis_date": pa.array(c.dx_day.astype("datetime64[D]")),
        "age_at_diagnosis": pa.array(np.round(c.age, 2)),
        "cancer": _names(keys, c.cancer),
        "icd10": pa.array(c.icd10.tolist(), type=pa.string()),
        "morphology": pa.array(c.morphology.tolist(), type=pa.string()),
        "stage": _names(STAGES, c.stage),
        "ct": _names(T_CATS, c.ct),
        "cn": _names(N_CATS, c.cn),
        "cm": _names(("M0", "M1"), c.cm),
        "pt": _names(T_CATS, c.pt),
        "pn": _names(N_CATS, c.pn),
        "grade": pa.array(c.grade, type=pa.int8()),
        "ecog": pa.array(c.ecog, type=pa.int8()),
        "n_comorbidities": pa.array(c.comorb.sum(axis=1), type=pa.int8()),
    }
    for j, k in enumerate(COMORBIDITY_KEYS):
        cols[f"comorbidity_{k}"] = pa.array(c.comorb[:, j])
    for j, m in enumerate(MARKERS):
        st = c.marker[:, j]
        cols[f"marker_{m}"] = pa.array(st.astype(np.int8), mask=st < 0)
        if not np.isnan(c.marker_value[:, j]).all():
            cols[f"marker_{m}_value"] = pa.array(c.marker_value[:, j], from_pandas=True)
    p = c.plan
    cols |= {
        "surgery": _names(PROCEDURE_KEYS, p.surgery),
        "line1_regimen": _names(REGIMEN_KEYS, p.line1),
        "hormone_regimen": _names(REGIMEN_KEYS, p.hormone),
        "rt_fractions": pa.array(p.rt_fractions, pa.int16()),
        "line2_regimen": _names(REGIMEN_KEYS, p.line2),
        "targeted_eligible": pa.array(p.targeted_eligible),
        "matched_targeted": pa.array(p.matched_targeted),
        "chemo_line1": pa.array(p.chemo_line1),
        "deviation": _names(DEVIATION_KINDS, p.deviation.astype(np.int64)),
        # each patient's probability of each documented deviation: the known non-conformance rate of a
        # population (a site's HER2-positive early breast cancers...) is the mean of it over that population
        **{f"p_{kind}": pa.array(np.round(p.deviation_probability[:, j], 6)) for j, kind in enumerate(DEVIATIONS)},
        "relapse_time_true_days": pa.array(np.minimum(c.relapse_years * day, 1e7)),
        "death_time_true_days": pa.array(c.death_years * day),
        "censor_time_days": pa.array(c.censor_years * day),
        "end_of_followup_days": pa.array(c.end_years * day),
        "relapse_observed": pa.array(c.relapse_observed),
        "death_observed": pa.array(c.death_observed),
        "hospitalization_rate_per_year": pa.array(c.hosp_rate),
        "second_cancer": _names(keys, c.second_cancer),
        "second_cancer_time_days": pa.array(
            np.where(np.isfinite(c.second_cancer_years), c.second_cancer_years * day, np.nan), from_pandas=True
        ),
        "family_history_cancer": _names(keys, c.family_history),
        "pregnancy_associated": pa.array(c.pregnancy_day >= 0),
        "pregnancy_start_date": pa.array(c.pregnancy_day.astype("datetime64[D]"), mask=c.pregnancy_day < 0),
        "delivery_date": pa.array(c.delivery_day.astype("datetime64[D]"), mask=c.delivery_day < 0),
        "family_history_relative": pa.array(
            [
                FAMILY_RELATIVES[relative] if history >= 0 else None
                for history, relative in zip(c.family_history.tolist(), c.family_relative.tolist(), strict=True)
            ],
            type=pa.string(),
        ),
    }
    return pa.table(cols)
