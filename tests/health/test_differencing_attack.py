"""Attacks of issue 10, section 1, against the feasibility counts of a researcher without an approved project.

The issue's observations, each an attacker here, each a test that fails if the attack works again:

- the single-patient oracle: ``person_id`` and exact dates as mart filters, a masked answer versus 0
  telling whether a named person matches, a binary search on ``birth_date`` finding a birth date in 15
  requests;
- differencing: two mart filters, two cohort definitions, what-if toggles or attrition rows that differ
  by a small group recovered masked counts of 7, 6, 8 and 3 exactly; repeating queries to average the
  noise away.

The end-to-end attackers go through the guarded services (the same code the API and the CLI call) on
the shared generated warehouse; the statistical one measures, over many independent attacks, how often
the best estimator of the attacker recovers a count under the threshold, against chance.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from massalia.engine import Engine
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, Governance, InvalidRequest, Principal, Role, operator_principal
from massalia.governance.disclosure import (
    BudgetExhausted,
    DisclosureSettings,
    budget_of,
    exact_release,
    release_counts,
)
from massalia.health import research
from massalia.health.cohorts import CohortDefinition
from massalia.health.marts.builder import MART_TABLE, build_mart

SETTINGS = DisclosureSettings()  # the shipped defaults: what the attacks must not beat
SITES = ("bladder", "breast", "colorectal", "head_neck", "kidney", "lung", "lymphoma", "melanoma", "pancreas",
         "prostate", "uterus")  # fmt: skip
RARE = "ovary"  # 7 persons of the 600 of the demo warehouse: the masked 7
CHANCE = 1 / 9  # guessing a masked count (1 to 9) with no information


def _memory_root() -> Path:
    shm = Path("/dev/shm")  # noqa: S108 (a private mkdtemp folder, removed by the fixture)
    return Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else None, prefix="massalia-attack-"))


def _governance(root: Path) -> Governance:
    return Governance(f"sqlite:///{(root / 'metadata.sqlite').as_posix()}", root / "ledger",
                      key_path=root / "keys" / "master.key")  # fmt: skip


@pytest.fixture
def gov() -> Iterator[Governance]:
    """A fresh metadata database and ledger (in memory when possible): a fresh release store and budgets."""
    root = _memory_root()
    try:
        with _governance(root) as service:
            yield service
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def researcher(gov: Governance) -> Principal:
    """A researcher with no project at all."""
    gov.create_user("mallory", None, [Role.RESEARCHER], actor=operator_principal())
    return gov.authenticate_token(gov.create_token("mallory", None, actor=operator_principal()))


@pytest.fixture(scope="module")
def mart_table(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``mart_patient`` of the shared demo warehouse (600 persons)."""
    path = tmp_path_factory.mktemp("attack-mart") / "warehouse.duckdb"
    shutil.copy(demo_warehouse, path)
    with DuckDBEngine(path) as engine:
        build_mart(engine)
        return engine.query(f"SELECT * FROM {MART_TABLE}")


@pytest.fixture
def mart_engine(engine: Engine, mart_table: Any) -> Engine:
    """The engine of the matrix (DuckDB, PostgreSQL) holding the mart."""
    engine.create_table(MART_TABLE, mart_table)
    return engine


@pytest.fixture(scope="module")
def warehouse(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBEngine]:
    """A copy of the shared demo warehouse (cohort services read it)."""
    path = tmp_path_factory.mktemp("attack-warehouse") / "warehouse.duckdb"
    shutil.copy(demo_warehouse, path)
    with DuckDBEngine(path) as engine:
        yield engine


