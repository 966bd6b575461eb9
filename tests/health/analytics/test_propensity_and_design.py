"""The propensity model's sampled penalty search, and categorical covariates turned into columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from massalia.health.analytics import effectiveness
from massalia.health.analytics.design import covariate_matrix
from massalia.health.marts.catalogue import load_catalogue


def _people(n: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.integers(0, 3, size=n)})
    logit = 0.8 * x["a"] - 0.5 * x["b"] + 0.3 * x["c"] - 0.2
    treated = rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))
    return x, treated


def test_penalty_searched_on_a_sample_gives_the_scores_of_the_full_search(monkeypatch: pytest.MonkeyPatch) -> None:
    x, treated = _people(3_000)
    full = effectiveness.propensity_score(x, treated)
    monkeypatch.setattr(effectiveness, "PS_CV_MAX_PERSONS", 1_000)
    sampled = effectiveness.propensity_score(x, treated)
    assert abs(sampled.auc - full.auc) < 0.005
    assert np.max(np.abs(sampled.score - full.score)) < 0.02
    # The model is refitted on everyone: scores differ from a model fitted on the sample alone.
    assert len(sampled.score) == len(treated)


def test_categories_become_one_column_per_level_with_missing_rows_dropped() -> None:
    frame = pd.DataFrame({"stage_group": ["I", "II", None, "IV", "II"], "ecog_at_diagnosis": [0, 1, 2, 1, None]})
    design = covariate_matrix(frame, ["stage_group", "ecog_at_diagnosis"], load_catalogue(),
                              categorical=["ecog_at_diagnosis"])  # fmt: skip
    assert list(design.kept) == [0, 1, 3]
    assert design.references["stage_group"] == "I"
    assert design.matrix["stage_group=II"].tolist() == [0.0, 1.0, 0.0]
    assert design.matrix["stage_group=IV"].tolist() == [0.0, 0.0, 1.0]
    # Integers declared categorical are levels, not a slope, labelled by the values' text (the float column's).
    assert [c for c in design.matrix.columns if c.startswith("ecog")] == ["ecog_at_diagnosis=0.0"]
    assert design.matrix["ecog_at_diagnosis=0.0"].tolist() == [1.0, 0.0, 0.0]
