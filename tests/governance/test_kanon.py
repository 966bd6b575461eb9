"""k-anonymity: measure, hierarchies and the greedy generalizer (massalia.governance.kanon)."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import math
from collections import Counter
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from massalia.governance import kanon
from massalia.governance.kanon import (
    DateLevels,
    GeneralizationPolicy,
    KAnonymityError,
    NumberBands,
    RareToOther,
    Suppress,
    Truncate,
    class_ids,
    default_hierarchy,
    generalize_to_k,
    k_anonymity,
)


def brute_force_sizes(table: pa.Table, columns: list[str]) -> Counter[tuple[Any, ...]]:
    """Class sizes counted row by row in Python: the oracle for the vectorised code."""
    rows = zip(*(table.column(c).to_pylist() for c in columns), strict=True) if columns else ([()] * table.num_rows)
    return Counter(tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows)


def brute_force_k(table: pa.Table, columns: list[str]) -> int:
    sizes = brute_force_sizes(table, columns)
    return min(sizes.values()) if sizes else 0


# -- measuring ---------------------------------------------------------------------------------
def test_k_and_classes_below_target() -> None:
    table = pa.table(
        {
            "age": [40, 40, 40, 41, 41, None, None],
            "sex": ["F", "F", "F", "M", "M", "F", "F"],
            "note": ["a", "b", "c", "d", "e", "f", "g"],
        }
    )
    report = k_anonymity(table, ["age", "sex"], target=3)
    assert (report.k, report.classes, report.rows) == (2, 3, 7)
    assert (report.classes_below, report.records_below, report.satisfied) == (2, 4, False)
    assert k_anonymity(table, ["sex"], target=2).satisfied
    assert k_anonymity(table, []).k == 7
    assert k_anonymity(table.slice(0, 0), ["age"]).k == 0


def test_nulls_and_negative_zero_form_one_class_each() -> None:
    table = pa.table({"x": pa.array([None, None, 0.0, -0.0, float("nan"), float("nan")])})
    ids, sizes = class_ids(table, ["x"])
    assert sorted(sizes.tolist()) == [2, 2, 2]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[4] == ids[5]


def test_unknown_or_repeated_column_and_bad_target_are_refused() -> None:
    table = pa.table({"a": [1]})
    with pytest.raises(KeyError, match="'zip'"):
        k_anonymity(table, ["zip"])
    with pytest.raises(ValueError, match="twice"):
        k_anonymity(table, ["a", "a"])
    with pytest.raises(ValueError, match="positive integer"):
        k_anonymity(table, ["a"], target=0)


# -- hierarchies -------------------------------------------------------------------------------
def test_number_bands_grow_and_end_in_star() -> None:
    ages = pa.array([3, 42, 47, 68, None])
    bands = NumberBands((5, 10, 20))
    assert bands.height == 4
    assert bands.generalize(ages, 0) is ages
    assert bands.generalize(ages, 1).to_pylist() == ["0-4", "40-44", "45-49", "65-69", None]
    assert bands.generalize(ages, 3).to_pylist() == ["0-19", "40-59", "40-59", "60-79", None]
    assert bands.generalize(ages, 4).to_pylist() == ["*"] * 5
    reals = NumberBands((0.5,)).generalize(pa.array([1.2, 1.7, float("nan")]), 1).to_pylist()
    assert reals == ["[1, 1.5)", "[1.5, 2)", "nan"]
    decimals = pa.array([decimal.Decimal("41.5"), None], pa.decimal128(4, 1))  # PostgreSQL NUMERIC
    assert NumberBands((5,)).generalize(decimals, 1).to_pylist() == ["[40, 45)", None]
    with pytest.raises(TypeError, match="numeric column"):
        NumberBands((5,)).generalize(pa.array(["41"]), 1)
    with pytest.raises(ValueError, match="multiple"):
        NumberBands((10, 5))
    with pytest.raises(ValueError, match="multiple"):
        NumberBands((5, 12))  # a 5-wide band would straddle two 12-wide ones
    with pytest.raises(ValueError, match="level 5 outside"):
        bands.generalize(ages, 5)


def test_date_levels() -> None:
    dates = pa.array([dt.date(2019, 12, 31), dt.date(2021, 3, 9), None])
    levels = DateLevels()
    assert levels.generalize(dates, 1).to_pylist() == ["2019-12", "2021-03", None]
    assert levels.generalize(dates, 2).to_pylist() == ["2019", "2021", None]
    assert levels.generalize(dates, 3).to_pylist() == ["2010s", "2020s", None]
    stamps = pa.array([dt.datetime(2020, 5, 1, 13, 0)], pa.timestamp("us"))
    assert levels.generalize(stamps, 1).to_pylist() == ["2020-05"]


def test_rare_categories_become_other_and_postcodes_are_truncated() -> None:
    sites = pa.array(["breast"] * 6 + ["lung"] * 3 + ["thyroid", None])
    rare = RareToOther((4, 7))
    assert rare.generalize(sites, 1).to_pylist() == ["breast"] * 6 + ["other"] * 4 + [None]
    assert rare.generalize(sites, 2).to_pylist() == ["other"] * 10 + [None]
    postcodes = pa.array(["13005", "13008", "2A004", None])
    assert Truncate((3, 2)).generalize(postcodes, 1).to_pylist() == ["130**", "130**", "2A0**", None]
    assert Truncate((3, 2)).generalize(postcodes, 2).to_pylist() == ["13***", "13***", "2A***", None]
    assert Suppress().generalize(postcodes, 1).to_pylist() == ["*"] * 4


def test_default_hierarchies_by_type() -> None:
    assert isinstance(default_hierarchy(pa.int16()), NumberBands)
    assert isinstance(default_hierarchy(pa.date32()), DateLevels)
    assert isinstance(default_hierarchy(pa.bool_()), Suppress)
    assert isinstance(default_hierarchy(pa.string()), RareToOther)


# -- generalizing ------------------------------------------------------------------------------
def ages_table() -> pa.Table:
    return pa.table(
        {
            "age": [41, 42, 43, 44, 47, 48, 61, 62, 69],
            "postcode": ["13005", "13006", "13008", "13001", "13002", "13009", "83000", "83100", "83200"],
            "diagnosis": [f"d{i}" for i in range(9)],
        }
    )


def test_already_k_anonymous_table_is_left_alone() -> None:
    table = pa.table({"sex": ["F", "F", "M", "M"], "x": [1, 2, 3, 4]})
    result = generalize_to_k(table, ["sex"], 2)
    assert result.levels == {"sex": 0} and result.applied == [] and result.suppressed == 0
    assert result.table.equals(table) and result.information_loss == 0


def test_greedy_generalization_reports_what_it_applied() -> None:
    policy = GeneralizationPolicy(hierarchies={"age": NumberBands((5, 10, 20)), "postcode": Truncate((3, 2))})
    result = generalize_to_k(ages_table(), ["age", "postcode"], 3, policy)
    assert result.k >= 3 and result.k == brute_force_k(result.table, ["age", "postcode"])
    assert result.suppressed == 0
    assert {entry["column"] for entry in result.applied} == {name for name, lv in result.levels.items() if lv}
    assert result.table.column("diagnosis").equals(ages_table().column("diagnosis"))
    # The walk-back leaves no step that could be undone.
    for name, level in result.levels.items():
        if level:
            lower = generalize_to_k_levels(ages_table(), policy, {**result.levels, name: level - 1})
            assert brute_force_k(lower, ["age", "postcode"]) < 3


def generalize_to_k_levels(table: pa.Table, policy: GeneralizationPolicy, levels: dict[str, int]) -> pa.Table:
    for name, level in levels.items():
        column = policy.hierarchies[name].generalize(table.column(name), level)
        table = table.set_column(table.column_names.index(name), name, column)
    return table


def test_suppression_within_budget_removes_the_residual_records() -> None:
    table = pa.table({"sex": ["F"] * 5 + ["M"], "x": list(range(6))})
    with pytest.raises(KAnonymityError):
        generalize_to_k(table, ["sex"], 2, GeneralizationPolicy(max_levels={"sex": 0}))
    result = generalize_to_k(table, ["sex"], 2, GeneralizationPolicy(max_levels={"sex": 0}, max_suppression=0.2))
    assert result.suppressed == 1 and result.kept.to_pylist() == [0, 1, 2, 3, 4]
    assert result.table.column("x").to_pylist() == [0, 1, 2, 3, 4] and result.k == 5


def test_refusal_says_how_far_it_got() -> None:
    policy = GeneralizationPolicy(hierarchies={"age": NumberBands((5,))}, max_levels={"age": 1, "postcode": 0})
    with pytest.raises(KAnonymityError, match="cannot reach k=3") as caught:
        generalize_to_k(ages_table(), ["age", "postcode"], 3, policy)
    assert caught.value.target == 3 and caught.value.best_k == 1 and caught.value.records_below > 0
    with pytest.raises(KAnonymityError, match="at least 20 are needed"):
        generalize_to_k(ages_table(), ["age"], 20)


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="max_suppression"):
        GeneralizationPolicy(max_suppression=1.5)
    with pytest.raises(ValueError, match="max level of 'age'"):
        generalize_to_k(ages_table(), ["age"], 2, GeneralizationPolicy(max_levels={"age": 99}))


# -- properties --------------------------------------------------------------------------------
@st.composite
def tables_and_policies(draw: st.DrawFn) -> tuple[pa.Table, list[str], int, GeneralizationPolicy]:
    rows = draw(st.integers(0, 40))
    ages = draw(st.lists(st.one_of(st.none(), st.integers(0, 100)), min_size=rows, max_size=rows))
    sexes = draw(st.lists(st.sampled_from(["F", "M", None]), min_size=rows, max_size=rows))
    codes = draw(st.lists(st.sampled_from(["13005", "13006", "83000", "75011", "2A004"]), min_size=rows, max_size=rows))
    dates = draw(
        st.lists(st.one_of(st.none(), st.dates(dt.date(1990, 1, 1), dt.date(2030, 1, 1))), min_size=rows, max_size=rows)
    )
    weights = draw(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=rows, max_size=rows))
    table = pa.table(
        {
            "age": pa.array(ages, pa.int32()),
            "sex": pa.array(sexes, pa.string()),
            "postcode": pa.array(codes, pa.string()),
            "diagnosis_date": pa.array(dates, pa.date32()),
            "weight": pa.array(weights, pa.float64()),
            "row": pa.array(range(rows), pa.int64()),
        }
    )
    quasi = draw(st.lists(st.sampled_from(["age", "sex", "postcode", "diagnosis_date"]), unique=True, max_size=4))
    k = draw(st.integers(1, 6))
    hierarchies = {"postcode": Truncate((3, 2, 1))} if draw(st.booleans()) else {}
    caps = {name: draw(st.integers(0, 5)) for name in quasi if draw(st.booleans())}
    caps = {
        name: min(cap, (hierarchies.get(name) or default_hierarchy(table.schema.field(name).type)).height)
        for name, cap in caps.items()
    }
    policy = GeneralizationPolicy(
        hierarchies=hierarchies, max_levels=caps, max_suppression=draw(st.sampled_from([0.0, 0.05, 0.2]))
    )
    return table, quasi, k, policy


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tables_and_policies())
@pytest.mark.parametrize("search", ["auto", "greedy"])
def test_generalization_reaches_k_or_refuses_and_never_touches_other_columns(
    search: str,
    case: tuple[pa.Table, list[str], int, GeneralizationPolicy],
) -> None:
    table, quasi, k, policy = case
    try:
        with pytest.MonkeyPatch.context() as patch:
            if search == "greedy":
                patch.setattr(kanon, "EXHAUSTIVE_NODES", 0)
            result = generalize_to_k(table, quasi, k, policy)
        assert result.search == "greedy" or search == "auto"
    except KAnonymityError as refusal:
        assert refusal.target == k
        assert table.num_rows < k or refusal.records_below > math.floor(policy.max_suppression * table.num_rows + 1e-9)
        return
    sizes = brute_force_sizes(result.table, quasi)
    assert all(size >= k for size in sizes.values())
    assert result.k == (min(sizes.values()) if sizes else 0)
    assert result.suppressed == table.num_rows - result.table.num_rows
    assert result.suppressed <= math.floor(policy.max_suppression * table.num_rows + 1e-9)
    for name, level in result.levels.items():
        assert level <= policy.max_levels.get(name, level)
    original = table.take(result.kept)
    for name in table.column_names:
        if name not in quasi or result.levels[name] == 0:
            assert result.table.column(name).equals(original.column(name)), name
    assert 0.0 <= result.information_loss <= 1.0


@settings(max_examples=60, deadline=None)
@given(case=tables_and_policies())
def test_reported_k_is_the_brute_force_k(case: tuple[pa.Table, list[str], int, GeneralizationPolicy]) -> None:
    table, quasi, k, _ = case
    columns = [*quasi, "weight"]
    report = k_anonymity(table, columns, target=k)
    sizes = brute_force_sizes(table, columns)
    assert report.k == (min(sizes.values()) if sizes else 0)
    assert report.classes == len(sizes)
    assert report.records_below == sum(size for size in sizes.values() if size < k)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tables_and_policies())
def test_exhaustive_search_finds_the_least_loss(case: tuple[pa.Table, list[str], int, GeneralizationPolicy]) -> None:
    table, quasi, k, policy = case
    try:
        result = generalize_to_k(table, quasi, k, policy)
    except KAnonymityError:
        return
    if result.search != "exhaustive" or not quasi:
        return
    ladders = kanon._Ladders(table, quasi, policy)
    budget = math.floor(policy.max_suppression * table.num_rows + 1e-9)
    caps = [ladders.caps[name] for name in quasi]
    for node in itertools.product(*(range(cap + 1) for cap in caps)):
        levels = dict(zip(quasi, node, strict=True))
        view = ladders.view(levels)
        sizes = brute_force_sizes(view, quasi)
        if sum(size for size in sizes.values() if size < k) <= budget:
            assert result.information_loss <= ladders.loss(levels) + 1e-9, levels


def test_levels_that_merge_nothing_are_skipped_and_not_reported() -> None:
    # Both sexes are frequent: "rare → other" levels change nothing, only "*" would.
    table = pa.table({"sex": ["F"] * 60 + ["M"] * 60, "age": [20 + i % 50 for i in range(120)]})
    policy = GeneralizationPolicy(hierarchies={"age": NumberBands((5, 10, 20, 40))})
    for search_nodes in (kanon.EXHAUSTIVE_NODES, 0):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kanon, "EXHAUSTIVE_NODES", search_nodes)
            result = generalize_to_k(table, ["sex", "age"], 5, policy)
        assert result.levels == {"sex": 0, "age": 1}, result.search
        assert [entry["column"] for entry in result.applied] == ["age"]
        assert result.table.column("sex").equals(table.column("sex"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    columns=st.lists(st.lists(st.integers(0, 30), min_size=25, max_size=25), min_size=1, max_size=6),
    k=st.integers(1, 6),
)
def test_the_greedy_search_s_one_fold_per_column_counts_what_a_full_grouping_counts(
    columns: list[list[int]], k: int
) -> None:
    """The greedy step's shortcut (prefix/suffix folds) must count exactly the records below k."""
    table = pa.table({f"c{i}": values for i, values in enumerate(columns)})
    ladders = kanon._Ladders(table, table.column_names, GeneralizationPolicy())
    levels = {name: i % 3 for i, name in enumerate(table.column_names)}
    others = ladders.keys_without_each(levels)
    for name in table.column_names:
        for level in range(ladders.caps[name] + 1):
            expected = ladders.below({**levels, name: level}, k)[0]
            assert ladders.below_with(others[name], name, level, k) == expected