# -- the statistical attacker: pairs differing by one small group, averaged -----------------------------
def _difference_attack(release: Callable[[str, int], int | None], small: int, *, pairs: int, seed: int) -> int:
    """Estimate ``small`` from pairs (base ∪ group, base) of distinct bases, each asked twice.

    ``release(key, true_count)`` returns the released value (``None`` under the threshold, read as 0).
    Distinct bases keep the true answers distinct (no lockout); the repeats try to average the noise.
    """
    rng = random.Random(seed)
    differences = []
    try:
        for i in range(pairs):
            base = 40 + i * 7 + rng.randrange(5)
            with_group = [release(f"with group {i}", base + small) or 0 for _ in range(2)]
            without = [release(f"without group {i}", base) or 0 for _ in range(2)]
            differences.append(sum(with_group) / 2 - sum(without) / 2)
    except BudgetExhausted:
        pass
    if not differences:
        return 5
    return min(9, max(1, round(sum(differences) / len(differences))))


@pytest.mark.parametrize("small", [7, 6, 8, 3])
def test_differencing_recovers_no_small_count_more_often_than_chance(small: int) -> None:
    trials, recovered, releases = 10, 0, 0
    for trial in range(trials):
        root = _memory_root()
        try:
            with _governance(root) as gov:
                attacker = Principal(f"attacker{trial}", frozenset({Role.RESEARCHER}), auth="token")

                def release(key: str, true: int, gov: Governance = gov, who: Principal = attacker) -> int | None:
                    return release_counts(gov, who, "health.mart.count", {"q": key}, {"persons": true},
                                          settings=SETTINGS).values["persons"]  # fmt: skip

                # The attacker asks as many pairs as it likes: the budget decides how many it gets.
                guess = _difference_attack(release, small, pairs=2000, seed=trial)
                releases = budget_of(gov, attacker, SETTINGS).releases
        finally:
            shutil.rmtree(root, ignore_errors=True)
        recovered += guess == small
    assert releases == round(SETTINGS.budget / SETTINGS.epsilon_per_count)  # the budget stopped it
    # Chance is 1/9; 5 or more recoveries in 10 attacks would have a probability under 0.5 % at chance.
    assert recovered / trials < CHANCE + 0.3, f"count {small} recovered in {recovered} of {trials} attacks"


def test_the_same_attacker_recovers_every_count_from_exact_answers() -> None:
    # The control: the attacker is competent; only the mechanism stands between it and the counts.
    for small in (7, 6, 8, 3):
        guess = _difference_attack(lambda key, true: exact_release({"n": true}).values["n"], small, pairs=5, seed=1)
        assert guess == small


def test_a_masked_answer_no_longer_says_whether_a_person_matches(gov: Governance) -> None:
    # The null-versus-0 oracle: a count of 1 (the named person matches) or 0 (they do not). The attacker
    # says "matches" when the answer is not masked. A generous budget and no lockout: the test measures
    # what one answer is worth (with the defaults, a sixth answer of 1 would lock the attacker out).
    generous = DisclosureSettings(budget=1000.0, lockout_repeats=1000)
    rng = random.Random(7)
    attacker = Principal("mallory", frozenset({Role.RESEARCHER}), auth="token")
    right = 0
    trials = 300
    for trial in range(trials):
        matches = rng.random() < 0.5
        value = release_counts(gov, attacker, "health.mart.count", {"person": trial}, {"persons": int(matches)},
                               settings=generous).values["persons"]  # fmt: skip
        right += (value is not None) == matches
        assert value is None or value >= SETTINGS.threshold
    # Chance is 50 %; 60 % is 3.5 standard deviations above it.
    assert right / trials < 0.6, f"membership guessed right in {right} of {trials} queries"


