"""What an analysis is asked: the request models shared by the Python API, the CLI and the HTTP API.

Kept apart from the estimators so that the interfaces can declare their bodies without loading lifelines,
scikit-learn and statsmodels (seconds at start-up).

Examples
--------
>>> SurvivalRequest(project_id=1, endpoint="pfs", group_by="stage_group").endpoint
'pfs'
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from massalia.health.marts.filters import FilterSpec

CALIPER_SD = 0.2
"""Matching caliper, in standard deviations of the logit of the propensity score (Austin 2011)."""

Endpoint = Literal["os", "pfs", "rfs", "relapse", "second_cancer"]


class AnalysisRequest(BaseModel):
    """What every analysis names: the project, the cohort (mart filters), the endpoint, the curves' grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project_id: int = Field(ge=1, description="The approved project the analysis runs under.")
    filters: FilterSpec = Field(default_factory=FilterSpec, description="The cohort: mart filters.")
    endpoint: Endpoint = "os"
    time_step_months: float = Field(default=1.0, gt=0, le=24, description="Grid of the released curves.")
    at_risk_months: list[float] = Field(default_factory=lambda: [0.0, 12.0, 24.0, 36.0, 60.0], max_length=20)


class SurvivalRequest(AnalysisRequest):
    """A survival analysis of one cohort: KM (by group), log-rank, Cox, cumulative incidence."""

    group_by: str | None = Field(default=None, max_length=128, description="KM curves and log-rank by group.")
    strata: str | None = Field(default=None, max_length=128, description="Stratify the log-rank and the Cox model.")
    covariates: list[str] = Field(default_factory=list, max_length=60, description="Cox model covariates.")
    categorical: list[str] = Field(
        default_factory=list, max_length=60, description="Integer covariates read as categories (ECOG)."
    )
    competing_risks: bool = Field(default=False, description="Aalen–Johansen incidence (relapse, second_cancer).")


class CompareRequest(AnalysisRequest):
    """Two treatment cohorts of one population compared by propensity-score matching and weighting."""

    treated: FilterSpec = Field(description="Mart filters defining the treated cohort within the population.")
    comparator: FilterSpec = Field(description="Mart filters defining the comparator cohort.")
    covariates: list[str] | None = Field(
        default=None, max_length=200, description="Baseline covariates (default: every baseline variable)."
    )
    categorical: list[str] = Field(default_factory=lambda: ["ecog_at_diagnosis"], max_length=60)
    negative_controls: list[Endpoint] = Field(
        default_factory=list, max_length=20, description="Outcomes the treatment is believed not to affect."
    )
    caliper_sd: float = Field(default=CALIPER_SD, gt=0, le=2)

    @model_validator(mode="after")
    def _arms_name_no_cohort(self) -> CompareRequest:
        if self.treated.cohort_definition_id is not None or self.comparator.cohort_definition_id is not None:
            raise ValueError("name the cohort in filters (the population), not in treated or comparator")
        return self


PredictionOutcomeName = Literal["relapse", "second_cancer", "progression", "hospitalization"]
Algorithm = Literal["lasso_logistic", "gradient_boosting"]
ALGORITHM_NAMES: tuple[Algorithm, ...] = ("lasso_logistic", "gradient_boosting")
Pseudonym = Annotated[str, Field(min_length=1, max_length=64)]


