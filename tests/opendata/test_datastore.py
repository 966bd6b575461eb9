"""The datastore: files become typed tables (atomically, with clear errors), searched by filters and by SQL."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pytest
from opendata_world import OpenDataWorld
from openpyxl import Workbook

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import AccessDenied, NotFound
from massalia.opendata import datastore
from massalia.opendata.catalog import Upload
from massalia.opendata.datastore import LoadError
from massalia.opendata.models import ValidationFailed

DATASET = {"name": "bornes", "title": "Bornes", "owner_org": "region-sud"}


def _resource(world: OpenDataWorld, content: bytes, filename: str = "bornes.csv", fmt: str = "CSV") -> str:
    alice = world.caller("alice")
    try:
        world.catalog.package_show(alice, "bornes")
    except NotFound:
        world.catalog.package_create(alice, DATASET)
    made = world.catalog.resource_create(
        alice, {"package_id": "bornes", "format": fmt}, Upload(filename, io.BytesIO(content))
    )
    return str(made["id"])


CP1252 = "code_insee;commune;puissance_kw;mise_en_service\n13001;Marseille;22;2023-05-01\n06088;Nice;50,5;2024-01-15\n"


def test_a_semicolon_cp1252_csv_becomes_a_typed_table(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    text = (
        CP1252.replace(",5", ".5")
        .replace("Marseille", "Aix-en-Provence, Pays d'Aix")
        .replace("Nice", "Nîmes-sur-Rhône")
    )
    resource = _resource(world, text.encode("cp1252"))
    report = datastore.load_file(world.caller("alice"), world.catalog, engine, resource, types={"code_insee": "text"})
    assert report.rows == 2 and report.delimiter == ";" and report.encoding == "cp1252"
    assert {f["id"]: f["type"] for f in report.fields} == {
        "_id": "int",  # CKAN's row id, added at load
        "code_insee": "text",
        "commune": "text",
        "puissance_kw": "float",
        "mise_en_service": "date",
    }
    found = datastore.search(
        world.caller("anonymous"), world.catalog, engine, resource, filters={"code_insee": "06088"}
    )
    assert found["total"] == 1 and found["records"][0]["commune"] == "Nîmes-sur-Rhône"
    assert found["records"][0]["code_insee"] == "06088"  # leading zero kept: the producer said text


def test_a_column_that_turns_to_text_deep_in_the_file_is_widened(
    world: OpenDataWorld, engine: DuckDBEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datastore, "SAMPLE_BYTES", 1 << 16)  # types are inferred on the first 64 KiB
    rows = "\n".join(f"{i},{i * 2}" for i in range(20_000))
    text = f"id,valeur\n{rows}\n20000,inconnu\n"
    resource = _resource(world, text.encode())
    report = datastore.load_file(world.caller("alice"), world.catalog, engine, resource)
    assert report.rows == 20_001
    assert {f["id"]: f["type"] for f in report.fields} == {"_id": "int", "id": "int", "valeur": "text"}


def test_a_load_tells_its_progress_from_the_first_block_to_the_last_row(
    world: OpenDataWorld, engine: DuckDBEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datastore, "BLOCK_BYTES", 1 << 14)  # 16 KiB blocks: a 0.4 MB file reads in many steps
    text = "id,commune\n" + "".join(f"{i},Commune numéro {i}\n" for i in range(20_000))
    resource = _resource(world, text.encode())
    told: list[tuple[str, int, int]] = []
    report = datastore.load_file(
        world.caller("alice"), world.catalog, engine, resource, progress=lambda *step: told.append(step)
    )
    reading = [done for step, done, _ in told if step == "reading"]
    size = len(text.encode())
    assert len(reading) > 10 and reading == sorted(reading) and reading[-1] == size
    assert all(total == size for step, _, total in told if step == "reading")
    assert [s for s in told if s[0] == "writing"] == [("writing", 0, 20_000), ("writing", 20_000, 20_000)]
    assert report.rows == 20_000


def test_a_declared_type_that_does_not_hold_names_the_file_row_and_field(
    world: OpenDataWorld, engine: DuckDBEngine
) -> None:
    resource = _resource(world, b"id,valeur\n1,10\n2,20\n3,abc\n4,40\n")
    with pytest.raises(LoadError) as failed:
        datastore.load_file(world.caller("alice"), world.catalog, engine, resource, types={"valeur": "int"})
    assert (failed.value.file, failed.value.row, failed.value.field) == ("bornes.csv", 3, "valeur")
    assert "bornes.csv, row 3, field 'valeur'" in str(failed.value)


def test_a_failed_load_leaves_the_previous_table_whole(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    """Atomicity: a bad re-upload neither empties nor half-replaces the table readers see."""
    alice = world.caller("alice")
    resource = _resource(world, b"id,nom\n1,Aix\n2,Nice\n")
    datastore.load_file(alice, world.catalog, engine, resource)
    bad = io.BytesIO(b"id,nom\n1,Aix\n2,Nice,extra,fields\n")
    world.catalog.resource_update(alice, {"id": resource, "format": "CSV"}, Upload("bornes.csv", bad))
    with pytest.raises(LoadError, match=r"bornes\.csv"):
        datastore.load_file(alice, world.catalog, engine, resource)
    kept = datastore.search(world.caller("anonymous"), world.catalog, engine, resource)
    assert kept["total"] == 2 and [r["nom"] for r in kept["records"]] == ["Aix", "Nice"]
    # A first load that fails leaves no table at all.
    other = _resource(world, b"a,a\n1,2\n", filename="dup.csv")
    with pytest.raises(LoadError, match="duplicate column"):
        datastore.load_file(alice, world.catalog, engine, other)
    assert not engine.table_exists(datastore.table_name(other))


def test_json_and_excel_files_load_too(world: OpenDataWorld, engine: DuckDBEngine, tmp_path: Path) -> None:
    alice = world.caller("alice")
    records = [{"commune": "Arles", "habitants": 51000}, {"commune": "Gap", "habitants": 40000}]
    resource = _resource(world, json.dumps(records).encode(), filename="communes.json", fmt="JSON")
    assert datastore.load_file(alice, world.catalog, engine, resource).rows == 2
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["commune", "habitants"])
    sheet.append(["Digne", 16000])
    path = tmp_path / "communes.xlsx"
    workbook.save(path)
    excel = _resource(world, path.read_bytes(), filename="communes.xlsx", fmt="XLSX")
    report = datastore.load_file(alice, world.catalog, engine, excel)
    assert report.rows == 1 and {f["id"]: f["type"] for f in report.fields}["habitants"] == "int"


def test_search_filters_q_fields_sort_paging_and_formats(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    alice, anonymous = world.caller("alice"), world.caller("anonymous")
    resource = _resource(world, b"id,ville,kw\n1,Aix,22\n2,Nice,50\n3,Arles,22\n4,Gap,11\n")
    datastore.load_file(alice, world.catalog, engine, resource)
    page = datastore.search(
        anonymous,
        world.catalog,
        engine,
        resource,
        filters={"kw": [22, 11]},
        sort="ville desc",
        fields=["ville"],
        limit=2,
        offset=1,
    )
    assert page["total"] == 3 and page["records"] == [{"ville": "Arles"}, {"ville": "Aix"}]
    assert datastore.search(anonymous, world.catalog, engine, resource, q="ni")["records"][0]["ville"] == "Nice"
    lists = datastore.search(anonymous, world.catalog, engine, resource, sort="id", limit=1, records_format="lists")
    assert lists["records"] == [[1, 1, "Aix", 22]]  # _id first, as CKAN shows it
    csv_page = datastore.search(anonymous, world.catalog, engine, resource, sort="id", records_format="csv", limit=2)
    assert csv_page["records"] == "1,1,Aix,22\r\n2,2,Nice,50\r\n"
    with pytest.raises(ValidationFailed, match="nope"):
        datastore.search(anonymous, world.catalog, engine, resource, filters={"nope": 1})
    with pytest.raises(ValidationFailed, match="sort"):
        datastore.search(anonymous, world.catalog, engine, resource, sort="ville; DROP TABLE x")


def test_create_upsert_and_delete_records(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    alice, anonymous = world.caller("alice"), world.caller("anonymous")
    world.catalog.package_create(alice, DATASET)
    resource = world.catalog.resource_create(alice, {"package_id": "bornes", "url": "https://example.org/api"})["id"]
    datastore.create_from_records(
        alice,
        world.catalog,
        engine,
        resource,
        fields=[{"id": "id", "type": "int"}, {"id": "etat", "type": "text"}],
        records=[{"id": 1, "etat": "libre"}, {"id": 2, "etat": "occupé"}],
        primary_key=["id"],
    )
    datastore.upsert(alice, world.catalog, engine, resource, [{"id": 2, "etat": "libre"}, {"id": 3, "etat": "hs"}])
    rows = datastore.search(anonymous, world.catalog, engine, resource, sort="id")["records"]
    # A replaced row keeps its _id; a new one gets the next.
    assert rows == [
        {"_id": 1, "id": 1, "etat": "libre"},
        {"_id": 2, "id": 2, "etat": "libre"},
        {"_id": 3, "id": 3, "etat": "hs"},
    ]
    datastore.upsert(alice, world.catalog, engine, resource, [{"etat": "neuf", "id": 9}], method="insert")
    inserted = datastore.search(anonymous, world.catalog, engine, resource, filters={"id": 9})["records"]
    assert inserted == [{"_id": 4, "id": 9, "etat": "neuf"}]
    datastore.delete(alice, world.catalog, engine, resource, {"id": 9})
    with pytest.raises(LoadError, match="row 1, field 'id'"):
        datastore.upsert(alice, world.catalog, engine, resource, [{"id": "x", "etat": "libre"}])
    datastore.delete(alice, world.catalog, engine, resource, {"etat": "hs"})
    assert datastore.search(anonymous, world.catalog, engine, resource)["total"] == 2
    datastore.delete(alice, world.catalog, engine, resource)
    with pytest.raises(NotFound):
        datastore.search(anonymous, world.catalog, engine, resource)


def test_only_the_organization_s_producers_write_its_datastore(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    """Attack: another organization's producer, or anyone, overwriting or deleting a resource's rows."""
    resource = _resource(world, b"id\n1\n")
    datastore.load_file(world.caller("alice"), world.catalog, engine, resource)
    for name in ("bob", "carol", "anonymous"):
        with pytest.raises(AccessDenied):
            datastore.delete(world.caller(name), world.catalog, engine, resource)
        with pytest.raises(AccessDenied):
            datastore.upsert(world.caller(name), world.catalog, engine, resource, [{"id": 2}], method="insert")
        with pytest.raises(AccessDenied):
            datastore.create_from_records(world.caller(name), world.catalog, engine, resource, records=[{"id": 9}])
    assert datastore.search(world.caller("anonymous"), world.catalog, engine, resource)["total"] == 1
    assert engine.query(f"SELECT * FROM {datastore.table_name(resource)}").num_rows == 1
    assert isinstance(engine.query("SELECT 1 AS x"), pa.Table)
