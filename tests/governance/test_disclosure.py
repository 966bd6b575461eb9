"""The release mechanism: consistency, budget, lockout, post-processing, audit, and no null-vs-0 oracle."""

from __future__ import annotations

import pytest

from massalia.governance import Caller, Governance, Principal, Role
from massalia.governance.disclosure import (
    BudgetExhausted,
    CountsAsked,
    DisclosureSettings,
    budget_of,
    exact_release,
    privacy_budget,
    release_batch,
    release_counts,
    settings_from_env,
)
from massalia.ledger import TransparencyLog

RITA = Principal("rita", frozenset({Role.RESEARCHER}), auth="password")
ROBIN = Principal("robin", frozenset({Role.RESEARCHER}), auth="password")
SETTINGS = DisclosureSettings(epsilon_per_count=0.5, budget=2.0, lockout_repeats=3)


def test_same_query_same_answer_for_everyone_and_free_the_second_time(gov: Governance) -> None:
    first = release_counts(gov, RITA, "health.mart.count", {"filters": {"a": 1}}, {"persons": 137}, settings=SETTINGS)
    again = release_counts(gov, RITA, "health.mart.count", {"filters": {"a": 1}}, {"persons": 137}, settings=SETTINGS)
    other = release_counts(gov, ROBIN, "health.mart.count", {"filters": {"a": 1}}, {"persons": 137}, settings=SETTINGS)
    assert first.values == again.values == other.values
    assert first.charged == pytest.approx(0.5) and not first.repeated
    assert again.charged == 0 and again.repeated and other.charged == 0
    assert budget_of(gov, RITA, SETTINGS).spent == pytest.approx(0.5)
    assert budget_of(gov, ROBIN, SETTINGS).spent == 0


def test_values_are_rounded_noisy_and_masked_under_the_threshold(gov: Governance) -> None:
    settings = DisclosureSettings(epsilon_per_count=1.0, budget=1000.0)
    seen_small = set()
    for i in range(40):
        counts = {"big": 500 + i, "zero": 0, "small": 3}
        release = release_counts(gov, RITA, "t", {"i": i}, counts, sensitivity=3, settings=settings)
        assert release.values["big"] is not None and release.values["big"] % 5 == 0
        assert abs(release.values["big"] - (500 + i)) < 40
        seen_small.add((release.values["zero"], release.values["small"]))
        assert release.shown("zero") in {"<10", "~10", "~15"}
    # A true 0 and a true 3 read alike: both mostly masked, neither ever shown exactly.
    assert all(value is None or value >= 10 for pair in seen_small for value in pair)


def test_sensitivity_is_charged_through_opendp_privacy_map(gov: Governance) -> None:
    release = release_counts(gov, RITA, "t", {"q": 1}, {"a": 5, "b": 7, "total": 12}, sensitivity=2, settings=SETTINGS)
    assert release.charged == pytest.approx(1.0)


def test_budget_is_refused_once_spent_and_refusal_is_audited(gov: Governance) -> None:
    for i in range(4):
        release_counts(gov, RITA, "health.mart.count", {"i": i}, {"persons": 100 + i}, settings=SETTINGS)
    with pytest.raises(BudgetExhausted, match="privacy budget spent"):
        release_counts(gov, RITA, "health.mart.count", {"i": 99}, {"persons": 50}, settings=SETTINGS)
    # A stored answer stays available (it costs nothing and reveals nothing new).
    assert release_counts(gov, RITA, "health.mart.count", {"i": 0}, {"persons": 100}, settings=SETTINGS).repeated
    budget = budget_of(gov, RITA, SETTINGS)
    assert budget.remaining == 0 and budget.releases == 4
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        entries = [log.get(i).entry for i in range(log.size)]
    releases = [e for e in entries if e["action"] == "disclosure.release"]
    assert any(e.get("decision") == "denied" and "budget" in e["denied_because"] for e in releases)
    allowed = [e for e in releases if e.get("decision") == "allowed"]
    assert len(allowed) == 5 and all(set(e["released"]) == {"persons"} for e in allowed)
    # The true counts (100..103, 50) are never written to the log.
    assert not any("true" in key for e in releases for key in e)


