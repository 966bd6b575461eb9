"""Conformance to reference practice: rule files checked with clear errors, rates recover the generator's known
non-conformance per site, only aggregates leave, and a rule cannot reach beyond the project's scope."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from analytics_world import AnalyticsWarehouse, World, scoped_project

from massalia.governance import AccessDenied, Caller, InvalidRequest, ProjectScope
from massalia.health.analytics import run_conformance
from massalia.health.analytics.conformance import (
    REFERENCE_RULES,
    RuleError,
    evaluate_rule,
    load_rules,
    parse_rules,
    rate,
    raw_rates,
)
from massalia.health.analytics.pathways import pathway_steps, read_events
from massalia.health.analytics.pathways_service import _drug_days
from massalia.health.analytics.requests import ConformanceRequest
from massalia.health.marts.filters import compile_filter

THRESHOLD = 10
REFERENCE = yaml.safe_load(REFERENCE_RULES.read_text(encoding="utf-8"))


def _with(rule_change: dict, index: int = 0) -> str:
    data = json.loads(json.dumps(REFERENCE))
    data["rules"][index].update(rule_change)
    return yaml.safe_dump(data)


def test_the_reference_set_cites_a_public_guideline_per_rule() -> None:
    rules = load_rules(REFERENCE_RULES)
    assert 3 <= len(rules.rules) <= 5
    for rule in rules.rules:
        assert rule.guideline.url.startswith("https://doi.org/") and rule.guideline.year >= 2019
        assert rule.expected in rules.classes


@pytest.mark.parametrize(
    ("change", "index", "message"),
    [
        ({"window": {"min_days": 30, "max_days": 10}}, 2, "rule.yaml: rules[2].window: Value error, max_days must be"),
        ({"expected": "anti_egfr"}, 1, "rule.yaml: rules[1].expected: 'anti_egfr' is not a class of this file"),
        ({"anchor": "radiotherapy"}, 0, "rule.yaml: rules[0].anchor: 'radiotherapy' is not a class"),
        ({"population": ["shoe_size > 40"]}, 3, "rule.yaml: rules[3].population[0]: unknown mart variable 'shoe_size'"),
        ({"population": ["stage_group ~ III"]}, 0, "rule.yaml: rules[0].population[0]: cannot read filter"),
        ({"population": ["primary_site = breast", "stage_group = V"]}, 1,
         "rule.yaml: rules[1].population[1]: clause 1 (stage_group = 'V'): 'V' is not a value of stage_group"),
        ({"id": "er_positive_breast_endocrine"}, 0, "rule.yaml: rules[1].id: 'er_positive_breast_endocrine' is used"),
        ({"guideline": {"source": "my notes", "year": 2020, "url": "http://x.org/a"}}, 0,
         "rule.yaml: rules[0].guideline.url: String should match pattern"),
        ({"surprise": 1}, 1, "rule.yaml: rules[1].surprise: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_rule_file_errors_name_the_file_the_rule_and_the_field(change: dict, index: int, message: str) -> None:
    with pytest.raises(RuleError) as error:
        parse_rules(_with(change, index), "rule.yaml")
    assert message in str(error.value)


def test_hostile_rule_files_are_refused() -> None:
    """Attack: YAML that builds Python objects, or a file too big to parse cheaply."""
    with pytest.raises(RuleError, match="not valid YAML"):
        parse_rules("!!python/object/apply:os.system ['echo pwned']", "evil.yaml")
    with pytest.raises(RuleError, match="at most"):
        parse_rules("x: " + "a" * 300_000, "big.yaml")
    with pytest.raises(RuleError, match=r"rules\[0\]\.window\.max_days"):
        parse_rules(_with({"window": {"min_days": 0, "max_days": 10**9}}), "huge.yaml")


def test_windows_anchors_and_follow_up() -> None:
    rules = load_rules(REFERENCE_RULES)
    colon = next(rule for rule in rules.rules if rule.anchor == "surgery")
    population = pd.DataFrame({"person_id": [1, 2, 3, 4, 5], "follow_up_days": [900.0, 900.0, 900.0, 900.0, 60.0]})
    steps = pd.DataFrame({"person_id": [1, 2, 3, 5], "day": [30.0, 30.0, 30.0, 30.0], "kind": ["surgery"] * 4,
                          "label": ["surgery"] * 4})  # fmt: skip
    drugs = pd.DataFrame({"person_id": [1, 2, 3, 4, 5], "day": [86.0, 87.0, 20.0, 40.0, 50.0],
                          "ingredient": ["capecitabine", "fluorouracil", "fluorouracil", "fluorouracil",
                                         "capecitabine"]})  # fmt: skip
    evaluation = evaluate_rule(colon, rules.classes, population, steps, drugs)
    # 56 days after surgery is in (bound included), 57 is late, before surgery is early; no surgery: no anchor;
    # followed 60 days only (the window ends at day 86): not evaluable even though treated
    assert evaluation.status.tolist() == ["conforming", "too_late", "too_early", "no_anchor", "short_follow_up"]


def test_a_rate_hides_itself_when_a_cell_is_small() -> None:
    """Attack: a rate of 98 % over 100 persons tells that 2 persons deviated."""
    assert rate(98, 100, THRESHOLD)["rate"] is None and rate(98, 100, THRESHOLD)["deviating"]["shown"] == "<10"
    shown = rate(80, 100, THRESHOLD)
    assert shown["rate"] == 0.8 and shown["lower"] < 0.8 < shown["upper"]


@pytest.fixture(scope="module")
def evaluations(world: World) -> dict:
    """Every reference rule evaluated on the whole warehouse (no scope), with each person's site."""
    rules = load_rules(REFERENCE_RULES)
    frame = world.engine.query(
        "SELECT person_id, diagnosis_date, care_site_code, os_days FROM mart_patient"
    ).to_pandas()
    events = read_events(world.engine, lambda person, date: person.is_(None).not_())
    steps, drugs = pathway_steps(events, frame), _drug_days(events, frame)
    out = {}
    for rule in rules.rules:
        condition = compile_filter(rule.population_spec(), table="m")
        persons = world.engine.query(f"SELECT m.person_id FROM mart_patient AS m WHERE {condition.sql('duckdb')}")
        population = frame[frame["person_id"].isin(persons.column(0).to_pylist())].reset_index(drop=True)
        population = population.assign(follow_up_days=population["os_days"].astype(float))
        out[rule.id] = (evaluate_rule(rule, rules.classes, population, steps, drugs), population)
    return out


