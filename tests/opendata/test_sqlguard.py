"""Attacks on ``datastore_search_sql``: each must be refused, and nothing outside datastore tables be read.

The warehouse of these tests also holds an OMOP ``person`` table and a table named like governance's users, as
a real one would; every attack below fails if it reads them, changes anything or touches the file system.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from opendata_world import OpenDataWorld

from massalia.engine.duckdb import DuckDBEngine
from massalia.opendata import datastore
from massalia.opendata.catalog import Upload
from massalia.opendata.models import ValidationFailed
from massalia.opendata.sqlguard import MAX_SQL_CHARS, UnsafeSql, guarded_query

ATTACKS = {
    "ddl_drop": 'DROP TABLE "{rid}"',
    "ddl_create": "CREATE TABLE stolen AS SELECT * FROM person",
    "dml_insert": "INSERT INTO \"{rid}\" VALUES (99, 'x')",
    "dml_update": "UPDATE \"{rid}\" SET ville = 'x'",
    "dml_delete": 'DELETE FROM "{rid}"',
    "omop_table": "SELECT * FROM person",
    "governance_table": "SELECT * FROM gov_user",
    "qualified_table": "SELECT * FROM main.person",
    "catalog_table": "SELECT * FROM memory.main.person",
    "join_omop": 'SELECT * FROM "{rid}" JOIN person ON true',
    "subquery_omop": 'SELECT (SELECT count(*) FROM person) AS n FROM "{rid}"',
    "union_omop": 'SELECT ville FROM "{rid}" UNION ALL SELECT CAST(person_id AS TEXT) FROM person',
    "cte_shadow_scope": "SELECT * FROM (WITH person AS (SELECT 1 AS x) SELECT * FROM person) a, person",
    "read_csv": "SELECT * FROM read_csv('/etc/passwd')",
    "read_csv_auto": "SELECT * FROM read_csv_auto('/etc/passwd')",
    "read_text": "SELECT read_text('/etc/passwd')",
    "read_parquet": "SELECT * FROM read_parquet('/tmp/x.parquet')",
    "file_path_table": "SELECT * FROM '/etc/passwd'",
    "glob": "SELECT * FROM glob('/*')",
    "getenv": "SELECT getenv('HOME')",
    "settings": "SELECT * FROM duckdb_settings()",
    "current_setting": "SELECT current_setting('home_directory')",
    "tables_listing": "SELECT * FROM duckdb_tables()",
    "information_schema": "SELECT * FROM information_schema.tables",
    "copy_out": "COPY \"{rid}\" TO '{out}/stolen.csv'",
    "copy_in": "COPY \"{rid}\" FROM '/etc/passwd'",
    "attach": "ATTACH '/tmp/other.duckdb' AS other",
    "detach": "DETACH other",
    "pragma": "PRAGMA database_list",
    "pragma_table_info": "SELECT * FROM pragma_table_info('person')",
    "set": "SET enable_external_access = true",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "two_statements": 'SELECT 1; DROP TABLE "{rid}"',
    "select_into": 'SELECT * INTO stolen FROM "{rid}"',
    "export": "EXPORT DATABASE '{out}/dump'",
    "call": "CALL pragma_version()",
    "sqlite_scan": "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
    "comment_smuggling": 'SELECT * FROM "{rid}" -- \nUNION SELECT * FROM person',
}


def _table(world: OpenDataWorld, engine: DuckDBEngine) -> str:
    alice = world.caller("alice")
    world.catalog.package_create(alice, {"name": "bornes", "owner_org": "region-sud"})
    resource = world.catalog.resource_create(
        alice, {"package_id": "bornes", "format": "CSV"}, Upload("b.csv", io.BytesIO(b"id,ville\n1,Aix\n2,Nice\n"))
    )
    datastore.load_file(alice, world.catalog, engine, resource["id"])
    engine.execute_native("CREATE TABLE person (person_id BIGINT, year_of_birth INTEGER)")
    engine.execute_native("INSERT INTO person VALUES (424242, 1950)")
    engine.execute_native("CREATE TABLE gov_user (username TEXT, password_hash TEXT)")
    engine.execute_native("INSERT INTO gov_user VALUES ('admin', 'argon2-secret')")
    return str(resource["id"])


@pytest.mark.parametrize("name", sorted(set(ATTACKS) - {"cte_shadow_scope"}))
def test_the_sql_gate_refuses(name: str) -> None:
    rid = "0b7c5f7e-2d0a-4d47-9f43-3f1c2c2f1a9e"
    with pytest.raises(UnsafeSql):
        guarded_query(ATTACKS[name].format(rid=rid, out="/nonexistent"), {rid: "ods_x"}, max_rows=10)


def test_a_cte_cannot_lend_its_name_to_a_real_table_outside_its_scope() -> None:
    """The query parses, but the outer ``person`` is renamed with the CTE prefix: no real table has that name."""
    rendered = guarded_query(ATTACKS["cte_shadow_scope"], {}, max_rows=10).sql("duckdb")
    assert "FROM person" not in rendered and ", person" not in rendered
    assert rendered.count("odsq_cte_person") == 3, rendered


def test_no_attack_reads_changes_or_writes_anything_through_the_service(
    world: OpenDataWorld, engine: DuckDBEngine, tmp_path: Path
) -> None:
    rid = _table(world, engine)
    anonymous = world.caller("anonymous")
    tables_before = sorted(engine.list_tables())
    for name, sql in ATTACKS.items():
        with pytest.raises(ValidationFailed) as refused:
            datastore.search_sql(anonymous, world.catalog, engine, sql.format(rid=rid, out=tmp_path))
        assert "424242" not in str(refused.value) and "argon2" not in str(refused.value), name
    assert sorted(engine.list_tables()) == tables_before
    assert engine.query(f"SELECT count(*) AS n FROM {datastore.table_name(rid)}").to_pylist() == [{"n": 2}]
    assert not (tmp_path / "stolen.csv").exists() and not (tmp_path / "dump").exists()


def test_a_plain_select_works_and_is_capped(
    world: OpenDataWorld, engine: DuckDBEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = _table(world, engine)
    anonymous = world.caller("anonymous")
    result = datastore.search_sql(
        anonymous, world.catalog, engine, f'SELECT ville, count(*) AS n FROM "{rid}" GROUP BY ville ORDER BY ville'
    )
    assert result["records"] == [{"ville": "Aix", "n": 1}, {"ville": "Nice", "n": 1}]
    monkeypatch.setattr(datastore, "MAX_SQL_ROWS", 1)
    capped = datastore.search_sql(anonymous, world.catalog, engine, f'SELECT * FROM "{rid}"')
    assert len(capped["records"]) == 1 and capped["records_truncated"] is True


def test_a_long_query_is_cancelled_by_the_time_limit(
    world: OpenDataWorld, engine: DuckDBEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = _table(world, engine)
    monkeypatch.setattr(datastore, "SQL_TIME_LIMIT_S", 0.3)
    slow = (
        f'SELECT count(*) FROM "{rid}" a, "{rid}" b, "{rid}" c, (SELECT * FROM "{rid}" d, "{rid}" e) x, '
        + ", ".join(f'"{rid}" t{i}' for i in range(28))  # 2^33 rows: seconds even on an idle machine
    )
    with pytest.raises(ValidationFailed, match="time limit"):
        datastore.search_sql(world.caller("anonymous"), world.catalog, engine, slow)


def test_a_deleted_dataset_s_rows_are_no_longer_readable_by_sql(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    rid = _table(world, engine)
    world.catalog.package_delete(world.caller("alice"), "bornes")
    with pytest.raises(UnsafeSql, match="not a datastore table"):
        datastore.search_sql(world.caller("anonymous"), world.catalog, engine, f'SELECT * FROM "{rid}"')


def test_oversized_sql_is_refused_before_parsing() -> None:
    with pytest.raises(UnsafeSql, match="characters"):
        guarded_query("SELECT 1 " + " " * MAX_SQL_CHARS, {}, max_rows=1)