def test_a_batch_releases_as_the_lone_calls_would_and_stops_at_the_first_refusal(gov: Governance) -> None:
    """Attack: a batch asked to pay for more than the budget left, or to give a stored question fresh noise."""
    first = release_counts(gov, ROBIN, "health.mart.count", {"i": 0}, {"persons": 100}, settings=SETTINGS)
    asked = [CountsAsked(f"q{i}", {"i": i}, {"persons": 100 + i}) for i in range(6)]  # 0.5 each, 2.0 in all
    batch = release_batch(gov, RITA, "health.mart.count", asked, settings=SETTINGS)
    assert isinstance(batch.refused, BudgetExhausted) and "privacy budget spent" in batch.refused.reason
    assert len(batch.releases) == 5, "one stored answer (free) and four new ones (2.0), then the budget is spent"
    assert batch.releases[0].repeated and batch.releases[0].values == first.values  # the stored answer, no new noise
    assert [r.charged for r in batch.releases] == [0.0, 0.5, 0.5, 0.5, 0.5]
    assert budget_of(gov, RITA, SETTINGS).remaining == 0
    # Each release of the batch is stored under the lone call's key: asked alone again, it is a free repeat.
    again = release_counts(gov, RITA, "health.mart.count", {"i": 3}, {"persons": 103}, settings=SETTINGS)
    assert again.repeated and again.values == batch.releases[3].values
    with pytest.raises(BudgetExhausted):
        release_counts(gov, RITA, "health.mart.count", {"i": 5}, {"persons": 105}, settings=SETTINGS)
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        entries = [log.get(i).entry for i in range(log.size) if log.get(i).entry["actor"] == "rita"]
    listed = next(e for e in entries if e["action"] == "disclosure.release" and e["decision"] == "allowed")
    assert sorted(listed["resource"]["query_keys"]) == [f"q{i}" for i in range(5)] == sorted(listed["released"])
    assert listed["charged"] == 2.0 and listed["repeated"] == ["q0"] and listed["budget_remaining"] == 0
    refused = [e for e in entries if e["action"] == "disclosure.release" and e["decision"] == "denied"]
    assert len(refused) == 2  # q5 in the batch, then alone


def test_budget_comes_back_after_the_period(gov: Governance, clock) -> None:
    for i in range(4):
        release_counts(gov, RITA, "health.mart.count", {"i": i}, {"persons": 100 + i}, settings=SETTINGS)
    clock.advance(days=SETTINGS.period_days + 1)
    assert budget_of(gov, RITA, SETTINGS).remaining == pytest.approx(2.0)


def test_many_queries_with_one_true_answer_lock_the_user_out(gov: Governance) -> None:
    settings = DisclosureSettings(epsilon_per_count=0.1, budget=5.0, lockout_repeats=3)
    for i in range(3):
        release_counts(gov, RITA, "health.mart.count", {"variant": i}, {"persons": 42}, settings=settings)
    with pytest.raises(BudgetExhausted, match="locked out"):
        release_counts(gov, RITA, "health.mart.count", {"variant": 3}, {"persons": 42}, settings=settings)
    with pytest.raises(BudgetExhausted, match="locked out"):
        release_counts(gov, RITA, "health.mart.count", {"variant": 4}, {"persons": 7}, settings=settings)
    assert budget_of(gov, RITA, settings).locked_out


def test_true_zero_answers_do_not_lock_out(gov: Governance) -> None:
    settings = DisclosureSettings(epsilon_per_count=0.1, budget=5.0, lockout_repeats=2)
    for i in range(5):
        release_counts(gov, RITA, "health.mart.count", {"variant": i}, {"persons": 0}, settings=settings)


def test_exact_release_and_inputs_are_bounded(gov: Governance) -> None:
    assert exact_release({"persons": 3}).values == {"persons": 3}
    from massalia.governance import InvalidRequest

    with pytest.raises(InvalidRequest, match="non-negative"):
        release_counts(gov, RITA, "t", {}, {"persons": -1}, settings=SETTINGS)
    with pytest.raises(InvalidRequest, match="sensitivity"):
        release_counts(gov, RITA, "t", {}, {"persons": 1}, sensitivity=2, settings=SETTINGS)
    with pytest.raises(InvalidRequest, match="1 to"):
        release_counts(gov, RITA, "t", {}, {}, settings=SETTINGS)


def test_settings_from_env_and_bounds() -> None:
    settings = settings_from_env({"MASSALIA_DISCLOSURE_EPSILON": "0.25", "MASSALIA_DISCLOSURE_THRESHOLD": "11"})
    assert settings.epsilon_per_count == 0.25 and settings.threshold == 11
    with pytest.raises(ValueError, match="not a valid"):
        settings_from_env({"MASSALIA_DISCLOSURE_BUDGET": "lots"})
    with pytest.raises(ValueError, match="epsilon_per_count"):
        DisclosureSettings(epsilon_per_count=0)


def test_privacy_budget_is_guarded(gov: Governance) -> None:
    from massalia.governance import AccessDenied

    assert privacy_budget(Caller(RITA, gov)).total == settings_from_env().budget
    with pytest.raises(AccessDenied):
        privacy_budget(Caller(Principal.anonymous(), gov))


def test_every_setting_is_documented() -> None:
    import dataclasses
    from pathlib import Path

    from massalia.governance import disclosure

    docs = (Path(__file__).resolve().parents[2] / "docs" / "disclosure.md").read_text(encoding="utf-8")
    for field in dataclasses.fields(DisclosureSettings):
        assert f"`{field.name}`" in docs, field.name
        assert f"`{field.default}`" in docs or f"`{field.default:g}`" in docs, (field.name, field.default)
    for variable in disclosure._FIELDS:
        assert f"`{variable}`" in docs, variable