@pytest.mark.parametrize(
    ("rule_id", "cancer", "marker", "probability"),
    [("her2_early_breast_anti_her2", "breast", "marker_her2", "p_targeted_omitted"),
     ("er_positive_breast_endocrine", "breast", "marker_er", "p_hormone_omitted")],
)  # fmt: skip
def test_the_measured_rate_covers_the_known_rate_of_each_site(
    evaluations: dict, analytics_warehouse: AnalyticsWarehouse, rule_id: str, cancer: str, marker: str,
    probability: str,
) -> None:  # fmt: skip
    """Ground truth: each site's known conformance is the mean of 1 - P(deviation) over its eligible patients."""
    truth = pd.read_parquet(Path(analytics_warehouse.path).parent / "sources" / "truth")
    eligible = truth[(truth["cancer"] == cancer) & (truth[marker] == 1) & truth["stage"].isin(["I", "II", "III"])]
    known = (1 - eligible.groupby("site")[probability].mean()).to_dict()
    evaluation, population = evaluations[rule_id]
    measured = raw_rates(evaluation, population["care_site_code"].to_numpy())
    assert set(measured) == set(known)
    for site, (conforming, evaluable, lower, upper) in measured.items():
        assert evaluable >= 10, site
        assert lower <= known[site] <= upper, (site, conforming, evaluable, known[site])
    # the realized deviations agree too: the generator's omissions over the whole population
    overall_known = 1 - eligible[probability].mean()
    k = sum(item[0] for item in measured.values())
    n = sum(item[1] for item in measured.values())
    assert abs(k / n - overall_known) < 3 * np.sqrt(overall_known * (1 - overall_known) / n)


def test_conformance_end_to_end_returns_aggregates_only(world: World) -> None:
    result = run_conformance(Caller(world.rita, world.gov), world.engine, ConformanceRequest(project_id=world.study))
    assert [rule["id"] for rule in result["rules"]] == [rule.id for rule in load_rules(REFERENCE_RULES).rules]
    endocrine = next(rule for rule in result["rules"] if rule["id"] == "er_positive_breast_endocrine")
    overall = endocrine["overall"]
    assert overall["rate"] is not None and overall["lower"] < overall["rate"] < overall["upper"]
    assert {group["group"] for group in endocrine["by_site"]} == {"ch_est", "chu_nord", "clcc_sud"}
    assert endocrine["outcomes"]["km"]["conforming"]["curve"][0]["estimate"] == 1.0
    assert {term["term"] for term in endocrine["outcomes"]["cox"]["terms"]} == {"age_at_diagnosis", "deviating"}
    for rule in result["rules"]:
        for group in [rule["overall"], *rule["by_site"], *rule["by_period"]]:
            cells = (group["conforming"]["count"], group["deviating"]["count"])
            assert group["rate"] is None or min(cells) >= THRESHOLD
        for count in rule["statuses"].values():
            assert count["count"] is None or count["count"] >= THRESHOLD
    # no person id leaves: nothing in the result (the request aside) is keyed by or lists persons
    text = json.dumps({k: v for k, v in result.items() if k != "provenance"})
    assert "person_id" not in text and "pseudonym" not in text


def test_refusals_and_scope(world: World) -> None:
    caller = Caller(world.rita, world.gov)
    with pytest.raises(AccessDenied, match="approved members of an approved, unexpired project"):
        run_conformance(Caller(world.olga, world.gov), world.engine, ConformanceRequest(project_id=world.study))
    with pytest.raises(InvalidRequest, match=r"rules_yaml: rules\[0\]\.expected"):
        own = ConformanceRequest(project_id=world.study, rules_yaml=_with({"expected": "nothing"}))
        run_conformance(caller, world.engine, own)
    with pytest.raises(InvalidRequest, match="unknown rule"):
        run_conformance(caller, world.engine, ConformanceRequest(project_id=world.study, rules=["nope"]))


def test_a_rule_cannot_read_a_variable_outside_the_project(world: World) -> None:
    """Attack: a rule file of one's own whose population filters on a variable the project was not granted."""
    variables = ("person_id", "diagnosis_date", "care_site_code", "year_of_diagnosis", "os_days", "os_event",
                 "age_at_diagnosis", "primary_site", "stage_group", "er_status")  # fmt: skip
    project = scoped_project(world, ProjectScope(variables=variables))
    caller = Caller(world.rita, world.gov)
    allowed = ConformanceRequest(project_id=project, rules=["er_positive_breast_endocrine"])
    assert run_conformance(caller, world.engine, allowed)["rules"][0]["population"]["count"] > 0
    with pytest.raises(AccessDenied, match="her2_status"):
        run_conformance(caller, world.engine, ConformanceRequest(project_id=project,
                                                                 rules=["her2_early_breast_anti_her2"]))  # fmt: skip
