"""Laboratory values over time: patient baselines, noise and treatment effects (neutropenia, anaemia, markers)."""

from __future__ import annotations

import numpy as np

from massalia.health.synth.catalogue import CANCERS, CBC, CHEMISTRY, LABS
from massalia.health.synth.cohort import Cohort

LAB_KEYS: tuple[str, ...] = tuple(LABS)
_MARKER_LAB = np.array([LAB_KEYS.index(c.marker_lab) if c.marker_lab else -1 for c in CANCERS])
_PANEL_BASE = [np.array([LAB_KEYS.index(k) for k in CBC + CHEMISTRY]), np.array([LAB_KEYS.index(k) for k in CBC])]
DAY = 86_400

NADIR_KINDS = {
    0: "none",
    1: "day-8 count after a myelotoxic cycle",
    2: "stay for febrile neutropenia",
    3: "stay for anaemia",
    4: "other unplanned stay",
}
"""Meaning of the ``nadir`` context of a lab draw (drives the treatment effects on values)."""


def draw_lab_values(
    rng: np.random.Generator, c: Cohort, draws: dict[str, np.ndarray], relapse_day: np.ndarray
) -> dict[str, np.ndarray]:
    """Expand lab draws into one row per analyte with a value.

    Parameters
    ----------
    rng
        Block generator.
    c
        The block's patients.
    draws
        ``pid, t (epoch s), visit, panel (0 CBC+chemistry, 1 + tumour marker, 2 CBC), on_chemo
        (cycles received in the current line), nadir (see NADIR_KINDS)``.
    relapse_day
        Observed relapse day per patient (huge when none).

    Returns
    -------
    dict[str, numpy.ndarray]
        ``pid, visit, t, lab, value``.
    """
    panel = draws["panel"]
    base_n = np.where(panel == 2, len(CBC), len(CBC) + len(CHEMISTRY))
    marker = _MARKER_LAB[c.cancer[draws["pid"]]]
    with_marker = (panel == 1) & (marker >= 0)
    counts = base_n + with_marker
    rows = np.repeat(np.arange(panel.shape[0]), counts)
    first = np.cumsum(counts) - counts
    k = np.arange(rows.shape[0]) - np.repeat(first, counts)
    full = _PANEL_BASE[0]
    lab = np.where(k < base_n[rows], full[np.minimum(k, full.shape[0] - 1)], marker[rows]).astype(np.int16)
    pid = draws["pid"][rows]
    t = draws["t"][rows]
    day = t // DAY

    means = np.array([LABS[x].mean for x in LAB_KEYS])
    cvs = np.array([LABS[x].cv for x in LAB_KEYS])
    patient_effect = rng.normal(0.0, 0.5, size=(len(c), len(LAB_KEYS))) * cvs
    log_v = np.log(means[lab]) + patient_effect[pid, lab] + rng.normal(0.0, 1.0, rows.shape[0]) * cvs[lab]
    cyc = draws["on_chemo"][rows].astype(float)
    nadir = draws["nadir"][rows]
    is_ = {x: lab == LAB_KEYS.index(x) for x in ("neutrophils", "platelets", "crp", "creatinine", "lymphocytes")}
    log_v += np.where(is_["neutrophils"], np.where(cyc > 0, np.log(0.75), 0.0), 0.0)
    log_v += np.where(is_["neutrophils"] & (nadir == 1), rng.normal(np.log(0.3), 0.5, rows.shape[0]), 0.0)
    log_v += np.where(is_["neutrophils"] & (nadir == 2), np.log(0.06), 0.0)
    log_v += np.where(is_["platelets"] & ((cyc > 0) | (nadir == 1)), np.log(0.8), 0.0)
    log_v += np.where(is_["crp"] & ((nadir == 2) | (nadir == 4)), np.log(15.0), 0.0)
    log_v += np.where(is_["creatinine"], 0.01 * (c.age[pid] - 65.0), 0.0)
    log_v += np.where(is_["lymphocytes"] & (cyc > 0), np.log(0.85), 0.0)
    # Tumour markers: high at diagnosis with stage, low after treatment, rising in the 5 months before relapse.
    is_marker = lab == _MARKER_LAB[c.cancer[pid]]
    since_dx = day - c.dx_day[pid]
    stage_f = np.log1p(1.5 * c.stage[pid]) + np.where(c.cancer[pid] == 1, np.log(4.0), 0.0)
    treated = np.where(c.plan.surgery[pid] >= 0, np.log(0.1), np.log(0.5))
    log_v += np.where(is_marker, np.where(since_dx < 30, stage_f, treated), 0.0)
    rise = np.clip(1.0 - (relapse_day[pid] - day) / 150.0, 0.0, 2.0)
    log_v += np.where(is_marker, 2.0 * rise, 0.0)
    value = np.exp(log_v)
    hb = lab == LAB_KEYS.index("hemoglobin")
    value = np.where(hb, value - np.minimum(0.25 * cyc, 3.0), value)
    value = np.where(hb & (nadir == 3), rng.uniform(6.2, 8.4, rows.shape[0]), value)
    # Leukocytes are the sum of their sub-populations plus monocytes/others.
    leuko = np.flatnonzero(lab == LAB_KEYS.index("leukocytes"))
    value[leuko] = value[leuko + 1] + value[leuko + 2] + rng.uniform(0.4, 1.0, leuko.shape[0])
    decimals = np.array([LABS[x].decimals for x in LAB_KEYS])[lab]
    scale = 10.0**decimals
    value = np.round(value * scale) / scale
    return {"pid": pid, "visit": draws["visit"][rows], "t": t, "lab": lab, "value": value}
