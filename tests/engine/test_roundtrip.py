"""Values survive a trip through every engine: Arrow in, SQL table, Arrow out (shared engine suite)."""

from __future__ import annotations

import datetime as dt
import string
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from massalia.engine import Engine

SAMPLE = pa.table(
    {
        "rid": pa.array([1, 2, 3, 4], pa.int64()),
        "small": pa.array([1, None, -(2**31), 2**31 - 1], pa.int32()),
        "big": pa.array([2**40, -(2**62), None, 0], pa.int64()),
        "ratio": pa.array([0.5, None, -1e300, 1 / 3], pa.float64()),
        "label": pa.array(['l\'été "chaud", à Marseille', "", None, "ligne\nsuivante ; 🙂"], pa.string()),
        "day": pa.array([dt.date(2020, 2, 29), None, dt.date(1900, 1, 1), dt.date(2099, 12, 31)]),
        "moment": pa.array(
            [
                dt.datetime(2020, 2, 29, 23, 59, 59, 123456),
                None,
                dt.datetime(1970, 1, 1),
                dt.datetime(2001, 9, 9, 1, 46, 40),
            ],
            pa.timestamp("us"),
        ),
        "flag": pa.array([True, False, None, True], pa.bool_()),
        "amount": pa.array([Decimal("1.25"), None, Decimal("-3.50"), Decimal("0.00")], pa.decimal128(10, 2)),
    }
)


def test_types_round_trip(engine: Engine) -> None:
    assert engine.create_table("sample", SAMPLE) == 4
    back = engine.query("SELECT * FROM sample ORDER BY rid")
    assert back.schema == SAMPLE.schema
    assert back.to_pylist() == SAMPLE.to_pylist()


def test_null_and_empty_string_stay_apart(engine: Engine) -> None:
    engine.create_table("sample", SAMPLE)
    row = engine.query(
        "SELECT count(*) FILTER (WHERE label = '') AS empty, count(*) FILTER (WHERE label IS NULL) AS missing, "
        "count(label) AS present FROM sample"
    ).to_pylist()
    assert row == [{"empty": 1, "missing": 1, "present": 3}]


def test_empty_result_keeps_names_and_types(engine: Engine) -> None:
    engine.create_table("sample", SAMPLE)
    empty = engine.query("SELECT rid, label, day, moment FROM sample WHERE rid < 0")
    assert empty.num_rows == 0
    assert empty.schema == SAMPLE.select(["rid", "label", "day", "moment"]).schema


def test_zero_row_table(engine: Engine) -> None:
    assert engine.create_table("nothing", SAMPLE.slice(0, 0)) == 0
    assert engine.row_count("nothing") == 0
    assert [c.name for c in engine.describe("nothing")] == SAMPLE.column_names


def test_parquet_source(engine: Engine, tmp_path: pytest.TempPathFactory) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "sample.parquet"  # type: ignore[operator]
    pq.write_table(SAMPLE, path, row_group_size=2)
    assert engine.create_table("from_parquet", path) == 4
    assert engine.query("SELECT * FROM from_parquet ORDER BY rid").to_pylist() == SAMPLE.to_pylist()


def test_batches_stream(engine: Engine) -> None:
    batches = (SAMPLE.slice(i, 1).to_batches()[0] for i in range(SAMPLE.num_rows))
    assert engine.create_table("streamed", batches, schema=SAMPLE.schema) == 4
    assert engine.scalar("SELECT sum(big) FROM streamed") == 2**40 - 2**62


# -- Hypothesis: random tables through create_table + query -------------------------------------
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_COLUMN_KINDS = {
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "int32": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    "string": (pa.string(), _TEXT),
    "date": (pa.date32(), st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31))),
    "double": (pa.float64(), st.floats(allow_nan=False)),
    "bool": (pa.bool_(), st.booleans()),
}


@st.composite
def arrow_tables(draw: st.DrawFn) -> pa.Table:
    kinds = draw(st.lists(st.sampled_from(sorted(_COLUMN_KINDS)), min_size=1, max_size=4))
    names = draw(
        st.lists(
            st.text(string.ascii_lowercase, min_size=1, max_size=8),
            min_size=len(kinds),
            max_size=len(kinds),
            unique=True,
        )
    )
    rows = draw(st.integers(0, 12))
    columns: dict[str, pa.Array] = {"rid": pa.array(range(rows), pa.int64())}
    for kind, name in zip(kinds, names, strict=True):
        arrow_type, values = _COLUMN_KINDS[kind]
        cells = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        columns[f"c_{name}"] = pa.array(cells, arrow_type)
    return pa.table(columns)


@pytest.mark.parametrize(
    "engine",
    [pytest.param("duckdb", marks=pytest.mark.duckdb), pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=arrow_tables())
def test_random_tables_round_trip(engine: Engine, table: pa.Table) -> None:
    engine.create_table("random", table)
    back = engine.query("SELECT * FROM random ORDER BY rid")
    assert back.schema == table.schema
    assert back.to_pylist() == table.to_pylist()


def test_reserved_words_and_mixed_case_as_column_names(engine: Engine) -> None:
    table = pa.table({"offset": pa.array([1, 2], pa.int64()), "Order": ["a", "b"], "user": [True, False]})
    assert engine.create_table("words", table) == 2
    engine.insert("words", table)
    assert [c.name.lower() for c in engine.describe("words")] == ["offset", "order", "user"]
    rows = engine.query('SELECT "offset", "order" FROM words ORDER BY "offset", "order"').to_pylist()
    # Result names keep the stored case on DuckDB ("Order"), are folded on PostgreSQL: compare folded.
    assert [{key.lower(): value for key, value in row.items()} for row in rows] == [
        {"offset": 1, "order": "a"},
        {"offset": 1, "order": "a"},
        {"offset": 2, "order": "b"},
        {"offset": 2, "order": "b"},
    ]
