"""Pattern discovery: planted patterns are found, random ones are not, small cells never show, attacks fail.

The generator (``synth/treatment.py``) gives hormone therapy to ER-positive breast cancers except for the
documented ``hormone_omitted`` deviation (``ground_truth.json``: base probability 0.10), so
``er_status=positive ⇒ received_hormone_therapy=true`` is a planted rule of known confidence 0.90; it draws
the care site independently of everything else (a true null: no rule may link a site to anything).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from analytics_world import AnalyticsWarehouse, World
from scipy import stats

from massalia.governance import AccessDenied, Caller, InvalidRequest
from massalia.health.analytics import run_patterns
from massalia.health.analytics.patterns import (
    associations,
    frequent_sequences,
    hypergeom_sf,
    item_matrix,
    itemset_counts,
)
from massalia.health.analytics.requests import PatternsRequest
from massalia.health.marts.filters import FilterSpec, parse_clause

OPTIONS = {"min_count": 20, "max_length": 3, "threshold": 10, "alpha": 0.05, "min_lift": 1.5}


def where(*clauses: str) -> FilterSpec:
    return FilterSpec(all=[parse_clause(text) for text in clauses])


def random_items(rng: np.random.Generator, persons: int, count: int) -> pd.DataFrame:
    return pd.DataFrame({f"random_{i}": rng.random(persons) < rng.uniform(0.1, 0.5) for i in range(count)})


def test_a_planted_rule_is_found_and_random_items_are_not() -> None:
    rng = np.random.default_rng(3)
    items = random_items(rng, 2000, 15)
    exposed = rng.random(2000) < 0.2
    items["exposed"] = exposed
    items["outcome"] = np.where(exposed, rng.random(2000) < 0.6, rng.random(2000) < 0.1)  # lift 0.6 / 0.2 = 3
    found = associations(items, **OPTIONS, top=500)
    unexpected = [(tuple(r["antecedent"]), r["consequent"]) for r in found["rules"] if r["unexpected"]]
    assert (("exposed",), "outcome") in unexpected and (("outcome",), "exposed") in unexpected
    planted = next(r for r in found["rules"] if r["antecedent"] == ["exposed"] and r["consequent"] == "outcome")
    assert planted["confidence"] == pytest.approx(0.6, abs=0.06) and planted["lift"] == pytest.approx(3, abs=0.4)
    # 15 independent items: hundreds of candidate rules, none survives the false-discovery control
    assert found["tested"] > 300
    assert not [r for r in found["rules"] if r["q"] < 0.05 and "exposed" not in {*r["antecedent"], r["consequent"]}
                and "outcome" not in {*r["antecedent"], r["consequent"]}]  # fmt: skip


def test_a_non_productive_longer_rule_is_not_significant() -> None:
    rng = np.random.default_rng(4)
    items = random_items(rng, 3000, 3)
    exposed = rng.random(3000) < 0.3
    items["exposed"], items["outcome"] = exposed, np.where(exposed, rng.random(3000) < 0.7, rng.random(3000) < 0.1)
    found = associations(items, **OPTIONS, top=500)
    longer = [r for r in found["rules"] if r["consequent"] == "outcome" and len(r["antecedent"]) == 2]
    assert longer and all(r["q"] >= 0.05 for r in longer), longer  # exposed ⇒ outcome carries them all


def test_attack_a_rule_with_a_small_cell_is_withheld() -> None:
    # 200 persons have a, 195 of them b: "a ⇒ b" would tell that 5 persons with a did not get b
    a = np.arange(1000) < 200
    b = (np.arange(1000) < 195) | (np.arange(1000) >= 700)
    found = associations(pd.DataFrame({"a": a, "b": b}), **OPTIONS)
    assert found["rules"] == [] and found["withheld_small_cells"] == 2


def test_item_matrix_levels_and_missing() -> None:
    frame = pd.DataFrame({"stage": ["I", "II", None], "surgery": [True, False, None]})
    items = item_matrix(frame, ["stage", "surgery"], ["surgery"])
    assert items.columns.tolist() == ["stage=I", "stage=II", "surgery=false", "surgery=true"]
    assert items.sum(axis=1).tolist() == [2, 2, 0]


def test_a_planted_sequence_and_its_timing_are_found() -> None:
    rng = np.random.default_rng(5)
    paths: dict[int, list[tuple[str, float]]] = {}
    for person in range(1500):
        noise = [(str(label), float(day)) for day, label in enumerate(rng.choice(["x", "y", "z"], size=3))]
        if person < 400:  # planted: surgery, anything, then hormone therapy 30 days after the surgery
            paths[person] = [("surgery", 10.0), (noise[0][0], 20.0), ("hormone", 40.0)]
        elif person < 500:
            paths[person] = [*noise, ("hormone", 60.0)]
        elif person < 600:
            paths[person] = [("surgery", 10.0), *noise]
        else:
            paths[person] = noise
    found = frequent_sequences(paths, **OPTIONS)
    by_steps = {tuple(s["steps"]): s for s in found["sequences"]}
    planted = by_steps[("surgery", "hormone")]
    assert planted["unexpected"] and planted["lift"] == pytest.approx(400 * 1500 / (500 * 500), abs=1e-3)
    assert planted["days_between"]["median"] == 30.0
    assert not any(s["q"] < 0.05 for steps, s in by_steps.items() if set(steps) <= {"x", "y", "z"})


def rules_of(result: dict) -> dict[tuple[tuple[str, ...], str], dict]:
    return {(tuple(r["antecedent"]), r["consequent"]): r for r in result["associations"]["rules"]}


def test_the_generators_planted_rule_is_found_and_the_site_is_not_linked(
    world: World, analytics_warehouse: AnalyticsWarehouse
) -> None:
    names = ["er_status", "her2_status", "received_hormone_therapy", "primary_site", "care_site_code"]
    request = PatternsRequest(project_id=world.study, variables=names, max_length=2, top=500, sequences=False)
    result = run_patterns(Caller(world.rita, world.gov), world.engine, request)
    planted = rules_of(result)[(("er_status=positive",), "received_hormone_therapy=true")]
    assert planted["unexpected"] and planted["q"] < 1e-6
    truth = 1 - analytics_warehouse.truth["deviations"]["hormone_omitted"]["base_probability"]
    n = planted["antecedent_persons"]["count"]
    assert abs(planted["confidence"] - truth) < 3 * np.sqrt(truth * (1 - truth) / n), (planted, truth)
    # BH bounds the share of false discoveries, it does not forbid one: a null rule may reach q < 0.05 (one
    # site-cancer rule of lift 1.13 does with this seed), none may be flagged unexpected
    rules = result["associations"]["rules"]
    site_rules = [r for r in rules if any(i.startswith("care_site_code=") for i in (*r["antecedent"], r["consequent"]))]
    assert site_rules and not [r for r in site_rules if r["unexpected"]]
    assert sum(r["q"] < 0.05 for r in site_rules) <= 0.05 * len(site_rules) + 2


def test_attack_every_shown_rule_has_all_cells_at_the_threshold(world: World) -> None:
    request = PatternsRequest(project_id=world.study, filters=where("primary_site = melanoma"), min_count=1, top=500)
    result = run_patterns(Caller(world.rita, world.gov), world.engine, request)
    frame = world.engine.query("SELECT * FROM mart_patient WHERE primary_site = 'melanoma'").to_pandas()
    names = result["variables"]
    booleans = [name for name in names if frame[name].dtype == bool or str(frame[name].dtype) == "boolean"]
    items = item_matrix(frame, names, booleans)
    n = len(items)
    assert result["associations"]["rules"] and result["associations"]["withheld_small_cells"] > 0
    for rule in result["associations"]["rules"]:
        a = items[rule["antecedent"]].all(axis=1).to_numpy()
        b = items[rule["consequent"]].to_numpy()
        cells = [(a & b).sum(), (a & ~b).sum(), (~a & b).sum(), (~a & ~b).sum()]
        assert min(cells) >= 10 and sum(cells) == n, (rule, cells)
        assert rule["persons"]["count"] == cells[0]
    for sequence in result["sequences"]["sequences"]:
        assert sequence["persons"]["count"] >= 10
        assert sequence["prefix_persons"]["count"] - sequence["persons"]["count"] >= 10


def test_attack_another_projects_member_and_an_unapproved_project_are_refused(world: World) -> None:
    for who, project in ((world.olga, world.study), (world.nora, world.draft)):
        with pytest.raises(AccessDenied):
            run_patterns(Caller(who, world.gov), world.engine, PatternsRequest(project_id=project))


def test_attack_out_of_scope_sites_are_never_read(world: World) -> None:
    result = run_patterns(Caller(world.rita, world.gov), world.engine, PatternsRequest(project_id=world.north))
    north = world.engine.query("SELECT COUNT(*) AS n FROM mart_patient WHERE care_site_code = 'chu_nord'").to_pandas()
    assert result["persons"]["count"] == int(north["n"][0])
    assert result["sequences"]["persons"]["count"] == int(north["n"][0])


def test_identifiers_and_numbers_are_refused(world: World) -> None:
    for names in (["person_id", "sex"], ["age_at_diagnosis", "sex"]):
        with pytest.raises(InvalidRequest, match=names[0]):
            run_patterns(Caller(world.rita, world.gov), world.engine,
                         PatternsRequest(project_id=world.study, variables=names))  # fmt: skip


def test_itemset_counts_equal_brute_force_counts() -> None:
    rng = np.random.default_rng(8)
    items = rng.random((3000, 12)) < rng.uniform(0.05, 0.6, 12)
    counts = itemset_counts(items, 25, 3)
    expected = {}
    for size in (1, 2, 3):
        for itemset in itertools.combinations(range(12), size):
            held = int(items[:, list(itemset)].all(axis=1).sum())
            if held >= 25 and all(
                int(items[:, list(sub)].all(axis=1).sum()) >= 25 for sub in itertools.combinations(itemset, size - 1)
            ):
                expected[itemset] = held
    assert counts == expected and any(len(k) == 3 for k in counts)
    with pytest.raises(ValueError, match="more than 3"):
        itemset_counts(items, 25, 4)


def test_the_vectorized_hypergeometric_tail_is_scipys() -> None:
    rng = np.random.default_rng(1)
    big = rng.integers(20, 100_000, 4000)
    good, draws = (rng.random(4000) * big).astype(int), (rng.random(4000) * big).astype(int)
    low, high = np.maximum(0, draws + good - big), np.minimum(good, draws)
    k = low + (rng.random(4000) * (high - low + 2)).astype(int)
    ours = hypergeom_sf(k, big, good, draws)
    assert np.allclose(ours, stats.hypergeom.sf(k - 1, big, good, draws), rtol=1e-7, atol=1e-300)
