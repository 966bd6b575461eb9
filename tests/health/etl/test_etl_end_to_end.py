"""End-to-end ETL on generated multi-site extracts: exact defect truth, incremental, atomic, lineage."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from massalia.engine import Engine, connect
from massalia.health.etl import format_reject, list_runs, run_etl, show_rejects
from massalia.health.synth import generate
from massalia.sources import SourceError

PATIENTS = 240
CHUNK = 120


@pytest.fixture(scope="module")
def extracts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("extracts")
    generate(out, PATIENTS, seed=7, chunk_size=CHUNK, dirty_rate=0.02, with_documents=True)
    return out


@pytest.fixture(scope="module")
def loaded(extracts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, str, object]]:
    folder = tmp_path_factory.mktemp("wh")
    engine = connect("duckdb", path=folder / "warehouse.duckdb")
    metadata = f"sqlite:///{folder / 'meta.sqlite'}"
    report = run_etl(engine, extracts, metadata_url=metadata)
    yield engine, metadata, report
    engine.close()


def rejects_with_truth(engine: Engine, extracts: Path) -> duckdb.DuckDBPyConnection:
    """Rejects and defect truth side by side in a scratch DuckDB (record numbers as the truth counts them)."""
    db = duckdb.connect()
    rows = engine.query("SELECT * FROM etl_reject")
    db.register("rejects_arrow", rows)
    prefix = str(extracts) + "/"
    db.execute(
        "CREATE TABLE rj AS SELECT site, replace(source_file, ?, '') AS file, field, reason, action, value, "
        "target_table, CASE WHEN source_file LIKE '%.csv' THEN source_line - 1 ELSE source_line END AS row "
        "FROM rejects_arrow",
        [prefix],
    )
    db.execute(f"CREATE TABLE truth AS SELECT * FROM read_parquet('{extracts}/truth/defects_*.parquet')")
    return db


def test_loads_every_omop_table(loaded: tuple[Engine, str, object]) -> None:
    engine, _, report = loaded
    for table in (
        "person",
        "observation_period",
        "visit_occurrence",
        "condition_occurrence",
        "drug_exposure",
        "procedure_occurrence",
        "measurement",
        "observation",
        "death",
        "note",
        "episode",
        "episode_event",
        "location",
        "care_site",
        "cdm_source",
        "source_to_concept_map",
    ):
        assert engine.row_count(table) > 0, table
    assert report.status == "success"  # type: ignore[attr-defined]
    assert engine.row_count("care_site") == 3
    # Every person has one observation period covering their events.
    assert (
        engine.scalar(
            "SELECT count(*) FROM person p LEFT JOIN observation_period o USING (person_id) WHERE o.person_id IS NULL"
        )
        == 0
    )
    assert (
        engine.scalar(
            "SELECT count(*) FROM measurement m JOIN observation_period o USING (person_id) "
            "WHERE m.measurement_date NOT BETWEEN o.observation_period_start_date "
            "AND o.observation_period_end_date"
        )
        == 0
    )
    version = engine.scalar("SELECT vocabulary_version FROM cdm_source")
    assert version == engine.scalar("SELECT vocabulary_version FROM vocabulary WHERE vocabulary_id = 'None'")
    # Source values and source concepts are kept.
    assert engine.scalar("SELECT count(*) FROM condition_occurrence WHERE condition_source_value IS NULL") == 0
    assert engine.scalar("SELECT count(*) FROM measurement WHERE measurement_source_concept_id > 0") > 0
    # Local codes went through the site's SOURCE_TO_CONCEPT_MAP, lab values to UCUM units.
    assert (
        engine.scalar(
            "SELECT count(*) FROM source_to_concept_map WHERE source_vocabulary_id = 'CLCC_SUD' "
            "AND target_concept_id > 0"
        )
        > 0
    )
    hemoglobin = (
        engine.query(
            "SELECT DISTINCT unit_source_value FROM measurement WHERE measurement_source_value = 'LAB-HEMOGLOBIN'"
        )
        .column(0)
        .to_pylist()
    )
    assert hemoglobin == ["g/L"]
    assert (
        engine.scalar("SELECT max(value_as_number) FROM measurement WHERE measurement_source_value = 'LAB-HEMOGLOBIN'")
        < 25
    )  # g/L × 0.1 = g/dL
    # Ids are unique per table.
    for table, key in (
        ("measurement", "measurement_id"),
        ("visit_occurrence", "visit_occurrence_id"),
        ("condition_occurrence", "condition_occurrence_id"),
        ("person", "person_id"),
    ):
        assert engine.scalar(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}") == 0


def test_every_injected_defect_is_rejected_at_its_file_line_and_field(
    loaded: tuple[Engine, str, object], extracts: Path
) -> None:
    engine, _, _ = loaded
    db = rejects_with_truth(engine, extracts)
    assert db.execute("SELECT count(*) FROM truth").fetchone()[0] > 50
    missed = db.execute(
        "SELECT t.* FROM truth t WHERE NOT EXISTS (SELECT 1 FROM rj r WHERE r.site = t.site AND r.file = t.file "
        "AND r.row = t.row AND r.field = t.field AND r.action = 'reject')"
    ).fetchall()
    assert missed == []
    kinds = {
        "bad_date": "invalid_date",
        "unknown_code": "invalid_code",
        "missing_required": "missing_required",
        "bad_number": "invalid_number",
    }
    wrong_reason = db.execute(
        "SELECT t.kind, r.reason FROM truth t JOIN rj r ON r.site = t.site AND r.file = t.file AND r.row = t.row "
        "AND r.field = t.field"
    ).fetchall()
    assert all(kinds[kind] == reason for kind, reason in wrong_reason)


def test_no_clean_row_is_rejected_except_cascades_of_rejected_records(
    loaded: tuple[Engine, str, object], extracts: Path
) -> None:
    engine, _, _ = loaded
    db = rejects_with_truth(engine, extracts)
    others = db.execute(
        "SELECT reason, action, count(*) FROM rj r WHERE NOT EXISTS (SELECT 1 FROM truth t WHERE r.site = t.site "
        "AND r.file = t.file AND r.row = t.row) GROUP BY ALL"
    ).fetchall()
    assert {reason for reason, _, _ in others} <= {"unknown_reference"}
    # A cascade points at a key whose own record was refused: never loaded in the id map.
    known = engine.query("SELECT site, source_value FROM etl_id_map").to_pylist()
    db.register("known_keys", pa.Table.from_pylist(known))
    dangling_to_loaded = db.execute(
        "SELECT count(*) FROM rj r JOIN known_keys k ON k.site = r.site AND k.source_value = r.value "
        "WHERE r.reason = 'unknown_reference'"
    ).fetchone()[0]
    assert dangling_to_loaded == 0


def test_rerun_of_same_files_changes_nothing(loaded: tuple[Engine, str, object], extracts: Path) -> None:
    engine, metadata, _ = loaded
    before = {t: engine.row_count(t) for t in engine.list_tables()}
    again = run_etl(engine, extracts, metadata_url=metadata)
    assert again.status == "unchanged" and again.files_loaded == 0 and again.files_skipped > 0
    assert {t: engine.row_count(t) for t in engine.list_tables()} == before
    runs = list_runs(metadata)
    assert [r.status for r in runs[:2]] == ["unchanged", "success"]
    first = runs[1]
    assert first.outputs["person"] == engine.row_count("person")
    assert all(len(i["sha256"]) == 64 and i["rows_read"] >= 0 for i in first.inputs)
    assert sum(r["rows"] for r in first.rejects) == engine.row_count("etl_reject")


def test_show_rejects_names_file_line_field(loaded: tuple[Engine, str, object]) -> None:
    engine, _, _ = loaded
    rows = show_rejects(engine, reason="invalid_date", limit=5)
    assert rows and all(r["reason"] == "invalid_date" for r in rows)
    text = format_reject(rows[0])
    assert f"line {rows[0]['source_line']}" in text and rows[0]["field"] in text and "not a valid date" in text


def test_incremental_batch_adds_new_files_and_keeps_ids(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    generate(sources, CHUNK, seed=3, chunk_size=CHUNK, with_documents=False, sites=["chu_nord"])
    engine = connect("duckdb", path=tmp_path / "w.duckdb")
    metadata = f"sqlite:///{tmp_path / 'meta.sqlite'}"
    run_etl(engine, sources, metadata_url=metadata)
    persons = engine.query("SELECT person_source_value, person_id FROM person ORDER BY 1").to_pylist()
    measurements = engine.row_count("measurement")
    # Batch 2: new patients in new part files, plus new lab results for a patient of batch 1.
    generate(sources, CHUNK, seed=3, chunk_size=CHUNK, start_index=CHUNK, with_documents=False, sites=["chu_nord"])
    ipp = persons[0]["person_source_value"]
    (sources / "chu_nord" / "biologie_part9999.csv").write_text(
        "\ufeffipp;num_sejour;date_prelevement;code_loinc;libelle;valeur;unite;borne_inf;borne_sup\n"
        f"{ipp};;02/03/2024 07:30;718-7;Hémoglobine;11,5;g/dL;12;16\n",
        encoding="utf-8",
    )
    report = run_etl(engine, sources, metadata_url=metadata)
    assert report.status == "success" and report.files_skipped > 0
    after = engine.query("SELECT person_source_value, person_id FROM person ORDER BY 1").to_pylist()
    assert after[: len(persons)] == persons  # batch-1 persons keep their ids
    assert len(after) > len(persons)
    person_id = persons[0]["person_id"]
    assert (
        engine.scalar(
            f"SELECT count(*) FROM measurement WHERE person_id = {person_id} "
            "AND measurement_date = DATE '2024-03-02' AND value_as_number = 11.5"
        )
        == 1
    )
    assert engine.row_count("measurement") > measurements
    end = engine.scalar(f"SELECT observation_period_end_date FROM observation_period WHERE person_id = {person_id}")
    assert str(end) >= "2024-03-02"


def test_malformed_file_fails_the_run_and_leaves_warehouse_intact(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    generate(sources, CHUNK, seed=4, chunk_size=CHUNK, with_documents=False, sites=["chu_nord"])
    engine = connect("duckdb", path=tmp_path / "w.duckdb")
    metadata = f"sqlite:///{tmp_path / 'meta.sqlite'}"
    run_etl(engine, sources, metadata_url=metadata)
    before = {t: engine.row_count(t) for t in engine.list_tables()}
    good = sources / "chu_nord" / "actes_part0001.csv"
    shutil.copy(sources / "chu_nord" / "actes_part0000.csv", good)
    with good.open("a", encoding="utf-8") as handle:
        handle.write("S0000000001;100000001;01/01/2020\n")  # 3 fields instead of 5
    lines = good.read_text(encoding="utf-8-sig").count("\n")
    with pytest.raises(SourceError, match=rf"actes_part0001\.csv, line {lines}: expected 5 fields"):
        run_etl(engine, sources, metadata_url=metadata)
    assert {t: engine.row_count(t) for t in engine.list_tables()} == before
    assert list_runs(metadata)[0].status == "failed"


def test_bad_input_cases_on_hand_written_files(tmp_path: Path) -> None:
    site = tmp_path / "sources" / "chu_nord"
    site.mkdir(parents=True)
    (site / "patients_part0000.csv").write_text(
        "ipp;sexe;date_naissance;code_postal\n"
        "100000001;F;12/03/1960;59000\n"
        "100000002;M;31/02/1950;59100\n"  # wrong date
        "100000003;X;01/01/1970;\n"  # value outside the list
        "100000004;;05/05/1945;59000\n"  # missing required field
        "100000005;M;05/05/1945;590001234567\n",  # over-long zip: the location is refused, the person kept
        encoding="utf-8",
    )
    (site / "diagnostics_part0000.csv").write_text(
        "num_sejour;ipp;date_diagnostic;code_cim10;type_diagnostic\n"
        "S1;100000001;01/02/2020;C509;DP\n"
        "S1;100000001;01/02/2020;ZZ123;DAS\n"  # malformed code
        "S1;100000001;01/02/2020;C999;DAS\n"  # well-formed, unknown: kept with concept 0
        "S2;100000002;03/03/2021;C61;DP\n",  # person refused above: cascade
        encoding="utf-8",
    )
    engine = connect("duckdb")
    report = run_etl(engine, tmp_path / "sources", metadata_url=f"sqlite:///{tmp_path / 'm.sqlite'}")
    found = {
        (r["source_file"].rsplit("/", 1)[1], r["source_line"], r["field"], r["reason"], r["action"])
        for r in show_rejects(engine, limit=100)
    }
    assert found >= {
        ("patients_part0000.csv", 3, "date_naissance", "invalid_date", "reject"),
        ("patients_part0000.csv", 4, "sexe", "unknown_value", "reject"),
        ("patients_part0000.csv", 5, "sexe", "missing_required", "reject"),
        ("patients_part0000.csv", 6, "code_postal", "too_long", "reject"),
        ("diagnostics_part0000.csv", 3, "code_cim10", "invalid_code", "reject"),
        ("diagnostics_part0000.csv", 5, "ipp", "unknown_reference", "reject"),
    }
    assert engine.query("SELECT person_source_value FROM person ORDER BY 1").column(0).to_pylist() == [
        "100000001",
        "100000005",
    ]
    kept = engine.query(
        "SELECT condition_source_value, condition_concept_id FROM condition_occurrence ORDER BY 1"
    ).to_pylist()
    assert kept == [
        {"condition_source_value": "C509", "condition_concept_id": kept[0]["condition_concept_id"]},
        {"condition_source_value": "C999", "condition_concept_id": 0},
    ]
    assert report.rows_rejected == 6


def test_latin1_byte_in_utf8_site_file_names_line_and_field(tmp_path: Path) -> None:
    site = tmp_path / "sources" / "chu_nord"
    site.mkdir(parents=True)
    (site / "patients_part0000.csv").write_bytes(
        b"ipp;sexe;date_naissance;code_postal\n100000001;F;12/03/1960;59000\n100000002;M;01/01/1950;Gu\xe9ret\n"
    )
    engine = connect("duckdb")
    with pytest.raises(SourceError, match=r"patients_part0000\.csv, line 3, field 'code_postal': invalid utf-8"):
        run_etl(engine, tmp_path / "sources", metadata_url=f"sqlite:///{tmp_path / 'm.sqlite'}")
    assert "person" not in engine.list_tables() or engine.row_count("person") == 0


def test_duckdb_memory_cap_is_lowered_during_a_run_and_restored(tmp_path: Path) -> None:
    engine = connect("duckdb", path=tmp_path / "w.duckdb")
    before = engine.scalar("SELECT current_setting('memory_limit')")
    with engine.bounded_memory("1GB"):
        assert engine.scalar("SELECT current_setting('memory_limit')") == "953.6 MiB"
        assert engine.scalar("SELECT current_setting('preserve_insertion_order')") is False
    assert engine.scalar("SELECT current_setting('memory_limit')")[:2] == before[:2]
    assert engine.scalar("SELECT current_setting('preserve_insertion_order')") is True
