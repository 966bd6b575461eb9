"""PostgreSQL-only behaviour: rendering fixes, type mapping, COPY edge cases, connection errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from massalia.engine import EngineError
from massalia.engine.postgres import PostgresEngine, house_type_name, pg_type_for


@pytest.mark.parametrize(
    ("house_sql", "rendered"),
    [
        ("SELECT round(x, 2) FROM t", "SELECT CAST(ROUND(CAST(x AS DECIMAL), 2) AS DOUBLE PRECISION) FROM t"),
        ("SELECT round(CAST(x AS INTEGER), 2) FROM t", "SELECT ROUND(CAST(x AS INT), 2) FROM t"),
        ("SELECT make_date(2020, 1, 2)", "SELECT MAKE_DATE(2020, 1, 2)"),
        ("SELECT a, count(*) FROM t GROUP BY ALL", "SELECT a, COUNT(*) FROM t GROUP BY 1"),
        ("SELECT extract(year FROM d) FROM t", "SELECT CAST(EXTRACT(YEAR FROM d) AS BIGINT) FROM t"),
        ("SELECT dayofweek(d) FROM t", "SELECT CAST(EXTRACT(DOW FROM d) AS BIGINT) FROM t"),
    ],
)
def test_render_fixes(house_sql: str, rendered: str) -> None:
    engine = PostgresEngine.__new__(PostgresEngine)  # rendering needs no connection
    assert engine.render(house_sql) == rendered


def test_render_refuses_several_statements() -> None:
    engine = PostgresEngine.__new__(PostgresEngine)
    with pytest.raises(EngineError, match="one SQL statement"):
        engine.render("SELECT 1; SELECT 2")


@pytest.mark.parametrize(
    ("pg", "house"),
    [
        ("integer", "INTEGER"),
        ("bigint", "BIGINT"),
        ("double precision", "DOUBLE"),
        ("character varying(50)", "VARCHAR"),
        ("text", "VARCHAR"),
        ("numeric(18,3)", "DECIMAL(18,3)"),
        ("numeric", "DECIMAL"),
        ("timestamp without time zone", "TIMESTAMP"),
        ("integer[]", "INTEGER[]"),
    ],
)
def test_house_type_names(pg: str, house: str) -> None:
    assert house_type_name(pg) == house


def test_arrow_types_without_pg_equivalent_are_refused() -> None:
    assert pg_type_for(pa.dictionary(pa.int8(), pa.string())) == "text"
    with pytest.raises(EngineError, match="no PostgreSQL column type"):
        pg_type_for(pa.list_(pa.int64()))


def test_missing_dsn_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASSALIA_PG_DSN", raising=False)
    with pytest.raises(EngineError, match="MASSALIA_PG_DSN"):
        PostgresEngine()


def test_unreachable_server_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match="cannot connect"):
        PostgresEngine("host=127.0.0.1 port=1 user=nobody dbname=nothing connect_timeout=2")


@pytest.fixture
def pg(pg_dsn: str) -> PostgresEngine:
    engine = PostgresEngine(pg_dsn, schema="t_pg_only")
    yield engine
    engine.drop_schema()
    engine.close()


@pytest.mark.postgres
def test_binary_timezone_and_dictionary_columns(pg: PostgresEngine) -> None:
    table = pa.table(
        {
            "raw": pa.array([b"\x00\x01\xff", b"", None], pa.binary()),
            "aware": pa.array(
                [dt.datetime(2020, 1, 1, 12, tzinfo=dt.UTC), None, dt.datetime(1999, 12, 31, tzinfo=dt.UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
            "coded": pa.array(["a", "b", "a"]).dictionary_encode(),
        }
    )
    pg.create_table("mixed", table)
    back = pg.query("SELECT * FROM mixed")
    assert back.column("raw").to_pylist() == table.column("raw").to_pylist()
    assert back.column("aware").to_pylist() == table.column("aware").to_pylist()
    assert back.column("coded").to_pylist() == ["a", "b", "a"]


@pytest.mark.postgres
def test_numeric_results_are_exact(pg: PostgresEngine) -> None:
    result = pg.query_native(
        "SELECT 1.25::numeric(10,2) AS fixed, sum(x) AS total, 1::numeric / 3 AS third "
        "FROM (VALUES (9223372036854775807::bigint), (1::bigint)) v(x)"
    )
    assert result.schema.field("fixed").type == pa.decimal128(10, 2)
    assert result.column("total").to_pylist() == [Decimal(9223372036854775808)]
    assert result.schema.field("third").type == pa.decimal128(38, 20)
    nan = pg.query_native("SELECT 'NaN'::numeric AS n")
    assert nan.schema.field("n").type == pa.float64()


@pytest.mark.postgres
def test_text_with_nul_is_refused_with_the_table_name(pg: PostgresEngine) -> None:
    with pytest.raises(EngineError, match="bad"):
        pg.create_table("bad", pa.table({"s": ["a\x00b"]}))
    assert pg.list_tables() == []


@pytest.mark.postgres
def test_schema_isolation(pg: PostgresEngine, pg_dsn: str) -> None:
    pg.create_table("only_here", pa.table({"a": [1]}))
    other = PostgresEngine(pg_dsn, schema="t_pg_other")
    try:
        assert other.list_tables() == []
        assert other.schema == "t_pg_other"
    finally:
        other.drop_schema()
        other.close()


MIXED = pa.table(
    {
        "rid": pa.array(range(7), pa.int64()),
        "tiny": pa.array([1, None, -128, 127, 0, 5, None], pa.int8()),
        "u32": pa.array([0, 2**32 - 1, None, 1, 2, 3, 4], pa.uint32()),
        "real": pa.array([1.5, None, -0.0, float("inf"), float("-inf"), 3.25, 1e-30], pa.float32()),
        "text": pa.array(["", None, "é\t\\N", '"', "\\x00", "a" * 1000, "NULL"], pa.large_string()),
        "day": pa.array(
            [
                dt.date(1, 1, 1),
                dt.date(9999, 12, 31),
                None,
                dt.date(2000, 1, 1),
                dt.date(1999, 12, 31),
                dt.date(1970, 1, 1),
                dt.date(2024, 2, 29),
            ]
        ),
        "ts_ms": pa.array([0, -1, None, 946_684_800_000, 1, 2, 3], pa.timestamp("ms")),
        "nothing": pa.nulls(7),
    }
)


@pytest.mark.postgres
@pytest.mark.parametrize("with_decimal", [False, True], ids=["binary-copy", "csv-copy"])
def test_both_copy_formats_round_trip(pg: PostgresEngine, with_decimal: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from massalia.engine import postgres

    monkeypatch.setattr(postgres, "COPY_CHUNK_ROWS", 3)  # several chunks, sliced arrays with offsets
    table = MIXED
    if with_decimal:  # decimals have no binary encoder: the whole table goes through CSV
        table = table.append_column("amount", pa.array([Decimal("1.5")] * 7, pa.decimal128(5, 2)))
    assert all(postgres._binary_encodable(f.type) for f in table.schema) is not with_decimal
    assert pg.create_table("mixed", table) == 7
    back = pg.query("SELECT * FROM mixed ORDER BY rid")
    assert back.column("tiny").to_pylist() == MIXED.column("tiny").to_pylist()
    assert back.column("u32").to_pylist() == MIXED.column("u32").to_pylist()
    assert back.column("real").to_pylist() == MIXED.column("real").to_pylist()
    assert back.column("text").to_pylist() == MIXED.column("text").to_pylist()
    assert back.column("day").to_pylist() == MIXED.column("day").to_pylist()
    assert back.column("ts_ms").to_pylist() == MIXED.column("ts_ms").to_pylist()
    assert back.column("nothing").to_pylist() == [None] * 7
    assert [c.type for c in pg.describe("mixed")][1:5] == ["SMALLINT", "BIGINT", "FLOAT", "VARCHAR"]


@pytest.mark.postgres
def test_results_come_through_copy_when_types_allow(pg: PostgresEngine) -> None:
    pg.create_table("mixed", MIXED.drop_columns(["nothing"]))
    assert pg._result_types("SELECT rid, text, day FROM mixed") is not None
    assert pg._result_types("SELECT 1::numeric AS n") is None  # numerics keep exact cursor decoding
    assert pg._result_types("SHOW search_path") is None
    fast = pg.query("SELECT * FROM mixed ORDER BY rid")
    slow = pg.query_native("SELECT *, NULL::numeric AS n FROM mixed ORDER BY rid").drop_columns(["n"])
    assert fast.equals(slow)
    assert fast.column("text").to_pylist() == MIXED.column("text").to_pylist()
    with pytest.raises(EngineError, match="before year 1"):  # neither Arrow's CSV parser nor Python read BC
        pg.query_native("SELECT DATE '0044-03-15 BC' AS ides")


@pytest.mark.postgres
def test_registry_opens_postgres(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from massalia.engine import connect

    monkeypatch.setenv("MASSALIA_PG_DSN", pg_dsn)
    with connect("postgres", schema="t_pg_registry") as engine:
        assert isinstance(engine, PostgresEngine)
        assert engine.scalar("SELECT current_schema()") == "t_pg_registry"
        engine.drop_schema()


@pytest.mark.postgres
def test_error_inside_a_transaction_names_the_real_cause(pg: PostgresEngine) -> None:
    with pytest.raises(EngineError, match='relation "missing" does not exist'), pg.transaction():
        pg.query("SELECT * FROM missing")
    assert pg.query_native("SELECT 1 AS one;").to_pylist() == [{"one": 1}]