# -- end to end: the mart ------------------------------------------------------------------------------
def test_mart_differencing_pairs_are_stopped_and_colluders_learn_nothing_more(
    gov: Governance, researcher: Principal, mart_engine: Engine
) -> None:
    rng = random.Random(3)
    colluder_name = "trudy"
    gov.create_user(colluder_name, None, [Role.RESEARCHER], actor=operator_principal())
    colluder = gov.authenticate_token(gov.create_token(colluder_name, None, actor=operator_principal()))
    answers: dict[str, int | None] = {}
    differences = []
    refused = None
    for _ in range(200):
        base = sorted(rng.sample(SITES, rng.randrange(1, len(SITES))))
        pair = []
        for sites in ([*base, RARE], base):
            clause = f"primary_site in {','.join(sites)}"
            try:
                first = research.mart_count(Caller(researcher, gov), mart_engine, [clause]).count
            except BudgetExhausted as error:
                refused = error
                break
            again = research.mart_count(Caller(researcher, gov), mart_engine, [clause]).count
            assert again == first  # repeating a query gains nothing
            answers[clause] = first
            pair.append(first or 0)
        if refused is not None:
            break
        differences.append(pair[0] - pair[1])
    assert refused is not None and "privacy budget spent" in refused.reason
    assert budget_of(gov, researcher).releases == round(SETTINGS.budget / SETTINGS.epsilon_per_count)
    assert all(v is None or (v >= SETTINGS.threshold and v % SETTINGS.rounding_base == 0) for v in answers.values())
    # A colleague asking the same queries gets the same answers, at no cost: collusion adds no sample.
    for clause, value in list(answers.items())[:10]:
        assert research.mart_count(Caller(colluder, gov), mart_engine, [clause]).count == value
    assert budget_of(gov, colluder).spent == 0


@pytest.mark.parametrize(
    "clause",
    ["person_id = 17", "person_id in 17,18", "person_id <= 17", "birth_date = 1950-03-12",
     "birth_date <= 1950-06-15", "death_date >= 2021-03-04"],
)  # fmt: skip
def test_single_patient_filters_are_refused(
    gov: Governance, researcher: Principal, mart_engine: Engine, clause: str
) -> None:
    with pytest.raises(InvalidRequest, match="clause 2"):
        research.mart_count(Caller(researcher, gov), mart_engine, ["primary_site = ovary", clause])
    assert budget_of(gov, researcher).spent == 0  # refused before anything is released


def test_the_birth_date_binary_search_learns_nothing(
    gov: Governance, researcher: Principal, mart_engine: Engine
) -> None:
    # The attacker: 15 requests halving a date interval around one patient's birth date.
    low, high = dt.date(1920, 1, 1), dt.date(2000, 12, 31)
    refused = 0
    for _ in range(15):
        middle = low + (high - low) / 2
        try:
            research.mart_count(
                Caller(researcher, gov), mart_engine, ["primary_site = ovary", f"birth_date <= {middle}"]
            )
        except InvalidRequest as error:
            assert "year grain" in str(error)
            refused += 1
            high = middle  # the attacker learns nothing: its interval shrinks blindly
        else:
            low = middle
    assert refused == 15 and budget_of(gov, researcher).spent == 0


# -- end to end: cohorts, what-if toggles, attrition ---------------------------------------------------
def _definition(rule_name: str = "stage IV", *, extra: dict[str, Any] | None = None) -> CohortDefinition:
    stage = {"kind": "TnmStage", "axis": "group", "value": {"op": "gte", "value": 4}}
    entry: dict[str, Any] = {"kind": "CancerDiagnosis", "topography": ["C56"], **(extra or {})}
    return CohortDefinition.model_validate({
        "primary_criteria": {"criteria_list": [entry]},
        "inclusion_rules": [
            {"name": rule_name, "expression": {"type": "ALL", "criteria_list": [{
                "criteria": stage, "start_window": {"start": {"days": 0, "coeff": -1}, "end": {"days": 90, "coeff": 1}},
                "occurrence": {"type": 2, "count": 1}}]}},
        ],
    })  # fmt: skip


