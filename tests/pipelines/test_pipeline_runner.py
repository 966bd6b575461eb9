from __future__ import annotations

from pathlib import Path

import pytest

from massalia.engine import Column, Engine, connect
from massalia.pipelines import (
    InputFile,
    LineageStore,
    Pipeline,
    Rule,
    RunContext,
    TableChange,
    publish,
    run_pipeline,
)
from massalia.sources import SourceError, SourceOptions


class PeoplePipeline(Pipeline):
    """A toy target model: people(id, name, born) from semicolon CSV files."""

    name = "people"

    def __init__(self, folder: Path, fail_in_publish: bool = False) -> None:
        self.folder = folder
        self.fail_in_publish = fail_in_publish

    def inputs(self) -> list[InputFile]:
        options = SourceOptions(separator=";", columns=("id", "name", "born"))
        return [InputFile("people", p, options) for p in sorted(self.folder.glob("*.csv"))]

    def prepare(self, engine: Engine) -> None:
        if "people" not in engine.list_tables():
            engine.create_empty_table(
                "people",
                [Column("id", "BIGINT", False), Column("name", "VARCHAR(5)"), Column("born", "DATE", False)],
                primary_key=("id",),
            )

    def transform(self, context: RunContext) -> list[TableChange]:
        if "people" not in context.new_datasets():
            return []
        into = context.table("people_valid")
        born = "try_strptime(s.born, '%d/%m/%Y')"
        context.validate(
            source_sql=f"{context.stage('people')} AS s",
            columns=[("id", "CAST(s.id AS BIGINT)"), ("name", "s.name"), ("born", f"CAST({born} AS DATE)")],
            rules=[
                Rule("required", "born", value="s.born"),
                Rule(
                    "invalid_date",
                    "born",
                    value="s.born",
                    result=born,
                    detail="(expected %d/%m/%Y)",
                    source_field="born",
                ),
                Rule("too_long", "name", value="s.name", limit="5", action="flag"),
            ],
            target="people",
            site="toy",
            into=into,
        )
        name = "substr(name, 1, 5)"
        changes = [TableChange("people", f"SELECT id, {name}, born FROM {into}")]
        if self.fail_in_publish:
            changes.append(TableChange("people", "SELECT NULL, 'x', NULL"))  # NOT NULL violation
        return changes


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Engine, LineageStore, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id;name;born\n1;Ana;01/02/1990\n2;Bob;31/02/1990\n3;Clementine;\n4;Dan;05/06/1970\n")
    engine = connect("duckdb")
    store = LineageStore(f"sqlite:///{tmp_path / 'meta.sqlite'}")
    return engine, store, folder


def test_rejects_keep_valid_rows_and_name_file_line_field(setup: tuple[Engine, LineageStore, Path]) -> None:
    engine, store, folder = setup
    result = run_pipeline(engine, PeoplePipeline(folder), store=store)
    assert result.status == "success"
    assert result.rows_added == {"people": 2}
    assert engine.query("SELECT id FROM people ORDER BY id").column(0).to_pylist() == [1, 4]
    rejects = engine.query(
        "SELECT source_line, field, value, reason, action FROM etl_reject ORDER BY source_line, field"
    ).to_pylist()
    assert rejects == [
        {"source_line": 3, "field": "born", "value": "31/02/1990", "reason": "invalid_date", "action": "reject"},
        {"source_line": 4, "field": "born", "value": None, "reason": "missing_required", "action": "reject"},
        {"source_line": 4, "field": "name", "value": "Clementine", "reason": "too_long", "action": "flag"},
    ]
    assert engine.scalar("SELECT DISTINCT source_file FROM etl_reject").endswith("a.csv")
    run = store.get_run(result.run_id)
    assert run.status == "success" and run.outputs == {"people": 2}
    assert run.inputs[0]["rows_read"] == 4 and len(run.inputs[0]["sha256"]) == 64
    assert {(r["reason"], r["rows"]) for r in run.rejects} == {
        ("invalid_date", 1),
        ("missing_required", 1),
        ("too_long", 1),
    }


