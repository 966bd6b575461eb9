"""Covariates of the mart as model columns: categories as indicators, booleans 0/1, numbers as they are.

The column names say what each is (``stage_group=III``, ``ecog_at_diagnosis=2``, ``age_at_diagnosis``), so
a hazard ratio or a standardized mean difference reads without a codebook. Which level is the reference
is stated (the first catalogue value present, for categories).

Examples
--------
>>> from massalia.health.marts.catalogue import load_catalogue
>>> frame = pd.DataFrame({"stage_group": ["I", "III", None], "age_at_diagnosis": [50.0, 70.0, 60.0]})
>>> design = covariate_matrix(frame, ["stage_group", "age_at_diagnosis"], load_catalogue(), missing="indicator")
>>> list(design.matrix.columns)
['stage_group=III', 'stage_group=missing', 'age_at_diagnosis']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from massalia.health.marts.catalogue import Catalogue, VariableType

BASELINE_GROUPS = ("demographics", "diagnosis", "stage", "biomarkers", "laboratory", "performance_status",
                   "comorbidities")  # fmt: skip
"""Catalogue groups known at diagnosis: the default covariates of a propensity model."""

EXCLUDED_BASELINE = frozenset({"person_id", "year_of_birth", "primary_concept_id", "care_site"})
"""Identifiers and duplicates of other baseline variables (a care site's name beside its code)."""

MAX_LEVELS = 30
"""A category (or text) with more levels than this is not expanded (a free-text field is no covariate)."""


@dataclass(frozen=True)
class CovariateMatrix:
    """Model columns (float), the rows kept, and for each categorical variable its reference level."""

    matrix: pd.DataFrame
    kept: np.ndarray
    references: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def baseline_covariates(catalogue: Catalogue, allowed: Sequence[str] = ()) -> list[str]:
    """The baseline variables (groups of :data:`BASELINE_GROUPS`, no identifiers, dates nor free text).

    ``allowed`` (a project's variables) narrows the list when not empty.
    """
    names = []
    for variable in catalogue.variables:
        if variable.group.value not in BASELINE_GROUPS or variable.name in EXCLUDED_BASELINE:
            continue
        if variable.type in (VariableType.DATE, VariableType.TEXT) and variable.name != "care_site_code":
            continue
        if allowed and variable.name not in allowed:
            continue
        names.append(variable.name)
    return names


def _levels(series: pd.Series, declared: Sequence[str] | None) -> list[str]:
    present = [str(value) for value in pd.unique(series.dropna())]
    if declared:
        return [value for value in declared if value in present] + sorted(set(present) - set(declared))
    return sorted(present, key=lambda value: (-int((series.astype(str) == value).sum()), value))


def covariate_matrix(
    frame: pd.DataFrame,
    names: Sequence[str],
    catalogue: Catalogue,
    *,
    categorical: Sequence[str] = (),
    missing: Literal["drop", "indicator"] = "drop",
) -> CovariateMatrix:
    """Model columns for ``names`` over ``frame``'s rows.

    Parameters
    ----------
    categorical
        Integer variables to expand as categories (``ecog_at_diagnosis``: a level each, not a slope).
    missing
        ``drop``: rows with a missing value are left out (complete cases, Cox models); ``indicator``: a
        ``=missing`` level for categories and booleans, the median and a ``:missing`` column for numbers
        (propensity models over many covariates, where complete cases would keep few rows).
    """
    columns: dict[str, np.ndarray] = {}
    references: dict[str, str] = {}
    dropped: list[str] = []
    keep = np.ones(len(frame), dtype=bool)
    for name in names:
        variable = catalogue.variable(name)
        series = frame[name]
        absent = series.isna().to_numpy()
        if missing == "drop":
            keep &= ~absent
        kind = variable.type
        as_category = kind in (VariableType.CATEGORY, VariableType.TEXT) or name in categorical
        if as_category:
            # Each distinct value is turned into text once (a per-row lambda cost seconds at 100,000 rows).
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            labels = np.array([*(str(value) for value in uniques), None], dtype=object)
            text = pd.Series(labels[codes], index=series.index)
            declared = variable.values if kind is VariableType.CATEGORY else None
            levels = _levels(text, declared)
            if len(levels) > MAX_LEVELS:
                dropped.append(name)
                continue
            if not levels:
                dropped.append(name)
                continue
            references[name] = levels[0]
            for level in levels[1:]:
                columns[f"{name}={level}"] = (text == level).to_numpy(dtype=float)
            if missing == "indicator" and absent.any():
                columns[f"{name}=missing"] = absent.astype(float)
        elif kind is VariableType.BOOLEAN:
            values = series.fillna(False).astype(bool).to_numpy(dtype=float)
            columns[name] = values
            if missing == "indicator" and absent.any():
                columns[f"{name}=missing"] = absent.astype(float)
        else:
            values = pd.to_numeric(series, errors="coerce").astype(float).to_numpy()
            if missing == "indicator" and absent.any():
                filled = np.nanmedian(values) if (~absent).any() else 0.0
                values = np.where(absent, filled, values)
                columns[f"{name}:missing"] = absent.astype(float)
            columns[name] = values
    matrix = pd.DataFrame(columns, index=frame.index)
    # Constant columns carry no information and make models singular.
    constant = [column for column in matrix.columns if np.nanstd(matrix.loc[keep, column].to_numpy()) == 0]
    matrix = matrix.drop(columns=constant)
    return CovariateMatrix(matrix.loc[keep], np.flatnonzero(keep), references, dropped + constant)
