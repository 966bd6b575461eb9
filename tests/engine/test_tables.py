"""Tables on every engine: atomic create/replace, several tables at once, insert, catalog, capabilities."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from massalia.engine import Column, Engine, EngineError, UnsupportedOperation

OLD = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["ancien", "vieux"]})
NEW = pa.table({"id": pa.array([10, 20, 30], pa.int64()), "name": ["neuf", "nouveau", "récent"]})
SCHEMA = OLD.schema


def _failing_batches() -> Iterator[pa.RecordBatch]:
    """A good batch, then one whose ``id`` cannot be cast to BIGINT: the write fails midway."""
    yield NEW.to_batches()[0]
    yield pa.record_batch({"id": ["11", "not a number"], "name": ["x", "y"]})


def _contents(engine: Engine, table: str) -> list[dict[str, object]]:
    return engine.query(f"SELECT id, name FROM {table} ORDER BY id").to_pylist()


def test_create_replaces_table(engine: Engine) -> None:
    engine.create_table("patients", OLD)
    assert engine.create_table("patients", NEW) == 3
    assert _contents(engine, "patients") == NEW.to_pylist()
    assert engine.list_tables() == ["patients"]


def test_failed_write_leaves_old_table_intact(engine: Engine) -> None:
    engine.create_table("patients", OLD)
    with pytest.raises((EngineError, pa.ArrowInvalid)):
        engine.create_table("patients", _failing_batches(), schema=SCHEMA)
    assert _contents(engine, "patients") == OLD.to_pylist()
    assert engine.list_tables() == ["patients"], "the staging table must be dropped"


def test_create_tables_failing_write_changes_nothing(engine: Engine) -> None:
    engine.create_tables({"a": OLD, "b": OLD})
    with pytest.raises((EngineError, pa.ArrowInvalid)):
        engine.create_tables({"a": NEW, "b": _failing_batches()}, schemas={"b": SCHEMA})
    assert _contents(engine, "a") == OLD.to_pylist()
    assert _contents(engine, "b") == OLD.to_pylist()
    assert engine.list_tables() == ["a", "b"]


def test_swap_is_all_or_nothing(engine: Engine, request: pytest.FixtureRequest) -> None:
    if not engine.capabilities.atomic_swap:
        request.applymarker(
            pytest.mark.xfail(reason=f"{engine.name} swaps tables one by one (atomic_swap=False)", strict=True)
        )
    engine.create_tables({"a": OLD, "b": OLD})
    staging = engine.staging_name("a")
    engine.write_new_table(staging, NEW)
    with pytest.raises(EngineError):
        engine.swap({staging: "a", "stg_missing_b": "b"})
    assert _contents(engine, "a") == OLD.to_pylist()
    assert _contents(engine, "b") == OLD.to_pylist()


def test_create_tables_replaces_all(engine: Engine) -> None:
    counts = engine.create_tables({"a": OLD, "b": NEW})
    assert counts == {"a": 2, "b": 3}
    counts = engine.create_tables({"a": NEW, "b": OLD})
    assert counts == {"a": 3, "b": 2}
    assert _contents(engine, "a") == NEW.to_pylist()
    assert _contents(engine, "b") == OLD.to_pylist()


def test_insert_appends_by_name(engine: Engine) -> None:
    engine.create_table("patients", OLD)
    reordered = NEW.select(["name", "id"])
    assert engine.insert("patients", reordered) == 3
    assert engine.row_count("patients") == 5
    assert [r["id"] for r in _contents(engine, "patients")] == [1, 2, 10, 20, 30]


def test_write_new_table_refuses_existing(engine: Engine) -> None:
    engine.create_table("patients", OLD)
    with pytest.raises(EngineError, match="already exists"):
        engine.write_new_table("patients", NEW)


def test_list_and_describe(engine: Engine) -> None:
    assert engine.list_tables() == []
    engine.create_table("zeta", OLD)
    engine.create_empty_table(
        "alpha",
        [
            Column("alpha_id", "BIGINT", nullable=False),
            Column("concept_id", "INTEGER"),
            Column("value_as_number", "DOUBLE"),
            Column("start_date", "DATE"),
            Column("start_datetime", "TIMESTAMP"),
            Column("source_value", "VARCHAR(50)"),
            Column("flag", "BOOLEAN"),
        ],
        primary_key=["alpha_id"],
    )
    engine.execute("CREATE VIEW beta AS SELECT * FROM zeta")
    assert engine.list_tables() == ["alpha", "zeta"]
    assert engine.table_exists("alpha") and not engine.table_exists("beta")
    described = [(c.name, c.type) for c in engine.describe("alpha")]
    assert described == [
        ("alpha_id", "BIGINT"),
        ("concept_id", "INTEGER"),
        ("value_as_number", "DOUBLE"),
        ("start_date", "DATE"),
        ("start_datetime", "TIMESTAMP"),
        ("source_value", "VARCHAR"),
        ("flag", "BOOLEAN"),
    ]
    nullable = {c.name: c.nullable for c in engine.describe("alpha")}
    assert nullable["concept_id"] is True
    with pytest.raises(EngineError):
        engine.describe("no_such_table")


def test_primary_key_enforced_where_supported(engine: Engine) -> None:
    engine.create_empty_table("keyed", [Column("id", "BIGINT", nullable=False)], primary_key=["id"])
    engine.insert("keyed", pa.table({"id": pa.array([1], pa.int64())}))
    duplicate = pa.table({"id": pa.array([1], pa.int64())})
    if engine.capabilities.primary_keys:
        with pytest.raises(EngineError):
            engine.insert("keyed", duplicate)
        assert engine.row_count("keyed") == 1
    else:
        engine.insert("keyed", duplicate)
        assert engine.row_count("keyed") == 2


def test_index_or_clear_refusal(engine: Engine) -> None:
    engine.create_table("patients", OLD)
    if engine.capabilities.indexes:
        engine.create_index("patients", ["name"])
        engine.create_index("patients", ["name"])  # idempotent
    else:
        with pytest.raises(UnsupportedOperation, match=engine.name):
            engine.create_index("patients", ["name"])


def test_transaction_commit_and_rollback(engine: Engine) -> None:
    engine.create_table("patients", OLD)
    if not engine.capabilities.transactions:
        with pytest.raises(UnsupportedOperation), engine.transaction():
            pass
        return
    with engine.transaction():
        engine.execute("DELETE FROM patients WHERE id = 1")
        engine.execute("CREATE TABLE extra AS SELECT 1 AS one")
    assert engine.row_count("patients") == 1
    with pytest.raises(RuntimeError, match="boom"), engine.transaction():
        engine.execute("DELETE FROM patients")
        engine.execute("DROP TABLE extra")
        raise RuntimeError("boom")
    assert engine.row_count("patients") == 1
    assert engine.list_tables() == ["extra", "patients"]


def test_errors_name_the_sql(engine: Engine) -> None:
    with pytest.raises(EngineError, match="no_such_table"):
        engine.query("SELECT * FROM no_such_table")
    with pytest.raises(ValueError, match="invalid SQL identifier"):
        engine.create_table("bad name; drop", OLD)


def test_create_table_inside_a_transaction_joins_it(engine: Engine) -> None:
    if not engine.capabilities.transactions:
        with pytest.raises(UnsupportedOperation), engine.transaction():
            engine.create_table("kept", OLD)
        assert engine.list_tables() == [], "nothing runs when the engine refuses the transaction"
        return
    with engine.transaction():
        engine.create_table("kept", OLD)
    with pytest.raises(RuntimeError, match="boom"), engine.transaction():
        engine.create_table("undone", NEW)
        engine.create_table("kept", NEW)
        raise RuntimeError("boom")
    assert engine.list_tables() == ["kept"]
    assert _contents(engine, "kept") == OLD.to_pylist()


def test_scalar_int_reads_counts_and_refuses_what_is_not_a_whole_number(engine: Engine) -> None:
    """Counts and ids come back as int on every engine (a whole NUMERIC too); NULL is 0; anything else is refused."""
    engine.create_table("patients", NEW)
    assert engine.scalar_int("SELECT count(*) FROM patients") == 3
    assert engine.scalar_int("SELECT max(id) FROM patients WHERE id < 0") == 0
    assert engine.scalar_int("SELECT CAST(42 AS DECIMAL(18, 0))") == 42
    with pytest.raises(EngineError, match="whole number"):
        engine.scalar_int("SELECT 'forty-two'")
    with pytest.raises(EngineError, match="whole number"):
        engine.scalar_int("SELECT 2.5")
