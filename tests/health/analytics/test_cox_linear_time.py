"""Cox fits in linear time: the same Efron sums, coefficients, score residuals and standard errors as lifelines'."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi
from lifelines.fitters.coxph_fitter import SemiParametricPHFitter

from massalia.health.analytics.survival import LinearTimeCoxPHFitter, _efron_sums


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
        {},
        {"strata": ["wexp"]},
    ],
    ids=["weighted", "unweighted", "stratified", "clustered", "plain", "plain-stratified"],
)
def test_standard_errors_equal_lifelines(rossi: pd.DataFrame, options: dict[str, object]) -> None:
    data = rossi if "cluster_col" in options or "weights_col" in options else rossi.drop(columns=["w"])
    if "cluster_col" not in options:
        data = data.drop(columns=["site"])
    if "weights_col" not in options and "w" in data:
        data = data.drop(columns=["w"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = LinearTimeCoxPHFitter().fit(data, "week", "arrest", **options)
        theirs = CoxPHFitter().fit(data, "week", "arrest", **options)
    assert np.allclose(ours.params_, theirs.params_, rtol=1e-9, atol=1e-12)
    assert ours.log_likelihood_ == pytest.approx(theirs.log_likelihood_, rel=1e-12)
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


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=60),
    distinct_times=st.integers(min_value=1, max_value=8),
    weighted=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_efron_sums_equal_lifelines_loop(n: int, distinct_times: int, weighted: bool, seed: int) -> None:
    """Any mix of ties, censoring and weights: the vectorized sums equal lifelines' loop to rounding."""
    rng = np.random.default_rng(seed)
    times = pd.Series(np.sort(rng.integers(1, distinct_times + 1, size=n)).astype(float))
    events = pd.Series(rng.random(n) < 0.6)
    covariates = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    weights = pd.Series(rng.uniform(0.1, 4.0, size=n) if weighted else np.ones(n))
    beta = rng.normal(0, 0.5, size=3)
    theirs = SemiParametricPHFitter()._get_efron_values_single(covariates, times, events, weights, None, beta)
    ours = _efron_sums(covariates, times, events, weights, None, beta)
    for mine, reference in zip(ours, theirs, strict=True):
        assert np.allclose(mine, reference, rtol=1e-9, atol=1e-9)
