"""Robust Cox errors in linear time: the same score residuals and standard errors as lifelines' own."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi

from massalia.health.analytics.survival import LinearScoreCoxPHFitter


@pytest.fixture(scope="module")
def rossi() -> pd.DataFrame:
    data = load_rossi()
    rng = np.random.default_rng(3)
    data["w"] = rng.uniform(0.2, 5.0, size=len(data))  # IPW-like weights
    data["site"] = rng.integers(0, 4, size=len(data))
    return data


@pytest.mark.parametrize(
    "options",
    [
        {"weights_col": "w", "robust": True},
        {"robust": True},
        {"weights_col": "w", "robust": True, "strata": ["wexp"]},
        {"cluster_col": "site"},
    ],
    ids=["weighted", "unweighted", "stratified", "clustered"],
)
def test_standard_errors_equal_lifelines(rossi: pd.DataFrame, options: dict[str, object]) -> None:
    data = rossi if "cluster_col" in options or "weights_col" in options else rossi.drop(columns=["w"])
    if "cluster_col" not in options:
        data = data.drop(columns=["site"])
    if "weights_col" not in options and "w" in data:
        data = data.drop(columns=["w"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = LinearScoreCoxPHFitter().fit(data, "week", "arrest", **options)
        theirs = CoxPHFitter().fit(data, "week", "arrest", **options)
    assert np.allclose(ours.params_, theirs.params_)
    assert np.allclose(ours.standard_errors_, theirs.standard_errors_, rtol=1e-9, atol=0)
    ours_score = ours.compute_residuals(data, "score")
    theirs_score = theirs.compute_residuals(data, "score")
    assert np.allclose(ours_score.to_numpy(), theirs_score.to_numpy(), rtol=1e-9, atol=1e-12)


def test_concordance_on_a_sample_is_close_to_the_full_one(rossi: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    from massalia.health.analytics import survival

    data = rossi.drop(columns=["w", "site"]).rename(columns={"week": "time", "arrest": "event"})
    full = survival.cox_model(data, check_ph=False)
    assert full["concordance_sampled"] is False
    monkeypatch.setattr(survival, "CONCORDANCE_MAX_PERSONS", 300)
    sampled = survival.cox_model(data, check_ph=False)
    assert sampled["concordance_sampled"] is True
    assert abs(sampled["concordance"] - full["concordance"]) < 0.03
    assert sampled["terms"] == full["terms"]  # the model itself is always fitted on every row


def test_a_model_that_cannot_converge_is_a_clear_request_error(rossi: pd.DataFrame) -> None:
    from massalia.governance import InvalidRequest
    from massalia.health.analytics import survival

    data = rossi[["week", "arrest", "fin"]].rename(columns={"week": "time", "arrest": "event"})
    data["copy_of_fin"] = data["fin"]  # perfectly collinear: lifelines raises ConvergenceError
    with pytest.raises(InvalidRequest, match="did not converge with the covariates fin, copy_of_fin"):
        survival.cox_model(data, check_ph=False)
