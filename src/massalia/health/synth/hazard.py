"""The documented outcome model: Weibull proportional hazards for relapse and death, Poisson hospitalizations.

Every number here is written to ``ground_truth.json`` so analyses can be checked against it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import numpy as np

from massalia.health.synth.catalogue import CANCERS

COVARIATES: tuple[str, ...] = (
    "stage_II",
    "stage_III",
    "stage_IV",
    "age_per_10y",
    "ecog_1",
    "ecog_2plus",
    "male",
    "comorbidities",
    "matched_targeted",
    "hormone_therapy",
    "triple_negative",
    "chemo_line1",
    "pregnancy_associated",
)
"""Names of the design-matrix columns shared by every hazard (see ``design_matrix``)."""

DATA_CUTOFF = dt.date(2025, 12, 31)
DIAGNOSIS_START = dt.date(2012, 1, 1)
EPOCH = dt.date(1970, 1, 1)
CUTOFF_DAY = (DATA_CUTOFF - EPOCH).days
DIAGNOSIS_START_DAY = (DIAGNOSIS_START - EPOCH).days
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class HazardModel:
    """Parameters of the outcome model (hazard ratios, not log).

    Death: ``h(t|x) = h0_c(t) · exp(β·x) · HR_relapse^{1[t > relapse]}`` with Weibull baseline
    ``H0_c(t) = (t / scale_c) ** death_shape`` (t in years from diagnosis), ``scale_c`` solved from
    the cancer's reference 5-year survival. Relapse/progression: Weibull PH with its own HRs, its
    time independent of death given x (death before relapse censors it). Unplanned hospitalizations:
    Poisson process with a constant rate per patient ``hosp_base_rate · exp(γ·x)`` per person-year
    alive and followed. Loss to follow-up: exponential at ``loss_to_followup_rate``; administrative
    censoring at ``DATA_CUTOFF``.
    """

    death_shape: float = 1.1
    relapse_shape: float = 0.9
    death_hr: dict[str, float] = field(
        default_factory=lambda: {
            "stage_II": 2.0,
            "stage_III": 4.0,
            "stage_IV": 12.0,
            "age_per_10y": 1.35,
            "ecog_1": 1.5,
            "ecog_2plus": 2.5,
            "male": 1.1,
            "comorbidities": 1.15,
            "matched_targeted": 0.65,
            "hormone_therapy": 0.85,
            "triple_negative": 1.6,
            "chemo_line1": 1.0,
            # Azim et al. 2012, Cancer Treat Rev 38:834-842 (30 studies): pooled HR of death 1.44 (1.27-1.63)
            "pregnancy_associated": 1.44,
        }
    )
    death_hr_after_relapse: float = 3.0
    relapse_hr: dict[str, float] = field(
        default_factory=lambda: {
            "stage_II": 1.8,
            "stage_III": 3.5,
            "stage_IV": 10.0,
            "age_per_10y": 1.05,
            "ecog_1": 1.2,
            "ecog_2plus": 1.5,
            "male": 1.0,
            "comorbidities": 1.0,
            "matched_targeted": 0.55,
            "hormone_therapy": 0.6,
            "triple_negative": 1.8,
            "chemo_line1": 1.0,
            # Azim et al. 2012: pooled HR of relapse (DFS) 1.60 (1.19-2.16)
            "pregnancy_associated": 1.60,
        }
    )
    hosp_base_rate: float = 0.25
    hosp_rr: dict[str, float] = field(
        default_factory=lambda: {
            "stage_II": 1.0,
            "stage_III": 1.2,
            "stage_IV": 1.8,
            "age_per_10y": 1.15,
            "ecog_1": 1.4,
            "ecog_2plus": 2.2,
            "male": 1.0,
            "comorbidities": 1.2,
            "matched_targeted": 1.0,
            "hormone_therapy": 1.0,
            "triple_negative": 1.0,
            "chemo_line1": 1.6,
            "pregnancy_associated": 1.0,
        }
    )
    loss_to_followup_rate: float = 0.02
    second_cancer_rate: float = 0.006

    def death_scale(self) -> dict[str, float]:
        """Weibull scale (years) of the death baseline per cancer, from its reference 5-year survival."""
        return {c.key: 5.0 / (-np.log(c.surv5_ref)) ** (1 / self.death_shape) for c in CANCERS}

    def relapse_scale(self) -> dict[str, float]:
        """Weibull scale (years) of the relapse baseline per cancer, from its reference 5-year RFS."""
        return {c.key: 5.0 / (-np.log(c.rfs5_ref)) ** (1 / self.relapse_shape) for c in CANCERS}

    def to_dict(self) -> dict[str, object]:
        """Everything needed to reproduce the hazards, as JSON-ready values."""
        out: dict[str, object] = asdict(self)
        out["covariates"] = list(COVARIATES)
        out["death_weibull_scale_years"] = self.death_scale()
        out["relapse_weibull_scale_years"] = self.relapse_scale()
        out["time_unit"] = "years since diagnosis"
        out["data_cutoff"] = DATA_CUTOFF.isoformat()
        out["covariate_definitions"] = {
            "stage_II": "stage group II (ref: I)",
            "stage_III": "stage group III",
            "stage_IV": "stage group IV",
            "age_per_10y": "(age at diagnosis - 65) / 10",
            "ecog_1": "ECOG 1 at diagnosis (ref: 0)",
            "ecog_2plus": "ECOG >= 2",
            "male": "sex male",
            "comorbidities": "number of comorbidities",
            "matched_targeted": "received the biomarker-matched targeted therapy it was eligible for",
            "hormone_therapy": "received hormone therapy in line 1",
            "triple_negative": "breast ER-, PR-, HER2-",
            "chemo_line1": "line 1 includes myelotoxic chemotherapy",
            "pregnancy_associated": "breast cancer diagnosed during pregnancy or within 12 months after delivery "
            "(Azim et al. 2012's definition; ground_truth.json 'pregnancy')",
        }
        return out


DEFAULT_MODEL = HazardModel()


def linear_predictor(x: np.ndarray, hrs: dict[str, float]) -> np.ndarray:
    """``x @ log(HR)`` for a design matrix whose columns follow ``COVARIATES``.

    Examples
    --------
    >>> x = np.zeros((2, len(COVARIATES))); x[1, 0] = 1
    >>> np.round(np.exp(linear_predictor(x, DEFAULT_MODEL.death_hr)), 2).tolist()
    [1.0, 2.0]
    """
    beta = np.log(np.array([hrs[name] for name in COVARIATES]))
    return x @ beta


def sample_weibull_ph(rng: np.random.Generator, scale: np.ndarray, shape: float, lp: np.ndarray) -> np.ndarray:
    """Event times (years) with cumulative hazard ``(t/scale)**shape · exp(lp)``, by inversion."""
    e = rng.exponential(size=lp.shape[0])
    return scale * (e * np.exp(-lp)) ** (1.0 / shape)


def sample_death_with_relapse(
    rng: np.random.Generator,
    scale: np.ndarray,
    shape: float,
    lp: np.ndarray,
    relapse_years: np.ndarray,
    hr_after: float,
) -> np.ndarray:
    """Death times (years) whose hazard is multiplied by ``hr_after`` from the relapse time on.

    Inverts the piecewise cumulative hazard ``H(t) = H0(t)·e^lp`` before relapse and
    ``H(R) + hr_after·(H0(t) − H0(R))·e^lp`` after it.
    """
    e = rng.exponential(size=lp.shape[0])
    k = np.exp(lp)
    h_at_r = (np.minimum(relapse_years, 1e6) / scale) ** shape * k
    before = e <= h_at_r
    target = np.where(before, e, h_at_r + (e - h_at_r) / hr_after)
    return scale * (target / k) ** (1.0 / shape)