class PredictionRequest(AnalysisRequest):
    """Develop risk models (PatientLevelPrediction's design): target cohort, outcome, time at risk, features.

    ``endpoint``, ``time_step_months`` and ``at_risk_months`` (of every analysis request) are not used.
    """

    outcome: PredictionOutcomeName = "relapse"
    tar_days: int | None = Field(
        default=None, ge=30, le=3653, description="Time at risk in days after diagnosis (default: the outcome's)."
    )
    features: list[str] | None = Field(
        default=None, max_length=200, description="Mart variables (default: every baseline variable in scope)."
    )
    categorical: list[str] = Field(default_factory=lambda: ["ecog_at_diagnosis"], max_length=60)
    algorithms: list[Algorithm] = Field(default_factory=lambda: list(ALGORITHM_NAMES), min_length=1, max_length=2)
    test_fraction: float = Field(
        default=0.25, ge=0.1, le=0.5, description="Share of persons, diagnosed last, held out as the test set."
    )
    bootstrap: int = Field(default=1000, ge=100, le=5000, description="Bootstrap resamples of the AUC's CI.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class PredictionScoreRequest(AnalysisRequest):
    """Persons to score with a stored model of the same project: the cohort's filters and/or pseudonyms.

    Per-person risks come back only under a pseudonymized (row-level) project; otherwise their distribution.
    """

    persons: list[Pseudonym] = Field(
        default_factory=list, max_length=5000, description="Project pseudonyms to score (e.g. a tumour board's list)."
    )


class PathwaysRequest(AnalysisRequest):
    """The most frequent treatment pathways of a cohort: sequences of steps, a Sankey, times between steps."""

    max_steps: int = Field(default=4, ge=1, le=8, description="Steps of each pathway (K).")
    top: int = Field(default=10, ge=1, le=50, description="Most frequent pathways shown (N).")
    detail: Literal["modality", "regimen"] = Field(
        default="modality", description="Label systemic steps by modality (chemotherapy+targeted) or by regimen."
    )


class ConformanceRequest(AnalysisRequest):
    """Conformance to reference-practice rules: rates per site and period, deviations, outcomes."""

    rules: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=50, description="Rule ids to evaluate (default: every rule of the set)."
    )
    rules_yaml: str | None = Field(
        default=None, max_length=200_000, description="A rule set of one's own (YAML), instead of the reference."
    )
    covariates: list[str] = Field(
        default_factory=lambda: ["age_at_diagnosis"], max_length=20, description="Cox model adjustment."
    )


PSEUDONYM_PATTERN = r"^p[A-Za-z0-9_]{1,32}-[0-9A-HJKMNP-TV-Z]{16}$"
"""A project pseudonym (:func:`massalia.governance.pseudonym.pseudonymize`): never a person id."""

VariableName = Annotated[str, Field(min_length=1, max_length=128)]
ProfileValue = Annotated[str, Field(max_length=128)] | float | bool | None


class SimilarRequest(AnalysisRequest):
    """The ``k`` persons most similar to an index patient (a project pseudonym, or a described profile)."""

    index_pseudonym: str | None = Field(
        default=None, max_length=64, pattern=PSEUDONYM_PATTERN,
        description="The index patient's pseudonym in this (pseudonymized) project.",
    )  # fmt: skip
    index_profile: dict[VariableName, ProfileValue] | None = Field(
        default=None, max_length=60, description="A described patient: variable → value (any approved project)."
    )
    k: int = Field(default=50, ge=1, le=500, description="How many neighbours.")
    weights: dict[VariableName, Annotated[float, Field(gt=0, le=100)]] | None = Field(
        default=None, max_length=60, description="Variables of the distance and their weights (default: documented)."
    )

    @model_validator(mode="after")
    def _one_index(self) -> SimilarRequest:
        if (self.index_pseudonym is None) == (self.index_profile is None):
            raise ValueError("name the index patient by index_pseudonym or describe it by index_profile (one of them)")
        return self


class GroupsRequest(AnalysisRequest):
    """Homogeneous groups of a cohort found by clustering mart variables, each profiled, with its outcomes."""

    variables: list[VariableName] | None = Field(
        default=None, max_length=60, description="Variables clustered (default: those of the similarity distance)."
    )
    min_groups: int = Field(default=2, ge=2, le=12)
    max_groups: int = Field(default=8, ge=2, le=12)
    top: int = Field(default=5, ge=1, le=20, description="Distinguishing variables listed per group.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Random state of k-means (reproducible groups).")

    @model_validator(mode="after")
    def _ordered_range(self) -> GroupsRequest:
        if self.min_groups > self.max_groups:
            raise ValueError(f"min_groups ({self.min_groups}) must not exceed max_groups ({self.max_groups})")
        return self