def test_rerun_same_content_changes_nothing_and_new_file_adds(setup: tuple[Engine, LineageStore, Path]) -> None:
    engine, store, folder = setup
    run_pipeline(engine, PeoplePipeline(folder), store=store)
    # Same bytes under another name and a fresh mtime: still recognised by content.
    (folder / "copy.csv").write_bytes((folder / "a.csv").read_bytes())
    again = run_pipeline(engine, PeoplePipeline(folder), store=store)
    assert again.status == "unchanged" and engine.row_count("people") == 2
    assert engine.row_count("etl_reject") == 3
    (folder / "b.csv").write_text("id;name;born\n5;Eve;01/01/2000\n")
    third = run_pipeline(engine, PeoplePipeline(folder), store=store)
    assert third.rows_added == {"people": 1}
    assert [f.skipped for f in third.files] == [True, False, True]
    assert [r.status for r in store.list_runs()] == ["success", "unchanged", "success"]


def test_failure_during_publish_leaves_previous_state(setup: tuple[Engine, LineageStore, Path]) -> None:
    engine, store, folder = setup
    run_pipeline(engine, PeoplePipeline(folder), store=store)
    (folder / "b.csv").write_text("id;name;born\n5;Eve;01/01/2000\n")
    tables_before = engine.list_tables()
    with pytest.raises(Exception, match="NOT NULL"):
        run_pipeline(engine, PeoplePipeline(folder, fail_in_publish=True), store=store)
    assert engine.query("SELECT id FROM people ORDER BY id").column(0).to_pylist() == [1, 4]
    assert engine.row_count("etl_loaded_file") == 1 and engine.row_count("etl_reject") == 3
    assert engine.list_tables() == tables_before  # staging tables cleaned up
    assert store.list_runs()[0].status == "failed"
    # The file was not recorded as loaded, so the next good run loads it.
    assert run_pipeline(engine, PeoplePipeline(folder), store=store).rows_added == {"people": 1}


def test_malformed_file_fails_run_naming_line(setup: tuple[Engine, LineageStore, Path]) -> None:
    engine, store, folder = setup
    run_pipeline(engine, PeoplePipeline(folder), store=store)
    (folder / "b.csv").write_text("id;name;born\n5;Eve;01/01/2000\n6;Fay\n")
    with pytest.raises(SourceError, match=r"b\.csv, line 3: expected 3 fields"):
        run_pipeline(engine, PeoplePipeline(folder), store=store)
    assert engine.row_count("people") == 2
    assert "b.csv, line 3" in (store.list_runs()[0].message or "")


def test_publish_swap_path_is_all_or_nothing() -> None:
    engine = connect("duckdb")
    engine.execute("CREATE TABLE a (x INTEGER NOT NULL)")
    engine.execute("CREATE TABLE b (y INTEGER NOT NULL)")
    engine.execute("INSERT INTO a VALUES (1), (2)")

    class NoTransactions(type(engine)):  # type: ignore[misc]
        capabilities = type(engine).capabilities.__class__(
            transactions=False, atomic_swap=False, primary_keys=False, indexes=False
        )

    engine.__class__ = NoTransactions
    publish(engine, [TableChange("a", "SELECT 3", delete_where="x = 1"), TableChange("b", "SELECT 7")])
    assert engine.query("SELECT x FROM a ORDER BY x").column(0).to_pylist() == [2, 3]
    with pytest.raises(Exception, match=r"NOT NULL|null"):
        publish(engine, [TableChange("a", "SELECT 9"), TableChange("b", "SELECT NULL")])
    assert engine.query("SELECT x FROM a ORDER BY x").column(0).to_pylist() == [2, 3]
    assert sorted(engine.list_tables()) == ["a", "b"]
