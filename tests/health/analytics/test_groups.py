"""Patient groups: known structure is recovered, early and advanced disease stand apart, attacks fail.

The generator (``synth/cohort.py``) draws no latent patient type beyond the cancer itself, so the
grouping is checked twice: on a mixed dataset of known structure (three groups, adjusted Rand index), and on
the generated mart, whose strongest structure is the one the generator builds in: early (I-II) versus advanced
(III-IV) disease, stage driving T, N, M, metastasis, surgery, treatments and lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analytics_world import World
from sklearn.metrics import adjusted_rand_score

from massalia.governance import AccessDenied, Caller
from massalia.health.analytics import run_groups
from massalia.health.analytics.groups import encode, find_groups
from massalia.health.analytics.requests import GroupsRequest
from massalia.health.analytics.similar import SIMILARITY_WEIGHTS, Feature, features_of
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.marts.filters import FilterSpec, parse_clause


def known_structure(seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Three groups (300, 200, 100): two numbers 3 SD apart, two categories 70 % dominant, 10 % missing."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1, 2], [300, 200, 100])
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    numbers = centres[truth] + rng.normal(0, 1, (truth.size, 2))
    levels = np.array(["a", "b", "c"])
    dominant = rng.random((truth.size, 2)) < 0.7
    categories = np.where(dominant, levels[truth][:, None], levels[rng.integers(0, 3, (truth.size, 2))])
    frame = pd.DataFrame({"x": numbers[:, 0], "y": numbers[:, 1], "c": categories[:, 0], "d": categories[:, 1]})
    for column in frame.columns:
        frame.loc[rng.random(truth.size) < 0.1, column] = None
    return frame, truth


def oracle_labels(frame: pd.DataFrame) -> np.ndarray:
    """The Bayes classifier of :func:`known_structure` (true centres, shares and category laws known)."""
    centres, prior = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]), np.array([3, 2, 1]) / 6
    log_likelihood = np.tile(np.log(prior), (len(frame), 1))
    for group in range(3):
        for column, centre in zip("xy", centres[group], strict=True):
            value = frame[column].to_numpy(float)
            log_likelihood[:, group] += np.where(np.isnan(value), 0.0, -0.5 * (value - centre) ** 2)
        for column in "cd":
            value = frame[column].to_numpy(object)
            same = np.where(value == "abc"[group], np.log(0.8), np.log(0.1))
            log_likelihood[:, group] += np.where(pd.isna(value), 0.0, same)
    return np.asarray(log_likelihood.argmax(axis=1))


def test_known_structure_is_recovered() -> None:
    frame, truth = known_structure()
    features = [Feature("x", "number", 1.0), Feature("y", "number", 1.0), Feature("c", "category", 1.0),
                Feature("d", "category", 1.0)]  # fmt: skip
    grouping = find_groups(encode(frame, features), range(2, 9), seed=0)
    assert grouping.k == 3, grouping.silhouette
    # The groups overlap (3-SD centres, 30 % off-type categories, 10 % missing): even the Bayes classifier
    # knowing the true model reaches only ARI 0.85 here (0.82-0.89 over seeds 0-4). k-means measured 0.70
    # (0.63-0.70, i.e. 76-82 % of the oracle's): 0.6 and 70 % of the oracle say the structure is found.
    ours, oracle = adjusted_rand_score(truth, grouping.labels), adjusted_rand_score(truth, oracle_labels(frame))
    assert ours >= 0.6 and ours >= 0.7 * oracle, (ours, oracle)
    assert np.bincount(grouping.labels).tolist() == sorted(np.bincount(grouping.labels).tolist(), reverse=True)


def test_the_mart_splits_into_early_and_advanced_disease(world: World) -> None:
    """The generator's strongest structure: stage drives T, N, M, metastasis, surgery, the treatments and lines."""
    frame = world.engine.query("SELECT * FROM mart_patient").to_pandas()
    grouping = find_groups(encode(frame, features_of(load_catalogue(), SIMILARITY_WEIGHTS)), range(2, 6), seed=0)
    advanced = frame["stage_group"].isin(["III", "IV"]).to_numpy()
    assert grouping.k == 2, grouping.silhouette
    # Measured ARI 0.98 (26 persons of 3,000 on the other side); grouping without the staging variables
    # does not recover it (0.14): the treatments alone do not tell early from advanced disease here.
    assert adjusted_rand_score(advanced, grouping.labels) >= 0.9


def test_the_guarded_service_profiles_each_group(world: World) -> None:
    request = GroupsRequest(project_id=world.study, max_groups=3)
    result = run_groups(Caller(world.rita, world.gov), world.engine, request)
    assert result["k"] == 2 and set(result["silhouette"]) == {"2", "3"}
    assert sum(group["size"]["count"] for group in result["groups"]) == result["persons"]["count"]
    staging = {"stage_group", "clinical_m", "metastatic_at_diagnosis", "clinical_t", "clinical_n"}
    for group in result["groups"]:
        assert group["distinguishing"][0]["variable"] in staging, group["distinguishing"][0]
        assert len(group["distinguishing"]) == 5 and group["km"]["n"]["count"] >= 10
    late = max(result["groups"], key=lambda group: group["smd"]["stage_group"])
    early = min(result["groups"], key=lambda group: group["smd"]["stage_group"])
    assert late["km"]["median"] is not None and (early["km"]["median"] or 1e9) > late["km"]["median"]


@pytest.mark.parametrize("who", ["olga", "nora"])
def test_attack_a_researcher_without_approval_is_refused(world: World, who: str) -> None:
    principal, project = (world.olga, world.study) if who == "olga" else (world.nora, world.draft)
    with pytest.raises(AccessDenied, match="approved members of an approved, unexpired project"):
        run_groups(Caller(principal, world.gov), world.engine, GroupsRequest(project_id=project))


def test_attack_small_groups_show_their_size_only(world: World) -> None:
    ovary = FilterSpec(all=[parse_clause("primary_site = ovary"), parse_clause("stage_group = IV")])
    request = GroupsRequest(project_id=world.study, filters=ovary, min_groups=4, max_groups=4)
    result = run_groups(Caller(world.rita, world.gov), world.engine, request)
    persons = result["provenance"]["rows_read"]
    assert 8 <= persons < 40, "four groups of so few persons: at least one is under 10"
    masked = [group for group in result["groups"] if group["size"]["count"] is None]
    assert masked
    for group in masked:
        assert group["size"]["shown"] == "<10" and group["distinguishing"] == [] and "km" not in group


def test_attack_out_of_scope_sites_are_never_grouped(world: World) -> None:
    result = run_groups(Caller(world.rita, world.gov), world.engine,
                        GroupsRequest(project_id=world.north, max_groups=3))  # fmt: skip
    north = world.engine.query("SELECT count(*) FROM mart_patient WHERE care_site_code = 'chu_nord'").column(0)
    assert result["persons"]["count"] == north[0].as_py()