class BaselineRow(BaseModel):
    """One line of a trial's published baseline table: a covariate's mean, or a level's proportion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variable: str = Field(min_length=1, max_length=64, description="The mart variable (age_at_diagnosis, sex...).")
    level: str | None = Field(default=None, max_length=64, description="The level of a category (stage IV).")
    statistic: Literal["mean", "proportion"] = Field(description="mean (numbers) or proportion (levels, booleans).")
    value: float = Field(allow_inf_nan=False, ge=-1e6, le=1e6, description="The trial's mean or proportion (0–1).")

    @model_validator(mode="after")
    def _proportion_in_unit_interval(self) -> BaselineRow:
        if self.statistic == "proportion" and not 0 <= self.value <= 1:
            raise ValueError(f"a proportion lies in 0–1, got {self.value:g} (write 0.3 for 30 %)")
        if self.statistic == "mean" and self.level is not None:
            raise ValueError("a mean has no level: give the proportion of a level instead")
        return self


class TrialKmPoint(BaseModel):
    """A point of the trial's reported Kaplan–Meier curve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    months: float = Field(ge=0, le=600, allow_inf_nan=False)
    survival: float = Field(ge=0, le=1, allow_inf_nan=False)


class TrialSummary(BaseModel):
    """A single-arm trial's published summary: its size, baseline table and, optionally, its outcome."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(ge=1, le=1_000_000, description="Patients in the trial arm.")
    baseline: list[BaselineRow] = Field(min_length=1, max_length=50, description="Means and proportions.")
    km: list[TrialKmPoint] = Field(default_factory=list, max_length=200, description="The trial's KM points.")
    median_months: float | None = Field(default=None, ge=0, le=600, allow_inf_nan=False)

    @model_validator(mode="after")
    def _no_duplicate_rows(self) -> TrialSummary:
        seen: dict[tuple[str, str | None], int] = {}
        for index, row in enumerate(self.baseline):
            key = (row.variable, row.level)
            if key in seen:
                raise ValueError(f"baseline row {index}: {row.variable}{'=' + row.level if row.level else ''} "
                                 f"already given in row {seen[key]}")  # fmt: skip
            seen[key] = index
        return self


class ControlArmRequest(AnalysisRequest):
    """A synthetic control arm for a single-arm trial: real-world persons meeting its eligibility, not treated.

    ``filters`` are the eligibility. Individual-data mode names the trial arm in the warehouse with ``trial``
    (propensity ATT weighting); summary-data mode gives the trial's baseline table in ``trial_summary``
    (MAIC). ``controls`` restricts the real-world controls further (e.g. ``line1_modality is_null``).
    """

    trial: FilterSpec | None = Field(default=None, description="Mart filters naming the trial's patients.")
    trial_summary: TrialSummary | None = Field(default=None, description="The trial's published summary.")
    controls: FilterSpec | None = Field(default=None, description="Extra conditions on the real-world controls.")
    covariates: list[str] | None = Field(
        default=None, max_length=200, description="PS covariates (default: every baseline variable in scope)."
    )
    categorical: list[str] = Field(default_factory=lambda: ["ecog_at_diagnosis"], max_length=60)
    landmark_months: float = Field(
        default=0.0,
        ge=0,
        le=60,
        allow_inf_nan=False,
        description="Count the outcome from this time after diagnosis (removes immortal time before treatment).",
    )
    propensity: Literal["auto", "logistic", "regularized"] = Field(
        default="auto", description="PS model: maximum likelihood up to 30 model columns (auto), or CV ridge."
    )

    @model_validator(mode="after")
    def _one_mode(self) -> ControlArmRequest:
        if (self.trial is None) == (self.trial_summary is None):
            raise ValueError("give either trial (its patients are in the warehouse) or trial_summary (MAIC)")
        for spec in (self.trial, self.controls):
            if spec is not None and spec.cohort_definition_id is not None:
                raise ValueError("name the cohort in filters (the eligibility), not in trial or controls")
        return self


class HypothesesRequest(AnalysisRequest):
    """A guided comparison of mart variables between two cohorts (within ``filters``), adjusted for multiplicity.

    The test is chosen by each variable's type in the mart catalogue; persons in both groups are left out.
    """

    group_a: FilterSpec = Field(description="Mart filters naming the first cohort (e.g. pregnant).")
    group_b: FilterSpec = Field(description="Mart filters naming the second cohort.")
    variables: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(
        min_length=1, max_length=50, description="The mart variables compared (numbers, booleans, categories)."
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5, allow_inf_nan=False, description="Significance level.")

    @model_validator(mode="after")
    def _distinct(self) -> HypothesesRequest:
        if len(set(self.variables)) != len(self.variables):
            raise ValueError("each variable is compared once: remove the repeated names")
        for name, spec in (("group_a", self.group_a), ("group_b", self.group_b)):
            if not spec.all and not spec.any_of:
                raise ValueError(f"{name} names no condition: give the mart filters of that cohort")
            if spec.cohort_definition_id is not None:
                raise ValueError("name the cohort in filters, not in group_a or group_b")
        return self


DEFAULT_PATTERN_VARIABLES: tuple[str, ...] = (
    "primary_site",
    "stage_group",
    "age_group_at_diagnosis",
    "er_status",
    "pr_status",
    "her2_status",
    "egfr_status",
    "kras_status",
    "braf_status",
    "msi_status",
    "brca_status",
    "metastatic_at_diagnosis",
    "comorbidity_diabetes",
    "comorbidity_hypertension",
    "comorbidity_ischemic_heart",
    "comorbidity_copd",
    "comorbidity_ckd",
    "comorbidity_obesity",
    "comorbidity_atrial_fibrillation",
    "pregnancy_associated",
    "had_surgery",
    "received_chemotherapy",
    "received_immunotherapy",
    "received_targeted_therapy",
    "received_hormone_therapy",
    "line1_modality",
)
"""Diagnoses, stage, biomarkers, comorbidities and treatments mined when a request names no variable (those of
the project's variables)."""


class PatternsRequest(AnalysisRequest):
    """Pattern discovery in a cohort: association rules between mart items and frequent care sequences.

    A pattern is reported with its support, confidence and lift, and flagged unexpected when its lift is at
    least ``min_lift`` and its Benjamini–Hochberg adjusted one-sided hypergeometric p is under ``alpha``.
    """

    variables: list[Annotated[str, Field(min_length=1, max_length=63)]] | None = Field(
        default=None, max_length=60, description="Booleans and categories mined (default: a clinical set)."
    )
    sequences: bool = Field(default=True, description="Also mine ordered care sequences (surgery, RT, systemic).")
    max_length: int = Field(default=3, ge=2, le=3, description="Most items of a rule or steps of a sequence.")
    max_steps: int = Field(default=6, ge=2, le=10, description="Steps of each pathway read for sequences.")
    min_count: int = Field(
        default=20, ge=1, le=1_000_000, description="Fewest persons of a pattern (never under the threshold)."
    )
    min_lift: float = Field(default=1.5, ge=1.0, le=100.0, allow_inf_nan=False)
    alpha: float = Field(default=0.05, gt=0, lt=0.5, allow_inf_nan=False, description="FDR level (BH).")
    top: int = Field(default=50, ge=1, le=500, description="Most rules and sequences listed.")

    @model_validator(mode="after")
    def _distinct(self) -> PatternsRequest:
        if self.variables is not None and len(set(self.variables)) != len(self.variables):
            raise ValueError("each variable is mined once: remove the repeated names")
        if self.variables is not None and len(self.variables) < 2:
            raise ValueError("name at least two variables: a pattern links items of different variables")
        return self