def test_cohort_variants_with_one_true_answer_lock_the_attacker_out(
    gov: Governance, researcher: Principal, warehouse: DuckDBEngine
) -> None:
    # Equivalent definitions (only a rule's name differs) are new queries with the same true count:
    # averaging their noisy answers is the attack; the lockout ends it.
    with pytest.raises(BudgetExhausted, match="locked out"):
        for i in range(SETTINGS.lockout_repeats + 2):
            research.count(Caller(researcher, gov), warehouse, _definition(f"stage IV, variant {i}"))
    assert budget_of(gov, researcher).locked_out
    with pytest.raises(BudgetExhausted, match="locked out"):  # and nothing else for the period
        research.count(Caller(researcher, gov), warehouse, _definition(extra={"first": True}))


def test_what_if_toggles_and_attrition_rows_repeat_their_answers(
    gov: Governance, researcher: Principal, warehouse: DuckDBEngine
) -> None:
    definition = _definition()
    toggled = {
        flag: research.count(Caller(researcher, gov), warehouse, definition, enabled=[flag]) for flag in (True, False)
    }
    spent = budget_of(gov, researcher).spent
    for _ in range(5):
        for flag, first in toggled.items():
            again = research.count(Caller(researcher, gov), warehouse, definition, enabled=[flag])
            assert again.persons == first.persons and again.events is None
    # Toggles spelled otherwise (all rules on = no toggle) are the same query.
    assert research.count(Caller(researcher, gov), warehouse, definition).persons == toggled[True].persons
    base, rows = research.attrition(Caller(researcher, gov), warehouse, definition)
    for _ in range(3):
        base_again, rows_again = research.attrition(Caller(researcher, gov), warehouse, definition)
        assert (base_again.persons, rows_again) == (base.persons, rows)
    # Only the two toggles and one attrition table were paid for: repetitions cost nothing and add nothing.
    assert budget_of(gov, researcher).spent == pytest.approx(spent + SETTINGS.epsilon_per_count * (1 + 2 * len(rows)))
    released = [base.persons] + [v for r in rows for v in (r.persons_cumulative, r.persons_alone)]
    assert all(v is None or v >= SETTINGS.threshold for v in released)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"op": "eq", "value": "2019-03-12"}, "exact dates"),
        ({"op": "gte", "value": "2019-03-12"}, "first day of a month"),
        ({"op": "lte", "value": "2019-03-12"}, "last day of a month"),
        ({"op": "bt", "value": "2019-03-01", "extent": "2019-03-12"}, "between must run"),
    ],
)
def test_exact_date_windows_are_refused_for_feasibility(
    gov: Governance, researcher: Principal, warehouse: DuckDBEngine, window: dict[str, Any], message: str
) -> None:
    definition = _definition(extra={"occurrence_start_date": window})
    with pytest.raises(InvalidRequest, match=message):
        research.count(Caller(researcher, gov), warehouse, definition)
    assert budget_of(gov, researcher).spent == 0


def test_month_aligned_windows_are_counted(gov: Governance, researcher: Principal, warehouse: DuckDBEngine) -> None:
    window = {"op": "bt", "value": "2015-01-01", "extent": "2024-12-31"}
    counted = research.count(Caller(researcher, gov), warehouse, _definition(extra={"occurrence_start_date": window}))
    assert counted.release is not None and counted.release["mode"] == "noisy"


def test_the_operator_may_generate_any_cohort_but_its_count_is_then_withheld(
    gov: Governance, warehouse: DuckDBEngine
) -> None:
    exact_window = _definition(extra={"occurrence_start_date": {"op": "eq", "value": "2019-03-12"}})
    summary = research.generate(Caller(operator_principal(), gov), warehouse, exact_window, cohort_definition_id=9)
    assert (summary.persons, summary.rows) == (None, None)
    assert summary.release is not None and summary.release["mode"] == "withheld"
    assert budget_of(gov, operator_principal()).spent == 0
    feasible = research.generate(Caller(operator_principal(), gov), warehouse, _definition(), cohort_definition_id=9)
    assert feasible.release is not None and feasible.release["mode"] == "noisy" and feasible.rows is None
