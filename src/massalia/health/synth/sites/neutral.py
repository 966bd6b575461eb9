"""Site-neutral tumour, biomarker and patient-level rows derived from a cohort (shared by the writers)."""

from __future__ import annotations

import numpy as np

from massalia.health.synth.catalogue import BIOMARKERS, CANCERS
from massalia.health.synth.cohort import MARKERS, Cohort
from massalia.health.synth.timeline import Table, Timeline

CANCER_FIRST_ICD10 = np.array([c.icd10[0][0] for c in CANCERS], dtype=object)
CANCER_FIRST_MORPH = np.array([c.histologies[0][0] for c in CANCERS], dtype=object)


ECOG_SCORES = ("0", "1", "2", "3", "4")
"""ECOG (WHO) performance status as sites write it."""


def tumour_rows(c: Cohort) -> Table:
    """Primary tumours (rank 0) and second primaries (rank 1) with staging.

    Second primaries carry their cancer's most frequent code and histology, an unknown stage
    (``stage`` −1) and no TNM: a second cancer diagnosed elsewhere and noted in the record.
    """
    n = len(c)
    sc = np.flatnonzero(c.second_cancer >= 0)
    pid = np.r_[np.arange(n), sc]
    rank = np.r_[np.zeros(n, np.int8), np.ones(sc.size, np.int8)]
    sc_day = c.dx_day[sc] + np.floor(c.second_cancer_years[sc] * 365.25).astype(np.int64)
    minus = np.full(sc.size, -1, np.int8)
    return {
        "pid": pid,
        "rank": rank,
        "day": np.r_[c.dx_day, sc_day],
        "icd10": np.r_[c.icd10, CANCER_FIRST_ICD10[c.second_cancer[sc]]],
        "morphology": np.r_[c.morphology, CANCER_FIRST_MORPH[c.second_cancer[sc]]],
        "grade": np.r_[c.grade, minus],
        "ct": np.r_[c.ct, minus],
        "cn": np.r_[c.cn, minus],
        "cm": np.r_[c.cm, minus],
        "pt": np.r_[c.pt, minus],
        "pn": np.r_[c.pn, minus],
        "stage": np.r_[c.stage, minus],
        "laterality": np.r_[c.laterality, np.zeros(sc.size, np.int64)],
        # Performance status at diagnosis, as the oncologist records it; unknown for a second primary.
        "ecog": np.r_[c.ecog, minus],
    }


def biomarker_rows(c: Cohort) -> Table:
    """One row per tested biomarker of the primary tumour (status 0/1, value for numeric markers)."""
    pid, k = np.nonzero(c.marker >= 0)
    return {
        "pid": pid,
        "marker": k,
        "day": c.dx_day[pid] + 4 + c.index[pid] % 9,
        "status": c.marker[pid, k],
        "value": c.marker_value[pid, k],
        "numeric": np.array([BIOMARKERS[m].numeric for m in MARKERS])[k],
    }


def in_hospital_death(c: Cohort, t: Timeline) -> np.ndarray:
    """True for patients whose death ends a hospital stay (exit mode 2)."""
    out = np.zeros(len(c), dtype=bool)
    out[t.visits["pid"][t.visits["exit"] == 2]] = True
    return out


def death_day(c: Cohort) -> np.ndarray:
    """Observed death day, -1 when alive at the end of follow-up."""
    end = c.dx_day + np.floor(c.end_years * 365.25).astype(np.int64)
    return np.where(c.death_observed, end, -1)


def dose_factor(c: Cohort) -> np.ndarray:
    """Per-patient dose multiplier (body surface area / weight), deterministic from the index."""
    return 0.85 + (c.index * 2654435761 % 1000) / 1000.0 * 0.35
