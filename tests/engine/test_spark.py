"""Spark-only behaviour: rendering fixes, type names, capability refusals, session handling."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import types as st

from massalia.engine import EngineError, UnsupportedOperation
from massalia.engine.spark import SparkEngine, house_type_name


@pytest.mark.parametrize(
    ("house_sql", "rendered"),
    [
        (
            "SELECT date_diff('hour', a, b) FROM t",
            "SELECT DATEDIFF(HOUR, DATE_TRUNC('HOUR', a), DATE_TRUNC('HOUR', b)) FROM t",
        ),
        ("SELECT dayofweek(d) FROM t", "SELECT (DAYOFWEEK(d) - 1) FROM t"),
        ("SELECT d + INTERVAL 3 DAY FROM t", "SELECT d + INTERVAL '3' DAY FROM t"),
    ],
)
def test_render_fixes(house_sql: str, rendered: str) -> None:
    engine = SparkEngine.__new__(SparkEngine)  # rendering needs no session
    assert engine.render(house_sql) == rendered


@pytest.mark.parametrize(
    ("spark_type", "house"),
    [
        (st.LongType(), "BIGINT"),
        (st.IntegerType(), "INTEGER"),
        (st.StringType(), "VARCHAR"),
        (st.TimestampNTZType(), "TIMESTAMP"),
        (st.TimestampType(), "TIMESTAMP WITH TIME ZONE"),
        (st.DecimalType(18, 3), "DECIMAL(18,3)"),
        (st.ArrayType(st.IntegerType()), "INTEGER[]"),
    ],
)
def test_house_type_names(spark_type: st.DataType, house: str) -> None:
    assert house_type_name(spark_type) == house


@pytest.fixture
def spark(spark_session: Any) -> SparkEngine:
    engine = SparkEngine(spark_session, database="t_spark_only")
    yield engine
    engine.drop_database()
    engine.close()


@pytest.mark.spark
def test_engine_settings_do_not_leak_into_the_callers_session(spark: SparkEngine, spark_session: Any) -> None:
    spark_session.sql("USE default")
    spark.create_table("here", pa.table({"a": [1]}))
    assert spark_session.catalog.currentDatabase() == "default"
    assert spark.scalar("SELECT current_database()") == "t_spark_only"


@pytest.mark.spark
def test_capability_refusals(spark: SparkEngine) -> None:
    spark.create_table("here", pa.table({"a": [1]}))
    with pytest.raises(UnsupportedOperation, match="transactions"), spark.transaction():
        pass
    with pytest.raises(UnsupportedOperation, match="indexes"):
        spark.create_index("here", ["a"])


@pytest.mark.spark
def test_default_database_is_never_dropped(spark_session: Any) -> None:
    engine = SparkEngine(spark_session)
    assert engine.database == "default"
    with pytest.raises(EngineError, match="default"):
        engine.drop_database()


@pytest.mark.spark
def test_registry_opens_spark(spark_session: Any) -> None:
    from massalia.engine import connect

    engine = connect("spark", session=spark_session, database="t_spark_registry")
    try:
        assert isinstance(engine, SparkEngine)
        assert engine.scalar("SELECT current_database()") == "t_spark_registry"
    finally:
        engine.drop_database()
        engine.close()
    assert not spark_session.sparkContext._jsc.sc().isStopped(), "a borrowed session is never stopped"
